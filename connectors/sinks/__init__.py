"""Sink connectors: take enriched events OUT of the pipeline into storage.

The store is chosen by ``storage.url``: ``sqlite:///path`` (:class:`~connectors.sinks.sqlite.SQLiteSink`,
the embedded default) or ``postgresql://user@host:port/db``
(:class:`~connectors.sinks.postgres.PostgresSink`). Both have the same interface (:class:`EventStore`),
tables and upsert rules; :func:`open_store` picks one.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class EventStore(abc.ABC):
    """A store: ``add``/``add_many``/``add_alerts`` buffer, ``flush`` writes the buffer in one
    transaction (and keeps it buffered if that fails), ``events`` reads events back for replay.
    Subclasses implement ``_write``, ``events`` and ``close``."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._alerts: list[dict[str, Any]] = []

    def add(self, event: dict[str, Any]) -> None:
        """Buffer one EnrichedEvent (its story too, when it carries one)."""
        self._events.append(event)

    def add_many(self, events: Iterable[dict[str, Any]]) -> None:
        """Buffer EnrichedEvents."""
        self._events.extend(events)

    def add_alerts(self, alerts: Iterable[dict[str, Any]]) -> None:
        """Buffer Alerts (upserted by alert_id)."""
        self._alerts.extend(alerts)

    def discard(self) -> None:
        """Drop what is buffered (after a flush that failed for the rows' content)."""
        self._events, self._alerts = [], []

    @abc.abstractmethod
    def unavailable(self, error: BaseException) -> bool:
        """Whether ``error`` (from ``flush``) means the store is unreachable or busy, so the same
        flush may succeed later, rather than that it refuses these rows."""

    def flush(self) -> int:
        """Upsert the buffer in one transaction; returns the number of events and alerts written."""
        if not self._events and not self._alerts:
            return 0
        events, alerts = self._events, self._alerts
        self._events, self._alerts = [], []
        try:
            self._write(events, alerts)
        except BaseException:
            self._events, self._alerts = events + self._events, alerts + self._alerts
            raise
        return len(events) + len(alerts)

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
        ``stories`` table's columns, with top_entities / top_places decoded."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection (unflushed rows are dropped: flush first)."""


def sqlite_path(url: str) -> Path:
    """Filesystem path of a ``sqlite:///`` URL (a relative path resolves against the cwd)."""
    return Path(url.removeprefix("sqlite:///"))


def open_store(url: str) -> EventStore:
    """The store ``url`` names, opened and migrated (``storage.url``; validated by newswire.settings)."""
    if url.startswith("sqlite:///"):
        from connectors.sinks.sqlite import SQLiteSink

        return SQLiteSink(sqlite_path(url))
    if url.startswith("postgresql://"):
        from connectors.sinks.postgres import PostgresSink

        return PostgresSink(url)
    raise ValueError(f"storage.url: unsupported store '{url.split(':', 1)[0]}': "
                     "use sqlite:///path or postgresql://user@host:port/db")
