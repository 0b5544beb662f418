"""The pipeline's records: parsing a raw Kafka value into a Fragment, event ids, dead letters.

Pure functions (no Beam, no Kafka client): the transforms, the CLI and the tests share them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from newswire.schemas import SchemaViolation, validate

FRAGMENT_SCHEMA = "fragment/1"
ENRICHED_SCHEMA = "enriched-event/1"
DEAD_LETTER_SCHEMA = "dead-letter/1"


class Rejected(ValueError):
    """A record the pipeline will not accept. ``reason`` is a stable code, the message says why."""

    def __init__(self, stage: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.reason = reason


@dataclass(frozen=True)
class Fragment:
    """A validated raw fragment plus its stable event id."""

    event_id: str
    fields: dict[str, Any]


def utc_now_iso() -> str:
    """Current time as RFC 3339 UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_millis(ms: int) -> str:
    """Kafka record time (ms since epoch) as RFC 3339 UTC."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_id_for(fields: dict[str, Any]) -> str:
    """Stable id of a fragment: the same fragment (source, source id or url, text) -> the same id.

    Connector-side times (received_at) are left out on purpose, so a connector re-sending the same
    item after a restart yields the same event id and the sinks' upsert keeps one row.
    """
    identity = orjson.dumps([fields["source"], fields.get("id") or fields.get("url") or "", fields["text"]])
    return hashlib.blake2b(identity, digest_size=16).hexdigest()


def parse_fragment(value: bytes | None, max_bytes: int) -> Fragment:
    """Decode, parse and validate one raw record value; raise Rejected with the reason otherwise."""
    if value is None:
        raise Rejected("parse", "empty", "record has no value (tombstone or null)")
    if len(value) > max_bytes:
        raise Rejected("parse", "oversized", f"record is {len(value)} bytes, over the {max_bytes}-byte limit")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("parse", "not_utf8", f"value is not valid UTF-8: {exc}") from None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Rejected("parse", "not_json", f"value is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Rejected("validate", "schema", f"fragment must be a JSON object, got {type(doc).__name__}")
    try:
        validate("fragment", doc)
    except SchemaViolation as exc:
        raise Rejected("validate", "schema", str(exc)) from None
    if not doc["text"].strip():
        raise Rejected("validate", "empty_text", "fragment: text: is empty or only whitespace")
    return Fragment(event_id_for(doc), doc)


def dead_letter(stage: str, reason: str, error: str, value: bytes | None, key: bytes | None,
                topic: str, partition: int, offset: int, timestamp_ms: int | None) -> dict[str, Any]:
    """A DLQ record (config/schemas/dead-letter.v1.json) keeping the original bytes."""
    return {
        "schema": DEAD_LETTER_SCHEMA,
        "stage": stage,
        "reason": reason,
        "error": error,
        "original_b64": base64.b64encode(value or b"").decode(),
        "original_key_b64": base64.b64encode(key).decode() if key is not None else None,
        "origin": {"topic": topic, "partition": partition, "offset": offset, "timestamp_ms": timestamp_ms},
        "failed_at": utc_now_iso(),
    }
