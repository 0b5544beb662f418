"""RssSource: poll RSS and Atom feeds and push each new or changed item as a fragment.

- Every feed in ``connectors.rss.feeds`` is polled on its own interval with a conditional GET
  (If-None-Match / If-Modified-Since), so an unchanged feed costs a 304 and nothing else.
- Items are remembered per feed by GUID (else link, else a hash of title and text) with a hash of
  their content, in SQLite under ``<data_dir>/connectors/rss.sqlite``: an item is emitted once,
  again only if its content changed (a correction), and the memory survives restarts.
- The memory and the feed's validators (ETag, Last-Modified) are saved only after the broker
  acknowledged the items, so a failed write is retried on the next poll, never lost. A crash
  between the acknowledgement and the save re-sends those items once; their event ids are
  stable (core.records.event_id_for), so the sinks keep one row.
- A failed poll (network, HTTP status, unparseable feed, broker) doubles the feed's interval per
  consecutive failure up to ``max_backoff_s``; `health()` reports last success and last error.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import feedparser
import httpx
import orjson

from connectors.metrics import MetricsServer
from connectors.sources.base import BaseSource, FragmentWriter, complete_fragment, iso_at, published_precision
from connectors.sources.metrics import SourceMetrics
from connectors.status import ConnectorStatus, StatusBoard
from core.markup import html_to_text
from core.settings import ConfigError, RssFeed, Settings

log = logging.getLogger(__name__)

_LANGUAGE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    name          TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    etag          TEXT,
    modified      TEXT,
    last_success  TEXT,
    last_error    TEXT,
    last_error_at TEXT,
    failures      INTEGER NOT NULL DEFAULT 0,
    next_poll     REAL NOT NULL DEFAULT 0,
    emitted       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS items (
    feed         TEXT NOT NULL,
    guid         TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    PRIMARY KEY (feed, guid)
);
"""

# Items no longer in a feed are forgotten after this long (feeds drop old items; memory stays small).
FORGET_AFTER_S = 30 * 86400


@dataclass(frozen=True)
class FeedHealth:
    """How a feed is doing: last successful poll, last error, when it is polled next."""

    name: str
    url: str
    last_success: str | None
    last_error: str | None
    last_error_at: str | None
    consecutive_failures: int
    next_poll_in_s: float
    items_emitted: int


class FeedMemory:
    """What the poller has seen, per feed, in SQLite: validators, item GUIDs with content hashes, health."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def feed(self, feed: RssFeed) -> sqlite3.Row:
        with self._lock:
            self._conn.execute("INSERT OR IGNORE INTO feeds (name, url) VALUES (?, ?)", (feed.name, feed.url))
            self._conn.execute("UPDATE feeds SET url = ? WHERE name = ?", (feed.url, feed.name))
            cur = self._conn.execute("SELECT * FROM feeds WHERE name = ?", (feed.name,))
            cur.row_factory = sqlite3.Row
            row: sqlite3.Row = cur.fetchone()
            return row

    def seen(self, feed: str) -> dict[str, str]:
        with self._lock:
            return dict(self._conn.execute("SELECT guid, content_hash FROM items WHERE feed = ?", (feed,)))

    def succeeded(self, feed: RssFeed, items: list[tuple[str, str]], present: list[str], etag: str | None,
                  modified: str | None, interval_s: float) -> None:
        """Record a successful poll in one transaction: items written, validators, health."""
        now = iso_at(time.time())
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO items (feed, guid, content_hash, first_seen, last_seen) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (feed, guid) DO UPDATE SET content_hash = excluded.content_hash, last_seen = ?",
                [(feed.name, guid, digest, now, now, now) for guid, digest in items])
            self._conn.executemany("UPDATE items SET last_seen = ? WHERE feed = ? AND guid = ?",
                                   [(now, feed.name, guid) for guid in present])
            self._conn.execute("DELETE FROM items WHERE feed = ? AND last_seen < ?",
                               (feed.name, iso_at(time.time() - FORGET_AFTER_S)))
            self._conn.execute(
                "UPDATE feeds SET etag = coalesce(?, etag), modified = coalesce(?, modified), last_success = ?, "
                "failures = 0, next_poll = ?, emitted = emitted + ? WHERE name = ?",
                (etag, modified, now, time.time() + interval_s, len(items), feed.name))
            self._conn.execute("COMMIT")

    def failed(self, feed: RssFeed, error: str, max_backoff_s: float) -> float:
        """Record a failed poll; returns the delay until the next try (interval doubled per failure)."""
        with self._lock:
            failures = self._conn.execute("SELECT failures FROM feeds WHERE name = ?", (feed.name,)).fetchone()[0] + 1
            delay = min(max(max_backoff_s, feed.interval_s), feed.interval_s * 2 ** min(failures, 20))
            self._conn.execute("UPDATE feeds SET last_error = ?, last_error_at = ?, failures = ?, next_poll = ? "
                               "WHERE name = ?", (error[:2000], iso_at(time.time()), failures, time.time() + delay, feed.name))
            return delay

    def health(self, feeds: tuple[RssFeed, ...]) -> list[FeedHealth]:
        out = []
        now = time.time()
        for feed in feeds:
            row = self.feed(feed)
            out.append(FeedHealth(feed.name, feed.url, row["last_success"], row["last_error"], row["last_error_at"],
                                  row["failures"], max(0.0, row["next_poll"] - now), row["emitted"]))
        return out

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _entry_text(entry: Any) -> tuple[str, str | None]:
    """The richest text an entry carries (full content, else summary, else title) and its type."""
    for content in entry.get("content") or []:
        if content.get("value", "").strip():
            return content["value"], content.get("type")
    detail = entry.get("summary_detail") or {}
    if entry.get("summary", "").strip():
        return entry["summary"], detail.get("type")
    return entry.get("title", ""), (entry.get("title_detail") or {}).get("type")


def _language(value: Any) -> str | None:
    code = str(value or "").strip().lower().replace("_", "-")
    head = code.split("-")[0]
    return code if 2 <= len(head) <= 3 and head.isalpha() and set(code) <= _LANGUAGE_CHARS else None


def entry_fragment(feed: RssFeed, parsed: Any, entry: Any) -> tuple[str, dict[str, Any]]:
    """(GUID, fragment) for one feed entry; the text is plain (HTML stripped, paragraphs kept)."""
    text, content_type = _entry_text(entry)  # complete_fragment turns HTML into text
    title = html_to_text(entry["title"]) if entry.get("title") else None
    guid = entry.get("id") or entry.get("link") or hashlib.blake2b(
        orjson.dumps([title, text]), digest_size=16).hexdigest()
    published = entry.get("published_parsed") or entry.get("updated_parsed")
    published_raw = entry.get("published") if entry.get("published_parsed") else entry.get("updated")
    fragment: dict[str, Any] = {
        "source": f"rss:{feed.name}",
        "id": guid[:1000],
        "text": text,
        "url": entry.get("link"),
        "title": title,
        "author": entry.get("author"),
        "published_at": published,  # a UTC struct_time; complete_fragment writes RFC 3339
        "content_type": content_type or "text/plain",
        "encoding": parsed.get("encoding"),
        "language": _language(entry.get("language") or parsed.feed.get("language")),
        "metadata": {"feed": feed.url, "feed_title": parsed.feed.get("title"),
                     "format": parsed.get("version") or None,
                     "published_raw": entry.get("published") or entry.get("updated")},
    }
    precision = published_precision(published_raw) if published else None
    if precision:  # the feed gave a date alone
        fragment["published_precision"] = precision
    return guid, complete_fragment(fragment, fragment["source"])


def content_digest(fragment: dict[str, Any]) -> str:
    """What makes an item 'changed': its title, text and link (not times or feed metadata)."""
    identity = orjson.dumps([fragment.get("title"), fragment["text"], fragment.get("url")])
    return hashlib.blake2b(identity, digest_size=16).hexdigest()


class RssSource(BaseSource):
    """Polls ``connectors.rss.feeds`` on a background thread; ``poll_due()`` / ``poll(feed)`` do one
    round by hand (the CLI and tests)."""

    name = "rss"
    summary = "poll the feeds in connectors.rss.feeds"

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        return settings.connectors.rss.enabled and bool(settings.connectors.rss.feeds)

    @classmethod
    def from_args(cls, settings: Settings, args: Any) -> RssSource:
        if not settings.connectors.rss.feeds:
            raise ConfigError(f"{settings.origin}: connectors.rss.feeds: no feeds listed; list at least one")
        return cls(settings)

    def describe(self) -> str:
        served = f"; metrics on {self.metrics_server.url} (and /healthz, /readyz)" if self.metrics_server else ""
        return (f"rss: polling {len(self.feeds)} feeds ({', '.join(f.name for f in self.feeds)}) "
                f"-> {self.default_topic}{served}")

    def __init__(self, settings: Settings, feeds: tuple[RssFeed, ...] | None = None) -> None:
        super().__init__(settings)
        self.config = settings.connectors.rss
        self.feeds = feeds if feeds is not None else self.config.feeds
        self.state_path = settings.data_dir / "connectors" / "rss.sqlite"
        self._writer: FragmentWriter | None = None
        self._memory: FeedMemory | None = None
        self._client: httpx.Client | None = None
        self._board: StatusBoard | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Prometheus series and /healthz, /readyz (served from start() when health_port is set)
        self.metrics = SourceMetrics("rss", (f.name for f in self.feeds), settings.kafka.bootstrap_servers,
                                   self.config.unready_after_s, self._running)
        self.metrics_server: MetricsServer | None = None

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def open(self) -> RssSource:
        """Connect to the broker and open the memory, without starting the polling thread."""
        if self._writer is None:
            self._memory = FeedMemory(self.state_path)
            self._client = httpx.Client(timeout=self.config.timeout_s, follow_redirects=True,
                                        headers={"User-Agent": self.config.user_agent})
            self._writer = FragmentWriter(self.settings)
            self._board = StatusBoard(self.settings).start()
        return self

    def start(self) -> None:
        if self.config.health_port is not None and self.metrics_server is None:  # a taken port fails first
            self.metrics_server = self.metrics.serve(self.config.health_host, self.config.health_port)
        self.open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rss-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        if self._thread is not None:
            self._thread.join(self.config.timeout_s + 5)
            self._thread = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._board is not None:
            self._board.stop()
            self._board = None
        if self._memory is not None:
            self._memory.close()
            self._memory = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_due()
            assert self._memory is not None
            next_in = min((h.next_poll_in_s for h in self._memory.health(self.feeds)), default=60.0)
            self._stop.wait(min(max(next_in, 0.05), 5.0))

    def poll_due(self) -> dict[str, int]:
        """Poll every feed whose time has come; returns fragments written per polled feed (-1: failed)."""
        assert self._memory is not None, "call open() or start() first"
        now = time.time()
        written = {}
        for feed in self.feeds:
            if self._stop.is_set():
                break
            if self._memory.feed(feed)["next_poll"] <= now:
                written[feed.name] = self.poll(feed)
        return written

    def poll(self, feed: RssFeed) -> int:
        """One conditional GET of `feed`; writes new and changed items; returns how many (-1: failed).
        The feed's health goes to the status board (connectors/status.py) and its series either way."""
        written = -1
        try:
            written = self._poll(feed)
            return written
        finally:
            self._report(feed, written < 0)

    def _report(self, feed: RssFeed, failed: bool) -> None:
        if self._memory is None:
            return
        (health,) = self._memory.health((feed,))
        self.metrics.polled(feed.name, (health.last_error or "failed") if failed else None)
        if self._board is not None:
            self._board.report(ConnectorStatus(
                "rss", feed.name, feed.url, health.last_success, health.last_error, health.last_error_at,
                {"items": health.items_emitted, "failures_in_a_row": health.consecutive_failures}))

    def _poll(self, feed: RssFeed) -> int:
        assert self._memory is not None and self._client is not None and self._writer is not None
        row = self._memory.feed(feed)
        headers = {}
        if row["etag"]:
            headers["If-None-Match"] = row["etag"]
        if row["modified"]:
            headers["If-Modified-Since"] = row["modified"]
        try:
            response = self._client.get(feed.url, headers=headers)
            if response.status_code == 304:
                self._memory.succeeded(feed, [], [], None, None, feed.interval_s)
                return 0
            response.raise_for_status()
            parsed = feedparser.parse(response.content, response_headers={
                "content-type": response.headers.get("content-type", "application/xml"),
                "content-location": str(response.url)})
            if parsed.bozo and not parsed.entries:
                raise ValueError(f"not a feed: {parsed.get('bozo_exception')}")
            seen = self._memory.seen(feed.name)
            fresh: list[tuple[str, str]] = []
            fragments = []
            present: list[str] = []
            for entry in parsed.entries:
                guid, fragment = entry_fragment(feed, parsed, entry)
                digest = content_digest(fragment)
                if seen.get(guid) != digest and guid not in present:  # a feed listing an item twice
                    fresh.append((guid, digest))
                    fragments.append(fragment)
                present.append(guid)
            if fragments:
                report = self._writer.write(fragments)  # raises unless the broker acknowledged every one
                self.metrics.wrote(feed.name, report.accepted, len(report.rejected))
            self._memory.succeeded(feed, fresh, present, response.headers.get("etag"),
                                   response.headers.get("last-modified"), feed.interval_s)
            if fragments:
                log.info("rss %s: %d new or changed items", feed.name, len(fragments))
            return len(fragments)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, backed off and retried
            error = f"{type(exc).__name__}: {exc}"
            delay = self._memory.failed(feed, error, self.config.max_backoff_s)
            log.warning("rss %s (%s): poll failed, next try in %.0fs: %s", feed.name, feed.url, delay, error)
            return -1

    def health(self) -> list[FeedHealth]:
        """Feed-level health from the memory (works before start and after stop too)."""
        memory = self._memory or FeedMemory(self.state_path)
        try:
            return memory.health(self.feeds)
        finally:
            if memory is not self._memory:
                memory.close()
