"""What a polling source (rss, inbox) says about itself when it runs as its own process: Prometheus
series in a registry of its own, and ``/healthz`` / ``/readyz`` beside ``/metrics`` on
``connectors.NAME.health_host:health_port`` (connectors/metrics.py serves them).

A *poll* is one unit of the source's work under one ``name`` (a label): an RSS feed fetched (the
feed's name), the inbox scanned (its ``connectors.inbox.source``). A name is *failing* from its first
failed poll until its next successful one. Readiness (docs/connectors.md#metrics-and-health):
a Kafka bootstrap server accepts connections, and not every name has been failing for longer than
``unready_after_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from connectors.kafka import broker_check
from connectors.metrics import MetricsServer, label
from connectors.sources.base import iso_at


class SourceMetrics:
    """A polling source's series and checks; ``serve(host, port)`` puts them on the network."""

    def __init__(self, connector: str, names: Iterable[str], bootstrap_servers: str, unready_after_s: float,
                 running: Callable[[], bool]) -> None:
        self.connector = connector
        self.names = tuple(names)
        self.bootstrap_servers = bootstrap_servers
        self.unready_after_s = unready_after_s
        self._running = running
        self._lock = threading.Lock()
        self._failing: dict[str, tuple[float, str]] = {}  # name -> (time.time() of the first failure, error)
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["connector", "name"]
        self.fragments = Counter("newswire_source_fragments", "Fragments by outcome: accepted (the broker "
                                 "acknowledged them) or rejected (invalid: sent to the dead-letter topic)",
                                 [*labels, "outcome"], registry=self.registry)
        self.polls = Counter("newswire_source_polls", "Polls (a feed fetched, the inbox scanned) by outcome: "
                             "ok or failed", [*labels, "outcome"], registry=self.registry)
        self.last_success = Gauge("newswire_source_last_success_timestamp_seconds", "Unix time of the last "
                                  "successful poll (0: none since the process started)", labels, registry=self.registry)
        self.last_failure = Gauge("newswire_source_last_failure_timestamp_seconds", "Unix time of the last failed "
                                  "poll (0: none since the process started)", labels, registry=self.registry)
        self.failures_in_a_row = Gauge("newswire_source_failures_in_a_row", "Polls failed since the last "
                                       "successful one", labels, registry=self.registry)
        for name in self.names:  # every series from the start, so rate() and absent() work at once
            for outcome in ("accepted", "rejected"):
                self.fragments.labels(connector, label(name), outcome)
            for outcome in ("ok", "failed"):
                self.polls.labels(connector, label(name), outcome)
            for gauge in (self.last_success, self.last_failure, self.failures_in_a_row):
                gauge.labels(connector, label(name))

    def polled(self, name: str, error: str | None = None) -> None:
        """One poll of `name` done: successfully (`error` None) or failed with `error`."""
        key = (self.connector, label(name))
        now = time.time()
        with self._lock:
            if error is None:
                self._failing.pop(name, None)
            else:
                self._failing[name] = (self._failing.get(name, (now, error))[0], error)
        self.polls.labels(*key, "failed" if error else "ok").inc()
        if error is None:
            self.last_success.labels(*key).set(now)
            self.failures_in_a_row.labels(*key).set(0)
        else:
            self.last_failure.labels(*key).set(now)
            self.failures_in_a_row.labels(*key).inc()

    def wrote(self, name: str, accepted: int, rejected: int = 0) -> None:
        """Fragments of `name` the broker acknowledged, and ones refused as invalid."""
        if accepted:
            self.fragments.labels(self.connector, label(name), "accepted").inc(accepted)
        if rejected:
            self.fragments.labels(self.connector, label(name), "rejected").inc(rejected)

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """/healthz: alive while the source's polling thread runs."""
        alive = self._running()
        return alive, {"alive": alive, "connector": self.connector}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """/readyz: alive, a bootstrap server accepts connections, and not every name has been
        failing for longer than ``unready_after_s`` (what each name's failure is, either way)."""
        alive, _ = self.liveness()
        broker = broker_check(self.bootstrap_servers)
        now = time.time()
        with self._lock:
            failing_since = dict(self._failing)
        too_long = [name for name, (since, _) in failing_since.items() if now - since > self.unready_after_s]
        failing = {name: {"since": iso_at(since), "for_s": round(now - since, 1), "error": error[:500]}
                   for name, (since, error) in failing_since.items()}
        stalled = bool(self.names) and set(self.names) <= set(too_long)
        ready = alive and bool(broker["ok"]) and not stalled
        details: dict[str, Any] = {"ready": ready, "connector": self.connector, "alive": alive,
                                   "dependencies": {"kafka": broker}, "failing": failing,
                                   "unready_after_s": self.unready_after_s}
        if stalled:
            details["reason"] = (f"every {self.connector} poll has failed for over {self.unready_after_s:g}s "
                                 f"({', '.join(sorted(too_long))})")
        return ready, details

    def serve(self, host: str, port: int) -> MetricsServer:
        """Start answering /metrics, /healthz and /readyz on ``host:port`` (0: any free port); OSError
        names the keys when it cannot listen there."""
        try:
            return MetricsServer(self.registry, host, port, self.connector, alive=self.liveness, ready=self.readiness)
        except OSError as exc:
            raise OSError(f"connectors.{self.connector}.health_host/health_port: cannot listen on {host}:{port} "
                          f"({exc.strerror or exc}); choose another port, or null for none") from None
