"""Parsing raw records: each kind of bad input gets its reason; event ids are stable."""

from __future__ import annotations

import orjson
import pytest

from pipelines.events import Rejected, event_id_for, parse_fragment


@pytest.mark.parametrize("value,stage,reason", [
    (None, "parse", "empty"),
    (b"x" * 2000, "parse", "oversized"),
    (b"\xff\xfe{}", "parse", "not_utf8"),
    (b"{not json", "parse", "not_json"),
    (b"[1, 2]", "validate", "schema"),
    (b'{"source": "a"}', "validate", "schema"),
    (b'{"source": "a", "text": " \\n\\t "}', "validate", "empty_text"),
])
def test_rejections_carry_stage_and_reason(value: bytes | None, stage: str, reason: str) -> None:
    with pytest.raises(Rejected) as err:
        parse_fragment(value, max_bytes=1000)
    assert (err.value.stage, err.value.reason) == (stage, reason)
    assert str(err.value)


def test_event_id_is_stable_and_ignores_receive_time() -> None:
    a = {"source": "wire:a", "id": "1", "text": "Same text.", "received_at": "2026-11-24T06:10:00Z"}
    b = {**a, "received_at": "2026-11-25T09:00:00Z"}
    assert event_id_for(a) == event_id_for(b)
    assert event_id_for(a) != event_id_for({**a, "text": "Corrected text."})
    assert event_id_for(a) != event_id_for({**a, "source": "wire:b"})
    fragment = parse_fragment(orjson.dumps(a), max_bytes=1000)
    assert fragment.event_id == event_id_for(a) and len(fragment.event_id) == 32
