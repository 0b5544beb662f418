"""The versioned JSON Schemas in config/schemas/, loaded once and used wherever data enters or leaves."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

#: Schema files by logical name. The version is part of the file name; see docs/schemas.md.
SCHEMA_FILES = {
    "fragment": "fragment.v1.json",
    "enriched-event": "enriched-event.v1.json",
    "dead-letter": "dead-letter.v1.json",
    "newswire-config": "newswire-config.v1.json",
}


def config_dir() -> Path:
    """The config/ directory: $NEWSWIRE_CONFIG_DIR, else the one beside the installed packages."""
    env = os.environ.get("NEWSWIRE_CONFIG_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "config"


class SchemaViolation(ValueError):
    """A document does not match its schema; the message names the offending field."""

    def __init__(self, schema: str, path: str, message: str) -> None:
        super().__init__(f"{schema}: {path or '(document)'}: {message}")
        self.schema = schema
        self.path = path
        self.detail = message


def error_path(error: ValidationError) -> str:
    """Dotted path of the field a jsonschema error is about, e.g. 'kafka.topics.dlq.partitions'."""
    return ".".join(str(p) for p in error.absolute_path)


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A compiled validator for the named schema (cached per process)."""
    schema = orjson.loads((config_dir() / "schemas" / SCHEMA_FILES[name]).read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def validate(name: str, document: Any) -> None:
    """Raise SchemaViolation for the first (most relevant) error of `document` against schema `name`."""
    v = validator(name)
    errors = sorted(v.iter_errors(document), key=lambda e: (len(e.absolute_path), e.message))
    if errors:
        err = errors[0]
        raise SchemaViolation(name, error_path(err), err.message)
