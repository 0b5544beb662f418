"""PostgresSink: the shared store. Same interface and upsert rules as SQLiteSink, batched in one
transaction, JSONB columns with GIN indexes for entity and place queries.

Tables (rows from :mod:`connectors.sinks.rows`):

- ``events``: one row per event_id; ``entities``/``places`` are compact JSONB arrays (id, name,
  type / country, feature, coordinates) for ``entities @> '[{"id": "person:..."}]'``; ``body`` is
  the whole EnrichedEvent.
- ``stories``: one row per story_id; an upsert keeps the earliest first_seen and the largest
  last_seen/event_count/source_count, so replays never move a story backwards.
- ``alerts``: one row per alert_id.
- ``schema_migrations``: which numbered migrations ran (under an advisory lock, so workers
  starting together migrate once).

Writers lock rows in one order (events by event_id, then stories by story_id), so two workers
flushing overlapping batches wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

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

#: Schema migrations, applied in order; schema_migrations records each version that ran.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS events (
        event_id        TEXT PRIMARY KEY,
        source          TEXT NOT NULL,
        source_id       TEXT,
        url             TEXT,
        title           TEXT,
        published_at    TIMESTAMPTZ,
        received_at     TIMESTAMPTZ NOT NULL,
        processed_at    TIMESTAMPTZ NOT NULL,
        language        TEXT NOT NULL,
        content_hash    TEXT NOT NULL,
        duplicate_of    TEXT,
        story_key       TEXT,
        story_id        TEXT,
        kafka_topic     TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL,
        kafka_offset    BIGINT NOT NULL,
        entities        JSONB NOT NULL DEFAULT '[]',
        places          JSONB NOT NULL DEFAULT '[]',
        body            JSONB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at);
    CREATE INDEX IF NOT EXISTS events_content_hash ON events (content_hash);
    CREATE INDEX IF NOT EXISTS events_source ON events (source, received_at);
    CREATE INDEX IF NOT EXISTS events_story_id ON events (story_id);
    CREATE INDEX IF NOT EXISTS events_entities ON events USING GIN (entities jsonb_path_ops);
    CREATE INDEX IF NOT EXISTS events_places ON events USING GIN (places jsonb_path_ops);
    CREATE TABLE IF NOT EXISTS stories (
        story_id      TEXT PRIMARY KEY,
        first_seen    TIMESTAMPTZ NOT NULL,
        last_seen     TIMESTAMPTZ NOT NULL,
        event_count   INTEGER NOT NULL,
        source_count  INTEGER NOT NULL,
        top_entities  JSONB NOT NULL,
        top_places    JSONB NOT NULL,
        updated_at    TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX IF NOT EXISTS stories_last_seen ON stories (last_seen);
    CREATE TABLE IF NOT EXISTS alerts (
        alert_id      TEXT PRIMARY KEY,
        rule          TEXT NOT NULL,
        kind          TEXT,
        severity      TEXT,
        window_start  TIMESTAMPTZ,
        window_end    TIMESTAMPTZ,
        fired_at      TIMESTAMPTZ NOT NULL,
        summary       TEXT,
        story_ids     JSONB NOT NULL,
        body          JSONB NOT NULL
    );
    CREATE INDEX IF NOT EXISTS alerts_fired_at ON alerts (fired_at);
    CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule, fired_at);
    """,
    # 2: the console's actions (newswire/console/): acknowledgements, one per alert (the first one
    # stays), and rules snoozed until a time (the latest snooze wins).
    """
    CREATE TABLE IF NOT EXISTS alert_acks (
        alert_id      TEXT PRIMARY KEY,
        acked_by      TEXT NOT NULL,
        acked_at      TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE IF NOT EXISTS rule_snoozes (
        rule          TEXT PRIMARY KEY,
        until         TIMESTAMPTZ NOT NULL,
        snoozed_by    TEXT NOT NULL,
        snoozed_at    TIMESTAMPTZ NOT NULL
    );
    """,
    # 3: late merges (docs/stories.md#late-merge): absorbed story id -> the story it is part of now.
    """
    CREATE TABLE IF NOT EXISTS story_merges (
        story_id      TEXT PRIMARY KEY,
        merged_into   TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS story_merges_merged_into ON story_merges (merged_into);
    """,
)

#: Any constant works: it only has to be the same for every process migrating this database.
_MIGRATION_LOCK = 0x6E657773  # "news"

_UPSERT, _UPSERT_STORY, _UPSERT_ALERT = upserts("postgresql")
_MERGES = merge_sql("postgresql")
_RESOLVED = RESOLVED_STORY.format(p="%(id)s")


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Apply the migrations not yet applied; returns the schema version. Safe to run concurrently."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                     "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        version = int(row[0]) if row else 0
        for number, ddl in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute(ddl)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
    return max(version, len(MIGRATIONS))


_STORY_FIELDS = ("story_id", "first_seen", "last_seen", "event_count", "source_count", "top_entities", "top_places")


def _story_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    return {**dict(zip(_STORY_FIELDS, row, strict=True)), "first_seen": iso(row[1]), "last_seen": iso(row[2])}


def _row(event: dict[str, Any]) -> dict[str, Any]:
    row = event_row(event)
    # Times the schema does not guarantee parse as NULL rather than failing the batch (and with it
    # the pipeline); received_at falls back to the Kafka record time. The body keeps the original.
    received = parse_time(row["received_at"]) or datetime.fromtimestamp(
        (event["origin"].get("timestamp_ms") or 0) / 1000, UTC)
    return {**row, "published_at": parse_time(row["published_at"]), "received_at": received,
            "processed_at": parse_time(row["processed_at"]) or datetime.now(UTC),
            "entities": Jsonb(row["entities"]), "places": Jsonb(row["places"]), "body": Jsonb(event)}


def _story(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {**row, "top_entities": Jsonb(row["top_entities"]), "top_places": Jsonb(row["top_places"]),
            "updated_at": now}


def _alert(alert: dict[str, Any]) -> dict[str, Any]:
    row = alert_row(alert)
    return {**row, "story_ids": Jsonb(row["story_ids"]), "body": Jsonb(alert)}


class PostgresSink(EventStore):
    """Batched, idempotent writer of EnrichedEvents (and their stories) and Alerts into PostgreSQL.

    ``url`` is a libpq URL (``postgresql://user@host:port/db``); the database must exist (the
    embedded server creates its own, see :mod:`connectors.postgres`). A connection lost between
    flushes is reopened on the next flush; a flush that fails keeps its rows buffered.
    """

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._conn = self._connect()
        migrate(self._conn)

    @staticmethod
    def unavailable(error: BaseException) -> bool:
        # OperationalError: connection refused or lost, server shutting down or starting;
        # InterfaceError: the connection object is closed. DataError and the like are the rows'.
        return isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError))

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=10, application_name="newswire")

    def _write(self, events: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> None:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.executemany(_UPSERT, [_row(e) for e in sorted(events, key=lambda e: e["event_id"])])
            now = datetime.now(UTC)
            cur.executemany(_UPSERT_STORY, [_story(r, now) for r in story_rows(events)])
            for absorbed, survivor in story_merges(events):
                for statement in _MERGES:
                    cur.execute(statement, {"absorbed": absorbed, "survivor": survivor})
            cur.executemany(_UPSERT_ALERT, [_alert(a) for a in sorted(alerts, key=lambda a: a["alert_id"])])

    def events(self, since: str | None = None, until: str | None = None, source: str | None = None,
               limit: int | None = None) -> Iterator[dict[str, Any]]:
        query = ("SELECT body FROM events WHERE (%(since)s::timestamptz IS NULL OR received_at >= %(since)s)"
                 " AND (%(until)s::timestamptz IS NULL OR received_at < %(until)s)"
                 " AND (%(source)s::text IS NULL OR source = %(source)s)"
                 " ORDER BY received_at, event_id LIMIT %(limit)s")
        args = {"since": since, "until": until, "source": source, "limit": limit}
        # A named (server-side) cursor streams a large store instead of loading it whole.
        with self._conn.transaction(), self._conn.cursor(name="newswire_replay") as cur:
            cur.execute(query, args)
            for (body,) in cur:
                yield body

    def alerts(self, since: str | None = None, rule: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        query = ("SELECT body FROM alerts WHERE (%(since)s::timestamptz IS NULL OR fired_at >= %(since)s)"
                 " AND (%(rule)s::text IS NULL OR rule = %(rule)s) ORDER BY fired_at DESC, alert_id LIMIT %(limit)s")
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute(query, {"since": since, "rule": rule, "limit": limit})
            return [body for (body,) in cur.fetchall()]

    def top_stories(self, since: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        query = (f"SELECT {', '.join(_STORY_FIELDS)} FROM stories"
                 " WHERE (%(since)s::timestamptz IS NULL OR last_seen >= %(since)s)"
                 f" AND {NOT_ABSORBED.format(col='stories.story_id')}"
                 " ORDER BY source_count DESC, event_count DESC, last_seen DESC LIMIT %(limit)s")
        return [_story_dict(row) for row in self._fetch(query, {"since": since, "limit": limit})]

    def acknowledge_alert(self, alert_id: str, by: str) -> None:
        self._fetch("INSERT INTO alert_acks (alert_id, acked_by, acked_at) VALUES (%(id)s, %(by)s, now())"
                    " ON CONFLICT (alert_id) DO NOTHING RETURNING alert_id", {"id": alert_id, "by": by})

    def alert_acks(self, alert_ids: list[str]) -> dict[str, dict[str, Any]]:
        rows = self._fetch("SELECT alert_id, acked_by, acked_at FROM alert_acks WHERE alert_id = ANY(%(ids)s)",
                           {"ids": list(alert_ids)})
        return {alert_id: {"by": by, "at": iso(at)} for alert_id, by, at in rows}

    def search_events(self, query: EventQuery, limit: int = 100) -> list[dict[str, Any]]:
        clauses: list[str] = []
        args: dict[str, Any] = {"limit": limit}
        for column, value in (("entities", query.entity), ("places", query.place)):
            if value:
                clauses.append(f"EXISTS (SELECT 1 FROM jsonb_array_elements(events.{column}) t WHERE"
                               f" t->>'id' = %({column})s OR strpos(lower(t->>'name'), lower(%({column})s)) > 0)")
                args[column] = value
        if query.country:
            clauses.append("EXISTS (SELECT 1 FROM jsonb_array_elements(events.places) t WHERE"
                           " upper(t->>'country_code') = upper(%(country)s))")
            args["country"] = query.country
        for name, clause, value in (("language", "language = %(language)s", query.language),
                                    ("source", "source = %(source)s", query.source),
                                    ("since", "received_at >= %(since)s", query.since),
                                    ("until", "received_at < %(until)s", query.until)):
            if value:
                clauses.append(clause)
                args[name] = value
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._fetch(f"SELECT body FROM events {where} ORDER BY received_at DESC, event_id LIMIT %(limit)s", args)
        return [body for (body,) in rows]

    def snooze_rule(self, rule: str, until: str, by: str) -> None:
        self._fetch("INSERT INTO rule_snoozes (rule, until, snoozed_by, snoozed_at) VALUES (%(rule)s, %(until)s,"
                    " %(by)s, now()) ON CONFLICT (rule) DO UPDATE SET until = excluded.until,"
                    " snoozed_by = excluded.snoozed_by, snoozed_at = excluded.snoozed_at RETURNING rule",
                    {"rule": rule, "until": until, "by": by})

    def rule_snoozes(self, now: str) -> dict[str, dict[str, Any]]:
        rows = self._fetch("SELECT rule, until, snoozed_by FROM rule_snoozes WHERE until > %(now)s ORDER BY rule",
                           {"now": now})
        return {rule: {"until": iso(until), "by": by} for rule, until, by in rows}

    def growing_stories(self, since: str, limit: int = 10) -> list[dict[str, Any]]:
        query = (f"SELECT {', '.join('s.' + f for f in _STORY_FIELDS)}, count(*) AS recent FROM events e"
                 " LEFT JOIN story_merges m ON m.story_id = e.story_id"
                 " JOIN stories s ON s.story_id = coalesce(m.merged_into, e.story_id)"
                 " WHERE e.received_at >= %(since)s GROUP BY s.story_id"
                 " ORDER BY recent DESC, s.event_count DESC, s.last_seen DESC LIMIT %(limit)s")
        return [{**_story_dict(row[:-1]), "recent_events": row[-1]}
                for row in self._fetch(query, {"since": since, "limit": limit})]

    def biggest_stories(self, since: str, limit: int = 10) -> list[dict[str, Any]]:
        query = (f"SELECT {', '.join(_STORY_FIELDS)} FROM stories WHERE updated_at >= %(since)s"
                 f" AND {NOT_ABSORBED.format(col='stories.story_id')}"
                 " ORDER BY source_count DESC, event_count DESC, last_seen DESC LIMIT %(limit)s")
        return [_story_dict(row) for row in self._fetch(query, {"since": since, "limit": limit})]

    def story_volume(self, story_ids: list[str], since: str, bucket_s: int, buckets: int) -> dict[str, list[int]]:
        # an absorbed story's events count for the story it was merged into
        query = ("SELECT coalesce(m.merged_into, e.story_id),"
                 " floor(extract(epoch FROM e.received_at - %(since)s::timestamptz) / %(bucket)s)::int, count(*)"
                 " FROM events e LEFT JOIN story_merges m ON m.story_id = e.story_id"
                 " WHERE (e.story_id = ANY(%(ids)s) OR m.merged_into = ANY(%(ids)s)) AND e.received_at >= %(since)s"
                 " GROUP BY 1, 2")
        rows = self._fetch(query, {"since": since, "bucket": bucket_s, "ids": list(story_ids)}) if story_ids else []
        return volume_series(((r[0], r[1], r[2]) for r in rows), story_ids, buckets)

    def story(self, story_id: str) -> dict[str, Any] | None:
        fields = ", ".join(_STORY_FIELDS)
        rows = self._fetch(f"SELECT {fields}, array(SELECT m.story_id FROM story_merges m"
                           " WHERE m.merged_into = stories.story_id ORDER BY m.story_id)"
                           f" FROM stories WHERE story_id = {_RESOLVED}", {"id": story_id})
        return {**_story_dict(rows[0][:-1]), "merged_from": list(rows[0][-1])} if rows else None

    def story_events(self, story_id: str, limit: int = 200) -> list[dict[str, Any]]:
        members = MEMBER_OF.format(col="events.story_id", p=f"({_RESOLVED})")
        query = f"SELECT body FROM events WHERE {members} ORDER BY received_at, event_id LIMIT %(limit)s"
        return [body for (body,) in self._fetch(query, {"id": story_id, "limit": limit})]

    def event(self, event_id: str) -> dict[str, Any] | None:
        rows = self._fetch("SELECT body FROM events WHERE event_id = %(id)s", {"id": event_id})
        return rows[0][0] if rows else None

    def size_bytes(self) -> int:
        return int(self._fetch("SELECT pg_database_size(current_database())", {})[0][0])

    def _fetch(self, query: str, args: dict[str, Any]) -> list[tuple[Any, ...]]:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()

    def close(self) -> None:
        self._conn.close()
