"""SQLiteSink: the embedded default store. One row per event_id (upsert), WAL mode, batched writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

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
)

_UPSERT = """
INSERT INTO events (event_id, source, source_id, url, title, published_at, received_at, processed_at,
                    language, content_hash, duplicate_of, story_key, kafka_topic, kafka_partition,
                    kafka_offset, body)
VALUES (:event_id, :source, :source_id, :url, :title, :published_at, :received_at, :processed_at,
        :language, :content_hash, :duplicate_of, :story_key, :kafka_topic, :kafka_partition,
        :kafka_offset, :body)
ON CONFLICT (event_id) DO UPDATE SET
    processed_at = excluded.processed_at, language = excluded.language,
    duplicate_of = excluded.duplicate_of, body = excluded.body
"""


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating) the store at `path` in WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for i, ddl in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        for statement in (part for part in ddl.split(";") if part.strip()):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={i}")
        conn.execute("COMMIT")
    return conn


def _row(event: dict[str, Any]) -> dict[str, Any]:
    origin = event["origin"]
    return {
        "event_id": event["event_id"], "source": event["source"], "source_id": event.get("source_id"),
        "url": event.get("url"), "title": event.get("title"), "published_at": event.get("published_at"),
        "received_at": event["received_at"], "processed_at": event["processed_at"],
        "language": event["language"]["code"], "content_hash": event["content_hash"],
        "duplicate_of": event.get("duplicate_of"), "story_key": event.get("story_key"),
        "kafka_topic": origin["topic"], "kafka_partition": origin["partition"], "kafka_offset": origin["offset"],
        "body": orjson.dumps(event).decode(),
    }


class SQLiteSink:
    """Batched, idempotent writer of EnrichedEvents: ``add``/``add_many`` buffer, ``flush`` commits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = open_database(path)
        self._buffer: list[dict[str, Any]] = []

    def add(self, event: dict[str, Any]) -> None:
        self._buffer.append(_row(event))

    def add_many(self, events: Iterable[dict[str, Any]]) -> None:
        self._buffer.extend(_row(e) for e in events)

    def flush(self) -> int:
        """Write the buffer in one transaction; returns the number of rows written."""
        if not self._buffer:
            return 0
        rows, self._buffer = self._buffer, []
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(_UPSERT, rows)
        except BaseException:
            self._conn.execute("ROLLBACK")
            self._buffer = rows + self._buffer
            raise
        self._conn.execute("COMMIT")
        return len(rows)

    def close(self) -> None:
        self._conn.close()
