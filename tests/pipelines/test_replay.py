"""Replay without a broker: a stored event rebuilt as a fragment keeps its id (the replay header)
and goes through Parse and Normalise to the same text and marker."""

from __future__ import annotations

import orjson
import pytest

from core.records import Rejected, event_id_for, fragment_from_event, parse_fragment
from core.schemas import validate
from pipelines.io import KafkaRecord, _replay_of
from pipelines.transforms.emit import finish_event
from pipelines.transforms.normalise import normalise_event
from pipelines.transforms.parse import start_event

FRAGMENT = {"source": "blog:c", "id": "live-2", "story_key": "live", "url": "https://example.org/live",
            "content_type": "text/plain", "part": 2, "parts": 5, "metadata": {"feed": "x"},
            "received_at": "2026-03-01T10:00:00.000Z",
            "text": "2/5\n\u201cThe first departure\u00a0to Tallinn is at noon,\u201d the ferry operator said."}


def record(value: bytes, replay_of: str | None = None, offset: int = 7) -> KafkaRecord:
    return KafkaRecord("news.fragments", 0, offset, offset, 1_772_359_200_000, None, value, replay_of)


def processed(rec: KafkaRecord) -> dict:
    return normalise_event(start_event(rec, 262144))


def test_a_replayed_event_keeps_its_id_text_and_marker() -> None:
    first = processed(record(orjson.dumps(FRAGMENT)))
    assert first["event_id"] == event_id_for(FRAGMENT)
    fragment = fragment_from_event(first)
    validate("fragment", fragment)
    again = processed(record(orjson.dumps(fragment), replay_of=first["event_id"], offset=99))
    assert again["event_id"] == first["event_id"]
    for key in ("text", "marker", "content_hash", "source", "source_id", "url", "story_key", "received_at",
                "metadata"):
        assert again[key] == first[key], key
    # Without the header the normalised text would hash to another id: that is why the header exists.
    assert event_id_for(fragment) != first["event_id"]


def test_a_date_only_publication_time_keeps_its_precision_through_parse_and_replay() -> None:
    dated = {**FRAGMENT, "published_at": "2026-03-01T00:00:00Z", "published_precision": "day"}
    event = processed(record(orjson.dumps(dated)))
    assert (event["published_at"], event["published_precision"]) == ("2026-03-01T00:00:00Z", "day")
    finish_event(event)  # the enriched-event schema declares the field: "day" passes, anything else does not
    with pytest.raises(Rejected, match="published_precision"):
        finish_event({**event, "published_precision": "hour"})
    assert fragment_from_event(event)["published_precision"] == "day"
    assert "published_precision" not in processed(record(orjson.dumps(FRAGMENT)))


def test_a_replay_header_that_is_no_event_id_is_rejected() -> None:
    with pytest.raises(Rejected) as caught:
        parse_fragment(orjson.dumps(FRAGMENT), 262144, replay_of="not-an-id")
    assert caught.value.reason == "bad_replay_of"


def test_the_reader_takes_the_replay_header() -> None:
    assert _replay_of([("other", b"x"), ("newswire-replay-of", b"ab" * 16)]) == "ab" * 16
    assert _replay_of(None) is None and _replay_of([]) is None
