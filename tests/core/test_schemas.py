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
]


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_schema_files_are_valid_draft_2020_12(name: str) -> None:
    validator(name)  # raises SchemaError if the schema itself is malformed


def test_good_fragment_passes_both_validators() -> None:
    validate("fragment", GOOD_FRAGMENT)
    assert not list(validator("fragment").iter_errors(GOOD_FRAGMENT))


@pytest.mark.parametrize("doc,path", BAD_FRAGMENTS)
def test_bad_fragments_fail_both_validators_naming_the_field(doc: dict, path: str) -> None:
    if path != "published_at":  # jsonschema checks "date-time" only with rfc3339-validator installed
        assert list(validator("fragment").iter_errors(doc))
    with pytest.raises(SchemaViolation) as err:
        validate("fragment", doc)
    assert str(err.value).startswith(f"fragment: {path}:")
