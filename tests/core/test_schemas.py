"""The schemas are valid Draft 2020-12 and the fast hot-path validator agrees with the reference one."""

from __future__ import annotations

import pytest

from core.schemas import SCHEMA_FILES, SchemaViolation, validate, validator

GOOD_FRAGMENT = {"source": "wire:a", "id": "1", "text": "Text.", "published_at": "2026-11-24T06:10:00Z", "part": 2}
BAD_FRAGMENTS = [
    ({"source": "wire:a"}, "(document)"),
    ({"source": "", "text": "x"}, "source"),
    ({"source": "a", "text": "x", "part": 0}, "part"),
    ({"source": "a", "text": "x", "published_at": "yesterday"}, "published_at"),
    ({"source": "a", "text": "x", "published_at": "2026-11-24T06:10:00+0200"}, "published_at"),  # RFC 3339: +02:00
    ({"source": "a", "text": "x", "colour": "red"}, "(document)"),
    ({"source": "a", "text": 5}, "text"),
    ({"source": "a", "text": "x", "published_precision": "hour"}, "published_precision"),
]


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_schema_files_are_valid_draft_2020_12(name: str) -> None:
    validator(name)  # raises SchemaError if the schema itself is malformed


@pytest.mark.parametrize("extra", [{}, {"published_at": "2026-11-24T00:00:00Z", "published_precision": "day"}])
def test_good_fragment_passes_both_validators(extra: dict) -> None:
    doc = {**GOOD_FRAGMENT, **extra}
    validate("fragment", doc)
    assert not list(validator("fragment").iter_errors(doc))


@pytest.mark.parametrize("doc,path", BAD_FRAGMENTS)
def test_bad_fragments_fail_both_validators_naming_the_field(doc: dict, path: str) -> None:
    if path != "published_at":  # jsonschema checks "date-time" only with rfc3339-validator installed
        assert list(validator("fragment").iter_errors(doc))
    with pytest.raises(SchemaViolation) as err:
        validate("fragment", doc)
    assert str(err.value).startswith(f"fragment: {path}:")


def _enriched_event() -> dict:
    return {"schema": "enriched-event/1", "event_id": "b" * 32, "source": "wire:a", "text": "NATO met.",
            "content_hash": "c" * 32, "language": {"code": "en", "confidence": 1.0}, "duplicate_of": None,
            "received_at": "2026-12-03T15:00:00Z", "processed_at": "2026-12-03T15:00:01Z",
            "origin": {"topic": "news.fragments", "partition": 0, "offset": 0, "timestamp_ms": 0},
            "entities": [{"id": "org:nato", "name": "NATO", "type": "org",
                          "mentions": [{"start": 0, "end": 4, "text": "NATO"}]}]}


@pytest.mark.parametrize("mention,field", [({"start": -1, "end": 4, "text": "NATO"}, "start"),
                                           ({"start": 0, "end": "4", "text": "NATO"}, "end"),
                                           ({"start": 0, "end": 4}, "")])
def test_checks_behind_a_ref_still_run_and_name_the_field(mention: dict, field: str) -> None:
    # "#/$defs/mentions" is a $ref: a bad mention is still refused by the hot-path validator, by its path.
    good = _enriched_event()
    validate("enriched-event", good)
    assert not list(validator("enriched-event").iter_errors(good))
    bad = {**good, "entities": [{**good["entities"][0], "mentions": [mention]}]}
    assert list(validator("enriched-event").iter_errors(bad))
    with pytest.raises(SchemaViolation) as err:
        validate("enriched-event", bad)
    assert str(err.value).startswith(f"enriched-event: entities.0.mentions.0{'.' if field else ''}{field}:")


@pytest.mark.parametrize("doc,path,says", [
    ({"source": "\u202e" + "a" * 1_000_000, "text": "x"}, "source", "more characters than the maxLength of 200"),
    ({"source": "a", "text": ["<script>"] * 100_000}, "text", "not of type string"),
    ({"source": "a", "text": "x", "published_at": "<b>" * 100_000}, "published_at", "not a valid date-time"),
    ({"source": "a", "text": "x", "<img src=x>" * 1000: 1}, "(document)", "additional properties are not allowed"),
])
def test_a_violation_names_the_rule_and_never_echoes_the_untrusted_value(doc: dict, path: str, says: str) -> None:
    # The message goes into dead letters, logs and HTTP answers: the field and the rule, never the
    # value (jsonschema-rs's own message quotes it whole), and an unexpected key cut short.
    with pytest.raises(SchemaViolation) as err:
        validate("fragment", doc)
    message = str(err.value)
    assert message.startswith(f"fragment: {path}: {says}"), message
    assert len(message) < 200 and "\u202e" not in message and "<script>" not in message and "<b>" not in message
