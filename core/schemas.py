"""The versioned JSON Schemas in config/schemas/, loaded once and used wherever data enters or leaves."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import fastjsonschema
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
def _compiled(name: str) -> Any:
    """The hot-path validator: fastjsonschema compiles the schema to Python code, about 20x faster
    than jsonschema per event (0.007 vs 0.136 ms, bench/RESULTS.md). Our schemas use no keyword
    whose meaning differs between Draft 2020-12 and Draft 7, the newest fastjsonschema knows."""
    schema = load_schema(name)
    schema = {**inline_refs(schema, schema.get("$defs", {})), "$schema": "http://json-schema.org/draft-07/schema#"}
    return fastjsonschema.compile(schema)


def inline_refs(node: Any, defs: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every local ``{"$ref": "#/$defs/X"}`` replaced by the definition itself.

    fastjsonschema compiles a ``$ref`` to a function call whose name argument it builds with
    ``.format(**locals())``: a dict of every local of the caller, per array item. Inlined, the same
    checks run in place (361 -> 113-120 us per enriched event, bench/RESULTS.md). A reference
    inside the definition it names (an alert condition nests conditions) stays a ``$ref``, which the
    compiled schema resolves through the ``$defs`` kept beside it."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs and ref not in seen:
            return inline_refs({**defs[ref[8:]], **{k: v for k, v in node.items() if k != "$ref"}}, defs,
                               (*seen, ref))
        return {k: inline_refs(v, defs, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [inline_refs(v, defs, seen) for v in node]
    return node


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
        _compiled(name)(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        path = ".".join(str(p) for p in exc.path[1:])
        detail = exc.message.removeprefix(exc.name).strip() if exc.name else exc.message
        raise SchemaViolation(name, path, detail) from None
