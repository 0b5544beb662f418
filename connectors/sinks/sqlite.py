"""SQLiteSink: the embedded default store. One row per event_id (upsert), WAL mode, batched writes.

Same tables and upsert rules as :class:`connectors.sinks.postgres.PostgresSink` (rows from
:mod:`connectors.sinks.rows`): ``events``, ``stories`` (never moves backwards), ``alerts``. JSON
columns are text; times in ``stories`` and ``alerts`` are fixed-width ISO-8601 UTC text, so text
order is time order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from connectors.sinks import EventQuery, EventStore, volume_series
from connectors.sinks.rows import (
    MEMBER_OF,
    NOT_ABSORBED,
    RESOLVED_STORY,
    alert_row,
    event_row,
    iso,
    merge_sql,
    parse_time,
    story_merges,
    story_rows,
    upserts,
)

#: Schema migrations, applied in order; PRAGMA user_version records how many ran.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS events (
        event_id      TEXT PRIMARY KEY,
        source        TEXT NOT NULL,
        source_id     TEXT,
        url           TEXT,
        title         TEXT,
        published_at  TEXT,
        received_at   TEXT NOT NULL,
        processed_at  TEXT NOT NULL,
        language      TEXT NOT NULL,
        content_hash  TEXT NOT NULL,
        duplicate_of  TEXT,
        story_key     TEXT,
        kafka_topic   TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL,
        kafka_offset  INTEGER NOT NULL,
        body          TEXT NOT NULL  -- the whole EnrichedEvent as JSON
    );
    CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at);
    CREATE INDEX IF NOT EXISTS events_content_hash ON events (content_hash);
    CREATE INDEX IF NOT EXISTS events_source ON events (source, received_at);
    """,
    # 2: stories and alerts; events learn their story and carry compact entities/places (JSON text).
    """
    ALTER TABLE events ADD COLUMN story_id TEXT;
    ALTER TABLE events ADD COLUMN entities TEXT;
    ALTER TABLE events ADD COLUMN places TEXT;
    CREATE INDEX IF NOT EXISTS events_story_id ON events (story_id);
    CREATE TABLE IF NOT EXISTS stories (
        story_id      TEXT PRIMARY KEY,
        first_seen    TEXT NOT NULL,
        last_seen     TEXT NOT NULL,
        event_count   INTEGER NOT NULL,
        source_count  INTEGER NOT NULL,
        top_entities  TEXT NOT NULL,
        top_places    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS stories_last_seen ON stories (last_seen);
    CREATE TABLE IF NOT EXISTS alerts (
        alert_id      TEXT PRIMARY KEY,
        rule          TEXT NOT NULL,
        kind          TEXT,
        severity      TEXT,
        window_start  TEXT,
        window_end    TEXT,
        fired_at      TEXT NOT NULL,
        summary       TEXT,
        story_ids     TEXT NOT NULL,
        body          TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS alerts_fired_at ON alerts (fired_at);
    CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule, fired_at);
    """,
    # 3: the console's actions (newswire/console/): acknowledgements, one per alert (the first one
    # stays), and rules snoozed until a time (the latest snooze wins).
    """
    CREATE TABLE IF NOT EXISTS alert_acks (
        alert_id      TEXT PRIMARY KEY,
        acked_by      TEXT NOT NULL,
        acked_at      TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS rule_snoozes (
        rule          TEXT PRIMARY KEY,
        until         TEXT NOT NULL,
        snoozed_by    TEXT NOT NULL,
        snoozed_at    TEXT NOT NULL
    );
    """,
    # 4: late merges (docs/stories.md#late-merge): absorbed story id -> the story it is part of now.
    """
    CREATE TABLE IF NOT EXISTS story_merges (
        story_id      TEXT PRIMARY KEY,
        merged_into   TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS story_merges_merged_into ON story_merges (merged_into);
    """,
)

_UPSERT, _UPSERT_STORY, _UPSERT_ALERT = upserts("sqlite")
_MERGES = merge_sql("sqlite")
_RESOLVED = RESOLVED_STORY.format(p=":id")


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating) the store at `path` in WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    migrate(conn)
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations not yet applied (PRAGMA user_version counts them); returns the version.

    The version is read inside each migration's write transaction: workers opening the store at
    once never run one migration twice (ALTER TABLE is not idempotent).
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= len(MIGRATIONS):
            conn.execute("COMMIT")
            return int(version)
        try:
            for statement in (part for part in MIGRATIONS[version].split(";") if part.strip()):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _row(event: dict[str, Any]) -> dict[str, Any]:
    row = event_row(event)
    return {**row, "entities": _json(row["entities"]), "places": _json(row["places"]), "body": _json(event)}


def _story(row: dict[str, Any], now: str) -> dict[str, Any]:
    return {**row, "first_seen": iso(row["first_seen"]), "last_seen": iso(row["last_seen"]),
            "top_entities": _json(row["top_entities"]), "top_places": _json(row["top_places"]), "updated_at": now}


def _alert(alert: dict[str, Any]) -> dict[str, Any]:
    row = alert_row(alert)
    return {**row, "window_start": iso(row["window_start"]), "window_end": iso(row["window_end"]),
            "fired_at": iso(row["fired_at"]), "story_ids": _json(row["story_ids"]), "body": _json(alert)}


class SQLiteSink(EventStore):
    """Batched, idempotent writer of EnrichedEvents (and their stories) and Alerts into SQLite."""

    def __init__(self, path: Path | str) -> None:
        """``path``: a file path, or a ``sqlite:///path`` URL (storage.url)."""
        super().__init__(str(path))
        self.path = Path(str(path).removeprefix("sqlite:///"))
        self._conn = open_database(self.path)

    @staticmethod
    def unavailable(error: BaseException) -> bool:
        # "database is locked" (another writer past busy_timeout), disk I/O, disk full: try again.
        return isinstance(error, sqlite3.OperationalError)

    def _write(self, events: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> None:
        now = iso(datetime.now(UTC))
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(_UPSERT, [_row(e) for e in events])
            self._conn.executemany(_UPSERT_STORY, [_story(r, now) for r in story_rows(events)])
            for absorbed, survivor in story_merges(events):
                for statement in _MERGES:
                    self._conn.execute(statement, {"absorbed": absorbed, "survivor": survivor})
            self._conn.executemany(_UPSERT_ALERT, [_alert(a) for a in alerts])
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def events(self, since: str | None = None, until: str | None = None, source: str | None = None,
               limit: int | None = None) -> Iterator[dict[str, Any]]:
        where, args = _event_filter(since, until, source)
        query = f"SELECT body FROM events {where} ORDER BY received_at, event_id"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        for (body,) in self._conn.execute(query, args):
            yield orjson.loads(body)

    def alerts(self, since: str | None = None, rule: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        query = ("SELECT body FROM alerts WHERE (? IS NULL OR fired_at >= ?) AND (? IS NULL OR rule = ?)"
                 " ORDER BY fired_at DESC, alert_id LIMIT ?")
        cutoff = _stored_time(since)
        rows = self._conn.execute(query, (cutoff, cutoff, rule, rule, int(limit)))
        return [orjson.loads(body) for (body,) in rows]

    def top_stories(self, since: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        cutoff = _stored_time(since)
        cur = self._conn.execute(
            f"SELECT {', '.join(_STORY_FIELDS)} FROM stories WHERE (? IS NULL OR last_seen >= ?)"
            f" AND {NOT_ABSORBED.format(col='stories.story_id')}"
            " ORDER BY source_count DESC, event_count DESC, last_seen DESC LIMIT ?", (cutoff, cutoff, int(limit)))
        return [_story_dict(row) for row in cur]

    def acknowledge_alert(self, alert_id: str, by: str) -> None:
        self._conn.execute("INSERT INTO alert_acks (alert_id, acked_by, acked_at) VALUES (?, ?, ?)"
                           " ON CONFLICT (alert_id) DO NOTHING", (alert_id, by, iso(datetime.now(UTC))))

    def alert_acks(self, alert_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not alert_ids:
            return {}
        rows = self._conn.execute("SELECT alert_id, acked_by, acked_at FROM alert_acks WHERE alert_id IN"
                                  f" ({', '.join('?' * len(alert_ids))})", alert_ids)
        return {alert_id: {"by": by, "at": at} for alert_id, by, at in rows}

    def search_events(self, query: EventQuery, limit: int = 100) -> list[dict[str, Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (("entities", query.entity), ("places", query.place)):
            if value:
                clauses.append(f"EXISTS (SELECT 1 FROM json_each(events.{column}) WHERE"
                               " json_extract(value, '$.id') = ? OR instr(lower(json_extract(value, '$.name')), ?) > 0)")
                args += [value, value.lower()]
        if query.country:
            clauses.append("EXISTS (SELECT 1 FROM json_each(events.places) WHERE"
                           " upper(json_extract(value, '$.country_code')) = ?)")
            args.append(query.country.upper())
        for clause, value in (("language = ?", query.language), ("source = ?", query.source),
                              ("julianday(received_at) >= julianday(?)", query.since),
                              ("julianday(received_at) < julianday(?)", query.until)):
            if value:
                clauses.append(clause)
                args.append(value)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._conn.execute(f"SELECT body FROM events {where} ORDER BY julianday(received_at) DESC, event_id"
                                  " LIMIT ?", (*args, int(limit)))
        return [orjson.loads(body) for (body,) in rows]

    def snooze_rule(self, rule: str, until: str, by: str) -> None:
        self._conn.execute("INSERT INTO rule_snoozes (rule, until, snoozed_by, snoozed_at) VALUES (?, ?, ?, ?)"
                           " ON CONFLICT (rule) DO UPDATE SET until = excluded.until, snoozed_by = excluded.snoozed_by,"
                           " snoozed_at = excluded.snoozed_at", (rule, _stored_time(until), by, iso(datetime.now(UTC))))

    def rule_snoozes(self, now: str) -> dict[str, dict[str, Any]]:
        rows = self._conn.execute("SELECT rule, until, snoozed_by FROM rule_snoozes WHERE until > ? ORDER BY rule",
                                  (_stored_time(now),))
        return {rule: {"until": until, "by": by} for rule, until, by in rows}

    def growing_stories(self, since: str, limit: int = 10) -> list[dict[str, Any]]:
        # received_at is text as the connector wrote it (ISO-8601, any offset): the index narrows to
        # a day more than asked (covers every UTC offset), julianday() then compares times.
        cutoff = parse_time(since)
        if cutoff is None:
            raise ValueError(f"growing_stories: since must be an ISO-8601 time, got {since!r}")
        cur = self._conn.execute(
            f"SELECT {', '.join('s.' + f for f in _STORY_FIELDS)}, count(*) AS recent FROM events e"
            " LEFT JOIN story_merges m ON m.story_id = e.story_id"
            " JOIN stories s ON s.story_id = coalesce(m.merged_into, e.story_id) WHERE e.received_at >= ?"
            " AND julianday(e.received_at) >= julianday(?) GROUP BY s.story_id"
            " ORDER BY recent DESC, s.event_count DESC, s.last_seen DESC LIMIT ?",
            ((cutoff - timedelta(days=1)).strftime("%Y-%m-%d"), iso(cutoff), int(limit)))
        return [{**_story_dict(row[:-1]), "recent_events": row[-1]} for row in cur]

    def biggest_stories(self, since: str, limit: int = 10) -> list[dict[str, Any]]:
        cur = self._conn.execute(
            f"SELECT {', '.join(_STORY_FIELDS)} FROM stories WHERE updated_at >= ?"
            f" AND {NOT_ABSORBED.format(col='stories.story_id')}"
            " ORDER BY source_count DESC, event_count DESC, last_seen DESC LIMIT ?", (_stored_time(since), int(limit)))
        return [_story_dict(row) for row in cur]

    def story_volume(self, story_ids: list[str], since: str, bucket_s: int, buckets: int) -> dict[str, list[int]]:
        cutoff = parse_time(since)
        if not story_ids or cutoff is None:
            return volume_series((), story_ids, buckets)
        marks = ", ".join("?" * len(story_ids))
        # an absorbed story's events count for the story it was merged into
        rows = self._conn.execute(
            "SELECT coalesce(m.merged_into, e.story_id),"
            " CAST((julianday(e.received_at) - julianday(?)) * 86400 / ? AS INTEGER), count(*)"
            " FROM events e LEFT JOIN story_merges m ON m.story_id = e.story_id"
            f" WHERE (e.story_id IN ({marks}) OR m.merged_into IN ({marks}))"
            " AND julianday(e.received_at) >= julianday(?) GROUP BY 1, 2",
            (iso(cutoff), int(bucket_s), *story_ids, *story_ids, iso(cutoff)))
        return volume_series(rows, story_ids, buckets)

    def story(self, story_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(f"SELECT {', '.join(_STORY_FIELDS)} FROM stories WHERE story_id = {_RESOLVED}",
                                 {"id": story_id}).fetchone()
        if not row:
            return None
        merged = self._conn.execute("SELECT story_id FROM story_merges WHERE merged_into = ? ORDER BY story_id",
                                    (row[0],))
        return {**_story_dict(row), "merged_from": [sid for (sid,) in merged]}

    def story_events(self, story_id: str, limit: int = 200) -> list[dict[str, Any]]:
        members = MEMBER_OF.format(col="events.story_id", p=f"({_RESOLVED})")
        rows = self._conn.execute(f"SELECT body FROM events WHERE {members}"
                                  " ORDER BY julianday(received_at), event_id LIMIT :limit",
                                  {"id": story_id, "limit": int(limit)})
        return [orjson.loads(body) for (body,) in rows]

    def event(self, event_id: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT body FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def close(self) -> None:
        self._conn.close()


_STORY_FIELDS = ("story_id", "first_seen", "last_seen", "event_count", "source_count", "top_entities", "top_places")


def _story_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    return {**dict(zip(_STORY_FIELDS, row, strict=True)), "top_entities": orjson.loads(row[5]),
            "top_places": orjson.loads(row[6])}


def _stored_time(value: str | None) -> str | None:
    """A time as the stories and alerts tables store it (fixed-width ISO UTC text), for comparisons."""
    moment = parse_time(value) if value is not None else None
    return iso(moment) if moment is not None else None


def _event_filter(since: str | None, until: str | None, source: str | None) -> tuple[str, list[Any]]:
    clauses, args = [], []
    # julianday(): received_at is text as the connector wrote it (with or without milliseconds, any
    # offset), so compare times, not strings. Replay reads are rare; no index needed.
    for clause, value in (("julianday(received_at) >= julianday(?)", since),
                          ("julianday(received_at) < julianday(?)", until), ("source = ?", source)):
        if value is not None:
            clauses.append(clause)
            args.append(value)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args
