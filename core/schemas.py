"""The versioned JSON Schemas in config/schemas/, loaded once and used wherever data enters or leaves."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

#: Schema files by logical name. The version is part of the file name; see docs/schemas.md.
SCHEMA_FILES = {
    "fragment": "fragment.v1.json",
    "enriched-event": "enriched-event.v1.json",
    "dead-letter": "dead-letter.v1.json",
    "newswire-config": "newswire-config.v1.json",
    "alert": "alert.v1.json",
    "alerts-config": "alerts-config.v1.json",
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


def load_schema(name: str) -> dict[str, Any]:
    """The named schema as a dict."""
    return dict(orjson.loads((config_dir() / "schemas" / SCHEMA_FILES[name]).read_bytes()))


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """The reference validator (jsonschema, Draft 2020-12): checks the schema itself, gives the most
    precise messages. Used for the configuration and by the tests."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


@functools.cache
def _compiled(name: str) -> jsonschema_rs.Validator:
    """The hot-path validator: jsonschema-rs (Rust) checks an enriched event in ~13 us against
    fastjsonschema's ~73 (bench/RESULTS.md "Less repeated work per event"), Draft 2020-12 as
    written, ``$ref`` included, ``format`` checked as :func:`validator` checks it."""
    return jsonschema_rs.validator_for(load_schema(name), validate_formats=True)


def prepare(*names: str) -> None:
    """Compile the named schemas' hot-path validators now (the pipeline's start-up warm-up) rather
    than on the first document (~0.01-0.05 s each)."""
    for name in names:
        _compiled(name)


def validate(name: str, document: Any) -> None:
    """Raise SchemaViolation naming the offending field if `document` does not match schema `name`."""
    if name == "newswire-config":
        errors = sorted(validator(name).iter_errors(document), key=lambda e: (len(e.absolute_path), e.message))
        if errors:
            raise SchemaViolation(name, error_path(errors[0]), errors[0].message)
        return
    try:
        _compiled(name).validate(document)
    except jsonschema_rs.ValidationError as exc:
        raise SchemaViolation(name, ".".join(map(str, exc.instance_path)), violation_message(exc.kind)) from None


def violation_message(kind: Any) -> str:
    """What a jsonschema-rs error says was broken, from the schema's side only. Its own message
    quotes the offending value, which is untrusted and can be a megabyte (a text over its
    ``maxLength``): dead letters, logs and HTTP answers get the rule instead, and at most three
    unexpected property names, each cut to 40 characters."""
    rule, value = kind.name, kind.value
    if rule in ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"):
        unit = {"Length": "characters", "Items": "items", "Properties": "properties"}[rule[3:]]
        return f"{'more' if rule.startswith('max') else 'fewer'} {unit} than the {rule} of {value}"
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{'less' if 'inimum' in rule else 'greater'} than the {rule} of {value}"
    if rule == "type":
        return f"not of type {' or '.join(map(str, value))}"
    if rule == "required":
        return f"{str(value)[:40]!r} is a required property"
    if rule == "additionalProperties":
        names = ", ".join(repr(str(n)[:40]) for n in list(value)[:3]) + (", ..." if len(value) > 3 else "")
        return f"additional properties are not allowed ({names})"
    if rule == "format":
        return f"not a valid {value}"
    if rule in ("enum", "const", "pattern"):
        return f"does not match the {rule} {value!r}"[:200]
    return f"does not satisfy the schema's {rule!r}"
