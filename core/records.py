"""The pipeline's records: parsing a raw Kafka value into a Fragment, event ids, dead letters.

Pure functions (no Beam, no Kafka client): the transforms, the CLI and the tests share them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

import orjson

from core.schemas import SchemaViolation, validate

FRAGMENT_SCHEMA = "fragment/1"
ENRICHED_SCHEMA = "enriched-event/1"
DEAD_LETTER_SCHEMA = "dead-letter/1"
_EVENT_ID = re.compile(r"[0-9a-f]{32}")

#: How deep a fragment's ``metadata`` may nest (orjson serialises at most 254 levels; stores and
#: consumers choke well before that) and how large it may be once serialised.
MAX_METADATA_DEPTH = 16
MAX_METADATA_BYTES = 32_768
#: Bytes of the original record a dead letter carries (its sha256 and size cover the rest; the
#: whole record stays on the raw topic at ``origin`` for the topic's retention).
DLQ_EXCERPT_BYTES = 65_536
#: Characters of an error message a dead letter keeps (messages quote input).
MAX_ERROR_CHARS = 2_000

#: How long the interval is that a ``published_at`` of each ``published_precision`` stands for, in
#: seconds: a feed that gives a date with no time ("day") says the report appeared within that UTC
#: day, and ``published_at`` is its midnight. No precision: the time is exact.
PUBLISHED_PRECISION_S: Mapping[str, float] = {"day": 86_400.0}

#: Kafka header of a replayed fragment (``newswire replay``): the event id it was first stored
#: under. A replayed fragment is rebuilt from the stored event, whose text is already normalised,
#: so its content-derived id would differ; Parse takes the id from the header instead, and the
#: sinks' upsert rewrites the original row. A header, not a fragment field: connectors never copy
#: headers from their input, so only a producer on the raw topic itself can set it.
REPLAY_HEADER = "newswire-replay-of"


class EnrichedEvent(TypedDict, total=False):
    """The event the pipeline writes (config/schemas/enriched-event.v1.json): its field names,
    declared once. A TypedDict, not a class: at run time the event stays a plain dict, which
    Beam's coder and orjson handle fastest (a dataclass or msgspec Struct would add a conversion
    at every stage boundary), while mypy and readers get the names and types. A test checks this
    declaration against the JSON Schema."""

    schema: str
    event_id: str
    source: str
    source_id: str | None
    url: str | None
    title: str | None
    author: str | None
    published_at: str | None
    published_precision: str | None
    received_at: str
    processed_at: str
    text: str
    content_hash: str
    language: dict[str, Any]
    marker: dict[str, int] | None
    story_key: str | None
    parent_id: str | None
    entities: list[dict[str, Any]]
    places: list[dict[str, Any]]
    focus_place: str | None
    nationalities: list[dict[str, Any]]
    duplicate_of: str | None
    near_duplicate_of: str | None
    update_of: str | None
    dedup_kind: str | None
    similarity: float | None
    containment: float | None
    story_id: str
    story: dict[str, Any]
    novelty: dict[str, Any]
    removed: list[str]
    truncated: dict[str, int] | None
    metadata: dict[str, Any]
    origin: dict[str, Any]


class InFlightEvent(EnrichedEvent, total=False):
    """An event between stages: the EnrichedEvent fields so far plus private keys that never leave
    the pipeline: ``_start`` (the reader's position before the record, for the offset ledger),
    ``_value`` / ``_key`` (the original record, so a stage can still dead-letter it; dropped before
    the first shuffle), ``_alerts`` (the alerts the event fired, delivered with it)."""

    _start: int
    _value: bytes
    _key: bytes | None
    _alerts: list[dict[str, Any]]


#: Keys of an in-flight event that never leave the pipeline as event fields.
PRIVATE_KEYS: tuple[str, ...] = tuple(k for k in InFlightEvent.__annotations__ if k not in EnrichedEvent.__annotations__)
#: What each stateful stage adds to an event.
DEDUP_FIELDS = ("duplicate_of", "near_duplicate_of", "update_of", "dedup_kind", "similarity", "containment")
STORY_FIELDS = ("story_id", "story", "novelty")
ALERTS_KEY = "_alerts"


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


def nesting_depth(value: Any, limit: int) -> int:
    """How deep containers nest in ``value`` (a scalar is 0, ``{}`` is 1), counting no further than
    ``limit + 1``. Iterative: a hostile document cannot exhaust the stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _without_nul(value: Any) -> Any:
    """``value`` with every NUL in its strings (keys too) replaced by U+FFFD: PostgreSQL text and
    JSONB cannot hold NUL, and C consumers of the topics stop at it."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def check_fragment(doc: Any) -> dict[str, Any]:
    """The fragment ``doc`` ready for the pipeline (NULs replaced), or Rejected saying why not:
    the schema (config/schemas/fragment.v1.json), non-blank text, and the bounds the schema cannot
    say (``metadata`` depth and size). Connectors run the same check before they answer."""
    if not isinstance(doc, dict):
        raise Rejected("validate", "schema", f"fragment must be a JSON object, got {type(doc).__name__}")
    try:
        validate("fragment", doc)
    except SchemaViolation as exc:
        raise Rejected("validate", "schema", str(exc)) from None
    if not doc["text"].strip():
        raise Rejected("validate", "empty_text", "fragment: text: is empty or only whitespace")
    metadata = doc.get("metadata")
    if metadata:
        if nesting_depth(metadata, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
            raise Rejected("validate", "metadata_too_deep", f"fragment: metadata: nests deeper than "
                           f"{MAX_METADATA_DEPTH} levels; flatten it")
        size = len(orjson.dumps(metadata))
        if size > MAX_METADATA_BYTES:
            raise Rejected("validate", "metadata_too_large", f"fragment: metadata: is {size} bytes as JSON, "
                           f"over the {MAX_METADATA_BYTES}-byte limit")
    return doc


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
    doc = check_fragment(doc)
    if "\\u0000" in text:  # JSON must escape NUL, so this finds every one, and costs nothing otherwise
        doc = _without_nul(doc)
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
        "published_at": event.get("published_at"), "published_precision": event.get("published_precision"),
        "received_at": event.get("received_at"),
        "language": (event.get("language") or {}).get("hint"), "story_key": event.get("story_key"),
        "parent_id": event.get("parent_id"),
        **{k: metadata.pop(k) for k in _METADATA_FIELDS if k in metadata},
    }
    if metadata:
        fields["metadata"] = metadata
    return {k: v for k, v in fields.items() if v is not None}


def dead_letter(stage: str, reason: str, error: str, value: bytes | None, key: bytes | None,
                topic: str, partition: int, offset: int, timestamp_ms: int | None) -> dict[str, Any]:
    """A DLQ record (config/schemas/dead-letter.v1.json), bounded whatever the input: the first
    DLQ_EXCERPT_BYTES of the original (``original_truncated`` says when that is not all of it)
    with the whole original's size and sha256, the key likewise, and the error message cut to
    MAX_ERROR_CHARS. A record at ``origin`` can always be fetched whole from the raw topic."""
    value = value or b""
    if len(error) > MAX_ERROR_CHARS:
        error = error[:MAX_ERROR_CHARS] + f"... ({len(error) - MAX_ERROR_CHARS} more characters)"
    return {
        "schema": DEAD_LETTER_SCHEMA,
        "stage": stage,
        "reason": reason,
        "error": error,
        "original_b64": base64.b64encode(value[:DLQ_EXCERPT_BYTES]).decode(),
        "original_size": len(value),
        "original_sha256": hashlib.sha256(value).hexdigest(),
        "original_truncated": len(value) > DLQ_EXCERPT_BYTES,
        "original_key_b64": base64.b64encode(key[:1024]).decode() if key is not None else None,
        "origin": {"topic": topic, "partition": partition, "offset": offset, "timestamp_ms": timestamp_ms},
        "failed_at": utc_now_iso(),
    }


def event_time_ms(event: Mapping[str, Any]) -> int:
    """The event time every stage uses (dedup and story horizons, alert windows, stats windows):
    the raw fragment's Kafka record time, ``origin.timestamp_ms``. The raw topic stamps
    LogAppendTime, so it is the broker's clock, monotonic per partition, and what the reader's
    watermarks follow. ``received_at`` (a connector's clock) is only the fallback for an event that
    never went through Kafka (a tool, a test)."""
    ms = (event.get("origin") or {}).get("timestamp_ms")
    if ms is not None:
        return int(ms)
    received = event.get("received_at")
    if received:
        return round(datetime.fromisoformat(received).timestamp() * 1000)
    raise ValueError(f"event {event.get('event_id')}: no origin.timestamp_ms and no received_at")


def analysis_text(event: Mapping[str, Any]) -> str:
    """The part of an event's text that enrichment, dedup and stories read: all of it, or the first
    ``truncated.analysis_chars`` characters when Normalise bounded it (pipeline.analysis_max_chars)."""
    text: str = event["text"]
    cut = (event.get("truncated") or {}).get("analysis_chars")
    return text[:cut] if cut is not None else text


def analysis_bound(text: str, max_chars: int) -> int | None:
    """Where to stop reading a text longer than ``max_chars``: at the last whitespace before the bound
    (so no word is cut in half), or None when the text is short enough."""
    if len(text) <= max_chars:
        return None
    space = max(text.rfind(" ", max_chars - 200, max_chars), text.rfind("\n", max_chars - 200, max_chars))
    return space if space > 0 else max_chars


def bound_lists(event: dict[str, Any], max_items: int) -> dict[str, Any]:
    """The event with its entities, places and nationalities (most mentioned first kept, text order kept), each
    one's mentions and novelty.new_sentences cut to ``max_items``; ``truncated`` counts the cuts."""
    cuts: dict[str, int] = {}
    out = event
    for key in ("entities", "places", "nationalities"):
        items = event.get(key) or []
        mentions_cut = sum(max(0, len(i.get("mentions") or ()) - max_items) for i in items)
        if len(items) <= max_items and not mentions_cut:
            continue
        if len(items) > max_items:
            cuts[key] = len(items) - max_items
            keep = set(sorted(range(len(items)), key=lambda n: -len(items[n].get("mentions") or ()))[:max_items])
            items = [i for n, i in enumerate(items) if n in keep]
            mentions_cut = sum(max(0, len(i.get("mentions") or ()) - max_items) for i in items)
        if mentions_cut:
            cuts["mentions"] = cuts.get("mentions", 0) + mentions_cut
            items = [{**i, "mentions": i["mentions"][:max_items]} if len(i.get("mentions") or ()) > max_items else i
                     for i in items]
        out = {**out, key: items}
    novelty = event.get("novelty")
    if novelty and len(novelty.get("new_sentences") or ()) > max_items:
        cuts["new_sentences"] = len(novelty["new_sentences"]) - max_items
        out = {**out, "novelty": {**novelty, "new_sentences": novelty["new_sentences"][:max_items]}}
    if not cuts:
        return event
    return {**out, "truncated": {**(event.get("truncated") or {}), **cuts}}


@dataclass(frozen=True)
class Delivery:
    """What happens to one raw record: an enriched event for storage and the enriched topic, or a
    dead letter for the DLQ topic, plus the alerts the event fired (storage and the alerts topic).
    Carries the record's offset interval for the ledger."""

    kind: str  # "event" | "dead_letter"
    payload: dict[str, Any]
    topic: str
    partition: int
    start: int
    next_offset: int
    key: bytes | None = None
    alerts: tuple[dict[str, Any], ...] = ()


def delivery_failed(d: Delivery, stage: str, reason: str, error: str) -> Delivery:
    """The dead letter that replaces an event the store or topic refused (the event as the original);
    its alerts still go out."""
    payload = dead_letter(stage, reason, error, orjson.dumps(d.payload), d.key, d.topic, d.partition,
                          d.next_offset - 1, (d.payload.get("origin") or {}).get("timestamp_ms"))
    return Delivery(kind="dead_letter", payload=payload, topic=d.topic, partition=d.partition, start=d.start,
                    next_offset=d.next_offset, key=d.key, alerts=d.alerts)
