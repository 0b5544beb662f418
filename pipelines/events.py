"""The pipeline's records: parsing a raw Kafka value into a Fragment, event ids, dead letters.

Pure functions (no Beam, no Kafka client): the transforms, the CLI and the tests share them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from newswire.schemas import SchemaViolation, validate

FRAGMENT_SCHEMA = "fragment/1"
ENRICHED_SCHEMA = "enriched-event/1"
DEAD_LETTER_SCHEMA = "dead-letter/1"
_EVENT_ID = re.compile(r"[0-9a-f]{32}")

#: Kafka header of a replayed fragment (``newswire replay``): the event id it was first stored
#: under. A replayed fragment is rebuilt from the stored event, whose text is already normalised,
#: so its content-derived id would differ; Parse takes the id from the header instead, and the
#: sinks' upsert rewrites the original row. A header, not a fragment field: connectors never copy
#: headers from their input, so only a producer on the raw topic itself can set it.
REPLAY_HEADER = "newswire-replay-of"


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


def parse_fragment(value: bytes | None, max_bytes: int, replay_of: str | None = None) -> Fragment:
    """Decode, parse and validate one raw record value; raise Rejected with the reason otherwise.

    ``replay_of`` (the record's REPLAY_HEADER) becomes the event id instead of the content-derived one.
    """
    if replay_of is not None and not _EVENT_ID.fullmatch(replay_of):
        raise Rejected("parse", "bad_replay_of", f"header {REPLAY_HEADER}: {replay_of[:80]!r} is not an event id "
                       "(32 lower-case hex characters)")
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
    return Fragment(replay_of or event_id_for(doc), doc)


#: Fragment fields Parse moves into an event's metadata (pipelines/transforms/parse.py).
_METADATA_FIELDS = ("content_type", "encoding", "part", "parts")


def fragment_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """The fragment to replay a stored EnrichedEvent from (send it with REPLAY_HEADER = its event_id).

    The inverse of Parse as far as the event allows: the text is the normalised one, with a
    live-blog marker put back on its first line so Normalise takes it off again.
    """
    metadata = dict(event.get("metadata") or {})
    marker = event.get("marker")
    text = f"{marker['part']}/{marker['total']}\n{event['text']}" if marker else event["text"]
    fields = {
        "schema": FRAGMENT_SCHEMA, "source": event["source"], "id": event.get("source_id"), "text": text,
        "url": event.get("url"), "title": event.get("title"), "author": event.get("author"),
        "published_at": event.get("published_at"), "received_at": event.get("received_at"),
        "language": (event.get("language") or {}).get("hint"), "story_key": event.get("story_key"),
        "parent_id": event.get("parent_id"),
        **{k: metadata.pop(k) for k in _METADATA_FIELDS if k in metadata},
    }
    if metadata:
        fields["metadata"] = metadata
    return {k: v for k, v in fields.items() if v is not None}


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
