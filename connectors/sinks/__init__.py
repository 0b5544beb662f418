r"""Sink connectors: take deliveries OUT of the pipeline.

Every sink has one interface, :class:`Sink` (after Quix Streams' ``BaseSink``): ``add`` buffers a
delivery, ``flush`` writes everything buffered, ``close`` lets go. The delivery step
(``pipelines/io.py``) adds a bundle's deliveries to every sink in :func:`open_sinks`' order, flushes
each, and commits the Kafka offsets only after every sink flushed. A sink is idempotent by
``event_id`` (a replay rewrites, never adds), waits for nothing itself: a flush that fails because
the sink is unreachable raises an error its ``unavailable`` recognises (the step waits it out and
flushes again, the buffer intact), and what it refuses for good (a value the database rejects)
it lists in ``refused``, so the step turns those events into dead letters for the sinks after it.

Sinks by ``storage.url`` scheme (:data:`SINKS`): ``sqlite:///path`` (:class:`~connectors.sinks.sqlite.SQLiteSink`,
the embedded default) or ``postgresql://user@host:port/db`` (:class:`~connectors.sinks.postgres.PostgresSink`),
both :class:`EventStore`\s with the same tables and upsert rules; then always the Kafka topics
(:class:`~connectors.sinks.kafka.KafkaTopicsSink`).
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.outage import wait_out
from core.records import Delivery

if TYPE_CHECKING:
    from core.settings import Settings


@dataclass(frozen=True)
class EventQuery:
    """Filters for :meth:`EventStore.search_events`; None: any. ``entity`` and ``place`` match an
    id exactly or a name case-insensitively as a substring; ``country`` is a place's ISO code;
    ``since``/``until`` bound received_at (ISO-8601, until exclusive)."""

    entity: str | None = None
    place: str | None = None
    country: str | None = None
    language: str | None = None
    source: str | None = None
    since: str | None = None
    until: str | None = None


class Sink(abc.ABC):
    """Where deliveries go: ``add`` buffers, ``flush`` writes the buffer, ``close`` lets go.

    Idempotent by ``event_id``. After ``flush``, ``refused`` maps the event ids the sink refused
    for good to the reason (the step turns them into dead letters); a flush that fails because the
    sink is unreachable raises, keeps its buffer, and ``unavailable(error)`` says so."""

    #: Names the sink in logs, metrics and dead letters (``stage``).
    name = "sink"
    #: The dead-letter reason for an event this sink refused.
    refused_reason = "store_rejected"

    def __init__(self) -> None:
        self.refused: dict[str, str] = {}

    @abc.abstractmethod
    def add(self, item: Delivery | dict[str, Any]) -> None:
        """Buffer one delivery (a store also takes a bare EnrichedEvent dict)."""

    @abc.abstractmethod
    def flush(self) -> int:
        """Write what is buffered; the number of records written. Sets ``refused``."""

    @staticmethod
    @abc.abstractmethod
    def unavailable(error: BaseException) -> bool:
        """Whether ``error`` (from ``flush``, or from opening the sink) means the sink is unreachable
        or busy, so the same call may succeed later, rather than that it refuses these records."""

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of connections (unflushed records are dropped: flush first)."""


class EventStore(Sink):
    """A store: ``add``/``add_many``/``add_alerts`` buffer, ``flush`` writes the buffer in one
    transaction (and keeps it buffered if that fails), ``events`` reads events back for replay.
    Subclasses implement ``_write``, ``events`` and ``close``. Dead letters are not stored."""

    name = "store"

    def __init__(self, url: str) -> None:
        """``url``: the store's ``storage.url`` (each store reads its own scheme)."""
        super().__init__()
        self.url = url
        self._events: list[dict[str, Any]] = []
        self._alerts: list[dict[str, Any]] = []

    def add(self, item: Delivery | dict[str, Any]) -> None:
        """Buffer one event delivery (the event, its story, the alerts it fired), or one bare
        EnrichedEvent dict; a dead-letter delivery has nothing to store."""
        if isinstance(item, Delivery):
            if item.kind == "event":
                self._events.append(item.payload)
            self._alerts.extend(item.alerts)
        else:
            self._events.append(item)

    def add_many(self, events: Iterable[dict[str, Any]]) -> None:
        """Buffer EnrichedEvents."""
        self._events.extend(events)

    def add_alerts(self, alerts: Iterable[dict[str, Any]]) -> None:
        """Buffer Alerts (upserted by alert_id)."""
        self._alerts.extend(alerts)

    def flush(self) -> int:
        """Upsert the buffer in one transaction; returns the number of events and alerts written.

        Unreachable (``unavailable``): raises and keeps the buffer. Refused for the rows' content:
        each event and alert is written alone, and those the store still refuses are left out and
        listed in ``refused`` (event id, or ``alert:<id>``, -> why), so one bad row costs only itself."""
        self.refused = {}
        if not self._events and not self._alerts:
            return 0
        events, alerts = self._events, self._alerts
        self._events, self._alerts = [], []
        try:
            self._write(events, alerts)
            return len(events) + len(alerts)
        except BaseException as exc:
            if not isinstance(exc, Exception) or self.unavailable(exc):
                self._events, self._alerts = events + self._events, alerts + self._alerts
                raise
        written = 0
        items: list[tuple[str, dict[str, Any]]] = [("event", e) for e in events] + [("alert", a) for a in alerts]
        for n, (kind, item) in enumerate(items):
            try:
                self._write([item] if kind == "event" else [], [item] if kind == "alert" else [])
            except Exception as exc:
                if self.unavailable(exc):  # the store went away meanwhile: what is left stays buffered
                    rest = items[n:]
                    self._events = [i for k, i in rest if k == "event"] + self._events
                    self._alerts = [i for k, i in rest if k == "alert"] + self._alerts
                    raise
                key = item["event_id"] if kind == "event" else f"alert:{item.get('alert_id')}"
                self.refused[key] = f"{type(exc).__name__}: {exc}"[:1000]
                continue
            written += 1
        return written

    @abc.abstractmethod
    def _write(self, events: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> None:
        """Upsert events, their stories and alerts in one transaction (all or nothing)."""

    @abc.abstractmethod
    def events(self, since: str | None = None, until: str | None = None, source: str | None = None,
               limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Stored EnrichedEvents in received_at order, received in [since, until) and from `source` if given."""

    @abc.abstractmethod
    def alerts(self, since: str | None = None, rule: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Stored Alerts fired at or after `since` (ISO-8601), of `rule` if given, newest first."""

    @abc.abstractmethod
    def top_stories(self, since: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """Stories seen at or after `since`, most sources first (then events, then newest): the
        ``stories`` table's columns, with top_entities / top_places decoded. Stories merged into
        another are not listed (here, in :meth:`growing_stories` and :meth:`biggest_stories`)."""

    @abc.abstractmethod
    def acknowledge_alert(self, alert_id: str, by: str) -> None:
        """Record that `by` (a console role) acknowledged the alert; the first acknowledgement stays."""

    @abc.abstractmethod
    def alert_acks(self, alert_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Of `alert_ids`, those acknowledged: alert_id -> {"by": ..., "at": ISO-8601 UTC}."""

    @abc.abstractmethod
    def search_events(self, query: EventQuery, limit: int = 100) -> list[dict[str, Any]]:
        """Stored EnrichedEvents matching every filter `query` sets, newest received first."""

    @abc.abstractmethod
    def snooze_rule(self, rule: str, until: str, by: str) -> None:
        """Record that `by` (a console role) snoozed alert rule `rule` until `until` (ISO-8601; a
        time already past ends a snooze). The latest snooze of a rule wins."""

    @abc.abstractmethod
    def rule_snoozes(self, now: str) -> dict[str, dict[str, Any]]:
        """Rules snoozed past `now`: rule -> {"until": ISO-8601 UTC, "by": ...}."""

    @abc.abstractmethod
    def growing_stories(self, since: str, limit: int = 10) -> list[dict[str, Any]]:
        """Stories with events received at or after `since` (arrival, not the story's publication
        times), most such events first: the ``stories`` row (as :meth:`top_stories` gives it) plus
        ``recent_events``, those events' count (a merged story's events count for its survivor)."""

    @abc.abstractmethod
    def biggest_stories(self, since: str, limit: int = 10) -> list[dict[str, Any]]:
        """Stories stored (``updated_at``: an event of theirs arrived) at or after `since`, most
        sources first, then events: ``stories`` rows as :meth:`top_stories` gives them. Reads only
        the stories table, so it stays cheap however many events arrived."""

    @abc.abstractmethod
    def story_volume(self, story_ids: list[str], since: str, bucket_s: int, buckets: int) -> dict[str, list[int]]:
        """Per story, its events received in each of `buckets` periods of `bucket_s` seconds from
        `since` on (a sparkline's values; an event past the last period counts in the last; events of
        stories merged into one count for it)."""

    @abc.abstractmethod
    def story(self, story_id: str) -> dict[str, Any] | None:
        """The story `story_id` is part of now (itself, or the story it was merged into, see
        docs/stories.md#late-merge): its ``stories`` row as :meth:`top_stories` gives it plus
        ``merged_from``, the ids merged into it (sorted); None when unknown."""

    @abc.abstractmethod
    def story_events(self, story_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The stored EnrichedEvents of the story `story_id` is part of now, including those of the
        stories merged into it, oldest received first (at most `limit`, the oldest)."""

    @abc.abstractmethod
    def event(self, event_id: str) -> dict[str, Any] | None:
        """One stored EnrichedEvent, or None."""

    @abc.abstractmethod
    def size_bytes(self) -> int:
        """What the store takes on disk (the database file and its WAL, or the database's size)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection (unflushed rows are dropped: flush first)."""


def sqlite_path(url: str) -> Path:
    """Filesystem path of a ``sqlite:///`` URL (a relative path resolves against the cwd)."""
    return Path(url.removeprefix("sqlite:///"))


def open_sinks(settings: Settings) -> list[Sink]:
    """Every sink a delivery goes to, in order: the store ``storage.url`` names, then the Kafka
    topics (last, so the dead letters of events the store refused reach the DLQ topic)."""
    from connectors.sinks.kafka import KafkaTopicsSink

    # Sinks connect when they are made: a worker set up during an outage waits it out.
    wait_s, url = settings.pipeline.outage_max_wait_s, settings.storage_url
    store = store_class(url)
    return [wait_out(lambda: store(url), store.unavailable, "store (connect)", wait_s),
            wait_out(lambda: KafkaTopicsSink(settings), KafkaTopicsSink.unavailable, "Kafka (connect)", wait_s)]


#: Store classes by ``storage.url`` scheme ("module:Class", imported when used). A new store is
#: one module (an :class:`EventStore`) and one line here.
SINKS = {
    "sqlite": "connectors.sinks.sqlite:SQLiteSink",
    "postgresql": "connectors.sinks.postgres:PostgresSink",
}


def volume_series(rows: Iterable[tuple[str, int, int]], story_ids: list[str], buckets: int) -> dict[str, list[int]]:
    """(story_id, period, events) rows as one list of `buckets` counts per story (periods clamped)."""
    series = {story_id: [0] * buckets for story_id in story_ids}
    for story_id, period, count in rows:
        if story_id in series and buckets:
            series[story_id][min(max(int(period), 0), buckets - 1)] += int(count)
    return series


def store_class(url: str) -> type[EventStore]:
    """The store class for ``url``'s scheme (:data:`SINKS`)."""
    scheme = url.split(":", 1)[0]
    if scheme not in SINKS:
        raise ValueError(f"storage.url: unsupported store '{scheme}': use one of "
                         f"{', '.join(f'{s}://...' for s in SINKS)}")
    module, _, name = SINKS[scheme].partition(":")
    cls: type[EventStore] = getattr(importlib.import_module(module), name)
    return cls


def open_store(url: str) -> EventStore:
    """The store ``url`` names, opened and migrated (``storage.url``; validated by core.settings)."""
    return store_class(url)(url)
