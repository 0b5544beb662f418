"""Bounds that keep one record from stopping or stalling the stream (core/records.py):
metadata depth and size, NUL, bounded dead letters, bounded enriched events, the analysis bound."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
import pytest

from core.records import (
    DLQ_EXCERPT_BYTES,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    Rejected,
    analysis_bound,
    analysis_text,
    bound_lists,
    dead_letter,
    nesting_depth,
    parse_fragment,
)
from pipelines.io import KafkaRecord
from pipelines.transforms.emit import finish_event
from pipelines.transforms.normalise import normalise_event
from pipelines.transforms.parse import start_event


def _nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    node = doc
    for _ in range(depth - 1):
        node["m"] = {}
        node = node["m"]
    return doc


def test_nesting_depth_counts_levels_without_recursion() -> None:
    assert nesting_depth("x", 5) == 0
    assert nesting_depth({}, 5) == 1
    assert nesting_depth({"a": [{"b": 1}]}, 5) == 3
    # 100,000 levels would overflow a recursive walk; the walk stops just past the limit
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert nesting_depth(deep, 16) == 17


@pytest.mark.parametrize("metadata,reason", [
    (orjson.dumps(_nested(MAX_METADATA_DEPTH + 1)), "metadata_too_deep"),
    (b'{"m":' * 299 + b"{}" + b"}" * 299, "metadata_too_deep"),  # deeper than orjson can write back
    (orjson.dumps({"blob": "x" * (MAX_METADATA_BYTES + 1)}), "metadata_too_large"),
])
def test_metadata_that_no_store_or_consumer_could_take_is_rejected_at_parse(metadata: bytes, reason: str) -> None:
    value = b'{"source": "wire:a", "text": "Some text.", "metadata": ' + metadata + b"}"
    with pytest.raises(Rejected) as err:
        parse_fragment(value, max_bytes=1_000_000)
    assert (err.value.stage, err.value.reason) == ("validate", reason)


def test_metadata_within_bounds_passes() -> None:
    value = orjson.dumps({"source": "wire:a", "text": "Some text.", "metadata": _nested(MAX_METADATA_DEPTH)})
    assert parse_fragment(value, max_bytes=1_000_000).fields["metadata"]


def test_nul_is_replaced_in_every_string() -> None:
    value = orjson.dumps({"source": "wire:a", "text": "Te\x00xt.", "title": "A\x00B",
                          "metadata": {"k\x00": ["v\x00"]}})
    fields = parse_fragment(value, max_bytes=10_000).fields
    assert fields["title"] == "A\ufffdB" and fields["text"] == "Te\ufffdxt."
    assert fields["metadata"] == {"k\ufffd": ["v\ufffd"]}
    assert b"\\u0000" not in orjson.dumps(fields)


def test_dead_letter_is_bounded_and_identifies_the_whole_original() -> None:
    original = b"x" * 1_000_000
    letter = dead_letter("parse", "oversized", "e" * 50_000, original, b"k" * 5000, "raw", 0, 7, 1)
    encoded = orjson.dumps(letter)
    assert len(encoded) < 100_000
    assert base64.b64decode(letter["original_b64"]) == original[:DLQ_EXCERPT_BYTES]
    assert letter["original_truncated"] is True and letter["original_size"] == 1_000_000
    assert letter["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert len(letter["error"]) < 2100
    small = dead_letter("parse", "not_json", "bad", b"{x", None, "raw", 0, 1, 1)
    assert small["original_truncated"] is False and base64.b64decode(small["original_b64"]) == b"{x"


def _event(text: str) -> dict[str, Any]:
    rec_value = orjson.dumps({"source": "wire:a", "id": "1", "text": text})
    return start_event(KafkaRecord("raw", 0, 5, 5, 1_700_000_000_000, None, rec_value), 10_000_000)


def test_long_text_is_read_up_to_the_analysis_bound_and_flagged() -> None:
    text = "word " * 10_000  # 50,000 characters
    event = normalise_event(_event(text), analysis_max_chars=20_000)
    cut = event["truncated"]["analysis_chars"]
    assert 19_800 <= cut <= 20_000 and event["text"][cut] == " "  # cut at a space, no half word
    assert len(analysis_text(event)) == cut and len(event["text"]) > 40_000  # the text itself stays whole
    assert "truncated" not in normalise_event(_event("A short text."), analysis_max_chars=20_000)
    assert analysis_bound("x" * 30_000, 20_000) == 20_000  # no whitespace: cut at the bound


def test_lists_are_bounded_with_counts_of_what_was_cut() -> None:
    mention = {"start": 0, "end": 4, "text": "NATO"}
    entities = [{"id": f"org:{n}", "name": str(n), "type": "org", "mentions": [mention] * (1 if n else 500)}
                for n in range(300)]
    event = {"entities": entities, "places": [], "novelty": {"ratio": 1.0, "new_sentences": ["s"] * 250,
                                                             "repeated": 0}}
    out = bound_lists(event, 100)
    assert len(out["entities"]) == 100 and out["entities"][0]["id"] == "org:0"  # the most mentioned stays
    assert len(out["entities"][0]["mentions"]) == 100
    assert out["truncated"] == {"entities": 200, "mentions": 400, "new_sentences": 150}
    assert len(out["novelty"]["new_sentences"]) == 100
    assert bound_lists({"entities": entities[1:4]}, 100) == {"entities": entities[1:4]}
    countries = [{"id": f"geonames:{n}", "name": str(n), "country_code": "FI", "mentions": [mention]} for n in range(5)]
    out = bound_lists({"places": [], "nationalities": countries}, 3)
    assert out["nationalities"] == countries[:3] and out["truncated"] == {"nationalities": 2}


def test_an_event_too_large_for_the_topic_is_rejected_at_emit() -> None:
    event = normalise_event(_event("Plenty of words here. " * 20_000))
    with pytest.raises(Rejected) as err:
        finish_event(event, max_list_items=200, max_event_bytes=100_000)
    assert err.value.reason == "oversized_event"
    assert finish_event(event, max_list_items=200, max_event_bytes=900_000)["processed_at"]
