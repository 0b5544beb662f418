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
