"""Parsing raw records: each kind of bad input gets its reason; event ids are stable."""

from __future__ import annotations

import orjson
import pytest

from core.records import (
    ALERTS_KEY,
    DEDUP_FIELDS,
    PRIVATE_KEYS,
    STORY_FIELDS,
    EnrichedEvent,
    InFlightEvent,
    Rejected,
    event_id_for,
    parse_fragment,
)
from core.schemas import load_schema


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


def test_the_typed_event_declares_exactly_the_schema_fields() -> None:
    """EnrichedEvent (core/records.py) is where the field names are declared: it must list every
    property of config/schemas/enriched-event.v1.json and nothing else; private keys start with _."""
    schema = load_schema("enriched-event")
    assert set(EnrichedEvent.__annotations__) == set(schema["properties"])
    assert set(schema["required"]) <= set(EnrichedEvent.__annotations__)
    assert PRIVATE_KEYS == ("_start", "_value", "_key", "_alerts")
    assert set(DEDUP_FIELDS) | set(STORY_FIELDS) <= set(EnrichedEvent.__annotations__)
    assert ALERTS_KEY in InFlightEvent.__annotations__
