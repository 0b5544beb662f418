"""What every store writes, as plain rows: one module, so SQLite and PostgreSQL store the same thing.

An event row holds the columns ops query (source, times, language, story, compact entities and
places) plus the whole EnrichedEvent as ``body``. A story row is the ``story`` summary an event
carries (``pipelines/stages/stories/transform.py``); an alert row is an Alert. Times are aware UTC
datetimes here; each sink stores them its own way (TIMESTAMPTZ, or ISO-8601 text in SQLite).

Stories only move forward: :func:`merge_story` (and both sinks' upserts) keep the earliest
``first_seen`` and the largest ``last_seen``/``event_count``/``source_count``, so replaying old
events never shrinks a story; its top entities and places follow the row with the most events.

Late merges (``story.merged_from``, docs/stories.md#late-merge): :func:`story_merges` lists the
(absorbed, survivor) pairs a batch names; :func:`merge_sql` records each in ``story_merges`` (the
redirect, absorbed id -> survivor, kept one hop deep) and folds the absorbed row into the
survivor's by the same never-backwards rules. The absorbed row stays, hidden from story lists;
lookups of its id find the survivor.

The upsert statements are written once here (:func:`upsert_sql`) and rendered per dialect, so the
two stores cannot drift apart in what a replay overwrites and what it keeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, overload


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string (``Z`` or offset), a datetime or epoch seconds as an aware UTC datetime;
    None for anything else."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


@overload
def iso(moment: datetime) -> str: ...
@overload
def iso(moment: None) -> None: ...
def iso(moment: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds and a Z: one fixed width, so text comparison is time order."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def compact_entities(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The event's entities without their mentions: what ``entities @> '[{"id": ...}]'`` queries need."""
    return [{"id": e["id"], "name": e.get("name"), "type": e.get("type")} for e in event.get("entities") or ()]


def compact_places(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The event's places without their mentions (id, name, country, feature, coordinates)."""
    return [{"id": p["id"], "name": p.get("name"), "country_code": p.get("country_code"),
             "feature": p.get("feature"), "lat": p.get("lat"), "lon": p.get("lon")}
            for p in event.get("places") or ()]


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """Columns of the ``events`` table for one EnrichedEvent (times as the event spells them)."""
    origin = event["origin"]
    return {
        "event_id": event["event_id"], "source": event["source"], "source_id": event.get("source_id"),
        "url": event.get("url"), "title": event.get("title"), "published_at": event.get("published_at"),
        "received_at": event["received_at"], "processed_at": event["processed_at"],
        "language": event["language"]["code"], "content_hash": event["content_hash"],
        "duplicate_of": event.get("duplicate_of"), "story_key": event.get("story_key"),
        "story_id": event.get("story_id"),
        "kafka_topic": origin["topic"], "kafka_partition": origin["partition"], "kafka_offset": origin["offset"],
        "entities": compact_entities(event), "places": compact_places(event),
        "body": event,
    }


def story_row(event: dict[str, Any]) -> dict[str, Any] | None:
    """The ``stories`` row an event's ``story`` summary gives, or None when the event has no story."""
    story, story_id = event.get("story"), event.get("story_id")
    if not story_id or not isinstance(story, dict):
        return None
    seen = parse_time(event.get("received_at"))
    first = parse_time(story.get("first_seen")) or seen
    last = parse_time(story.get("last_seen")) or first
    return {"story_id": story_id, "first_seen": first, "last_seen": last,
            "event_count": int(story.get("event_count") or 1), "source_count": int(story.get("source_count") or 1),
            "top_entities": story.get("top_entities") or [], "top_places": story.get("top_places") or []}


def merge_story(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Two rows of one story as one, the way the sinks' upserts combine them (never backwards)."""
    lead = new if new["event_count"] >= old["event_count"] else old
    return {"story_id": old["story_id"],
            "first_seen": min(old["first_seen"], new["first_seen"]),
            "last_seen": max(old["last_seen"], new["last_seen"]),
            "event_count": max(old["event_count"], new["event_count"]),
            "source_count": max(old["source_count"], new["source_count"]),
            "top_entities": lead["top_entities"], "top_places": lead["top_places"]}


def story_rows(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One merged row per story the events touch, in story_id order (one lock order for every writer)."""
    merged: dict[str, dict[str, Any]] = {}
    for event in events:
        row = story_row(event)
        if row is not None:
            sid = row["story_id"]
            merged[sid] = merge_story(merged[sid], row) if sid in merged else row
    return [merged[sid] for sid in sorted(merged)]


def story_merges(events: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(absorbed, survivor) for each id an event's ``story.merged_from`` lists, deduplicated, sorted."""
    pairs: set[tuple[str, str]] = set()
    for event in events:
        story, survivor = event.get("story"), event.get("story_id")
        if survivor and isinstance(story, dict):
            pairs.update((str(absorbed), survivor) for absorbed in story.get("merged_from") or ()
                         if absorbed and absorbed != survivor)
    return sorted(pairs)


def alert_row(alert: dict[str, Any]) -> dict[str, Any]:
    """Columns of the ``alerts`` table for one Alert (window start/end and fired_at as datetimes)."""
    window = alert.get("window") or {}
    return {"alert_id": alert["alert_id"], "rule": alert["rule"], "kind": alert.get("kind"),
            "severity": alert.get("severity"), "window_start": parse_time(window.get("start")),
            "window_end": parse_time(window.get("end")),
            "fired_at": parse_time(alert.get("fired_at")) or datetime.now(UTC),
            "summary": alert.get("summary"), "story_ids": list(alert.get("story_ids") or ()), "body": alert}


# --------------------------------------------------------------------------- upserts

EVENT_COLUMNS = ("event_id", "source", "source_id", "url", "title", "published_at", "received_at",
                 "processed_at", "language", "content_hash", "duplicate_of", "story_key", "story_id",
                 "kafka_topic", "kafka_partition", "kafka_offset", "entities", "places", "body")
#: What a re-delivered or replayed event rewrites; where it was first read (kafka_*) stays.
EVENT_UPDATES = {"processed_at": "excluded.processed_at", "language": "excluded.language",
                 "duplicate_of": "excluded.duplicate_of",
                 "story_id": "coalesce(excluded.story_id, events.story_id)",
                 "entities": "excluded.entities", "places": "excluded.places", "body": "excluded.body"}

STORY_COLUMNS = ("story_id", "first_seen", "last_seen", "event_count", "source_count", "top_entities",
                 "top_places", "updated_at")
# SET expressions see the row as it was, so top_* compare against the old event_count.
_LEADS = "excluded.event_count >= stories.event_count"
STORY_UPDATES = {"first_seen": "{least}(stories.first_seen, excluded.first_seen)",
                 "last_seen": "{greatest}(stories.last_seen, excluded.last_seen)",
                 "event_count": "{greatest}(stories.event_count, excluded.event_count)",
                 "source_count": "{greatest}(stories.source_count, excluded.source_count)",
                 "top_entities": f"CASE WHEN {_LEADS} THEN excluded.top_entities ELSE stories.top_entities END",
                 "top_places": f"CASE WHEN {_LEADS} THEN excluded.top_places ELSE stories.top_places END",
                 "updated_at": "excluded.updated_at"}

ALERT_COLUMNS = ("alert_id", "rule", "kind", "severity", "window_start", "window_end", "fired_at", "summary",
                 "story_ids", "body")
ALERT_UPDATES = {c: f"excluded.{c}" for c in ALERT_COLUMNS[1:]}

#: Per dialect: a named parameter, and the two-argument min/max functions.
_DIALECTS = {"sqlite": (":{}", "min", "max"), "postgresql": ("%({})s", "least", "greatest")}


def upsert_sql(dialect: str, table: str, columns: Sequence[str], updates: Mapping[str, str]) -> str:
    """``INSERT ... ON CONFLICT (<first column>) DO UPDATE SET ...`` with named parameters per column."""
    param, least, greatest = _DIALECTS[dialect]
    sets = ",\n    ".join(f"{col} = {expr.format(least=least, greatest=greatest)}" for col, expr in updates.items())
    return (f"INSERT INTO {table} ({', '.join(columns)})\n"
            f"VALUES ({', '.join(param.format(c) for c in columns)})\n"
            f"ON CONFLICT ({columns[0]}) DO UPDATE SET\n    {sets}")


def merge_sql(dialect: str) -> tuple[str, str, str]:
    """Three statements per (absorbed, survivor) pair, run in this order with parameters
    ``absorbed`` and ``survivor``, after the batch's story upserts:

    1. record the redirect (the first one recorded stays; a survivor itself absorbed since
       resolves to where it went, so a replayed old event never re-points an id backwards);
    2. re-point ids merged into the absorbed story at its survivor (redirects stay one hop);
    3. fold the absorbed row into the survivor's (earliest first_seen, largest last_seen and
       counts: the merging event's summary already adds the two up, so adding again would count
       twice and replays would keep adding).
    All three are idempotent.
    """
    param, least, greatest = _DIALECTS[dialect]
    absorbed, survivor = param.format("absorbed"), param.format("survivor")
    resolved = f"coalesce((SELECT m.merged_into FROM story_merges m WHERE m.story_id = {survivor}), {survivor})"
    record = (f"INSERT INTO story_merges (story_id, merged_into) VALUES ({absorbed}, {resolved})\n"
              "ON CONFLICT (story_id) DO NOTHING")
    repoint = f"UPDATE story_merges SET merged_into = {resolved} WHERE merged_into = {absorbed}"
    fold = (f"UPDATE stories SET first_seen = {least}(stories.first_seen, a.first_seen),"
            f" last_seen = {greatest}(stories.last_seen, a.last_seen),"
            f" event_count = {greatest}(stories.event_count, a.event_count),"
            f" source_count = {greatest}(stories.source_count, a.source_count)\n"
            f"FROM stories a WHERE a.story_id = {absorbed} AND stories.story_id = {resolved}")
    return record, repoint, fold


#: SQL conditions on a story id column (``{col}``) and one named parameter (``{p}``, rendered per
#: dialect): the story the id stands for now, and the ids that belong to a (resolved) story. Qualify
#: ``{col}`` (``stories.story_id``): inside the subquery a bare ``story_id`` is the merges table's.
RESOLVED_STORY = "coalesce((SELECT m.merged_into FROM story_merges m WHERE m.story_id = {p}), {p})"
NOT_ABSORBED = "NOT EXISTS (SELECT 1 FROM story_merges m WHERE m.story_id = {col})"
MEMBER_OF = "({col} = {p} OR {col} IN (SELECT m.story_id FROM story_merges m WHERE m.merged_into = {p}))"


def upserts(dialect: str) -> tuple[str, str, str]:
    """The events, stories and alerts upserts in `dialect` (``sqlite`` or ``postgresql``)."""
    return (upsert_sql(dialect, "events", EVENT_COLUMNS, EVENT_UPDATES),
            upsert_sql(dialect, "stories", STORY_COLUMNS, STORY_UPDATES),
            upsert_sql(dialect, "alerts", ALERT_COLUMNS, ALERT_UPDATES))
