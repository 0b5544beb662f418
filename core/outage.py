"""Riding out outages: a step that finds the broker, Redis or the store unreachable waits and
retries with backoff, inside the step, instead of failing the job.

Why inside the step: Prism fails the whole job on the first bundle error (no bundle retry), so a
10-second Redis restart used to stop the stream for good. Waiting in place keeps every record where
it is (nothing is committed past it), and the job goes on when the dependency is back. Only an
outage longer than ``pipeline.outage_max_wait_s`` gives up (:class:`OutageGaveUp`), which fails the
job; the supervisor (pipelines/supervisor.py) then resubmits it from the committed offsets, or
exits non-zero when it has done so too often.

``OUTAGES`` is this process's view of what is unavailable right now (dependency -> since, error):
the readiness check reports it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from redis import exceptions as redis_errors

log = logging.getLogger(__name__)

T = TypeVar("T")


class OutageGaveUp(RuntimeError):
    """A dependency stayed unavailable for longer than the step may wait."""


@dataclass(frozen=True)
class Outage:
    """A dependency a step is waiting for: since when (wall clock), the latest error, attempts."""

    since: float
    error: str
    attempts: int


class Outages:
    """Thread-safe registry of the dependencies this process is waiting for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: dict[str, Outage] = {}
        self.total = 0  # outages begun since start, for metrics and tests

    def waiting(self, dependency: str, error: BaseException) -> Outage:
        with self._lock:
            before = self._now.get(dependency)
            if before is None:
                self.total += 1
            outage = Outage(before.since if before else time.time(), f"{type(error).__name__}: {error}"[:500],
                            (before.attempts if before else 0) + 1)
            self._now[dependency] = outage
            return outage

    def recovered(self, dependency: str) -> Outage | None:
        with self._lock:
            return self._now.pop(dependency, None)

    def current(self) -> dict[str, Outage]:
        with self._lock:
            return dict(self._now)


OUTAGES = Outages()


def backoff_s(attempt: int, first_s: float = 0.2, max_s: float = 5.0) -> float:
    """The pause before retry ``attempt`` (0 = the first): ``first_s`` doubling, capped at ``max_s``,
    with jitter (x 0.5-1.0) so that many waiters do not retry in step."""
    return min(max_s, first_s * 2 ** min(attempt, 20)) * random.uniform(0.5, 1.0)


def wait_out(call: Callable[[], T], unavailable: Callable[[BaseException], bool], dependency: str,
             max_wait_s: float, *, first_backoff_s: float = 0.2, max_backoff_s: float = 5.0,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, retried with exponential backoff (and jitter) while it raises an error that
    ``unavailable(error)`` says means "try again later", for at most ``max_wait_s``; any other error
    is raised at once. Raises OutageGaveUp when the wait is over."""
    deadline: float | None = None
    attempt = 0
    while True:
        try:
            result = call()
        except BaseException as exc:
            if not unavailable(exc):
                raise
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + max_wait_s
            outage = OUTAGES.waiting(dependency, exc)
            if now >= deadline:
                raise OutageGaveUp(f"{dependency} unavailable for {max_wait_s:g}s (pipeline.outage_max_wait_s); "
                                   f"giving up: {outage.error}") from exc
            if attempt == 0 or attempt % 10 == 0:
                log.warning("%s unavailable (%s); retrying for up to %.0fs more", dependency, outage.error,
                            deadline - now)
            sleep(min(backoff_s(attempt, first_backoff_s, max_backoff_s), max(0.0, deadline - now)))
            attempt += 1
            continue
        if attempt:
            outage_over = OUTAGES.recovered(dependency)
            if outage_over is not None:
                log.warning("%s is back after %.1fs", dependency, time.time() - outage_over.since)
        return result


def kafka_unavailable(error: BaseException) -> bool:
    """A Kafka client error that means the broker is unreachable or busy (retriable), not bad data."""
    from kafka import errors

    # kafka-python 2 raised NoBrokersAvailable when it could not bootstrap; 3 raises the retriable
    # KafkaTimeoutError ("Unable to bootstrap") and has no such class.
    no_brokers = getattr(errors, "NoBrokersAvailable", None)
    if no_brokers is not None and isinstance(error, no_brokers):
        return True
    return isinstance(error, errors.KafkaError) and bool(getattr(error, "retriable", False))


#: Redis errors that mean "the state store is unreachable, loading, read-only or full, try again",
#: not "bad input" (BusyLoadingError is a ConnectionError: a restarted server replaying its AOF).
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.OutOfMemoryError,
    redis_errors.ReadOnlyError, redis_errors.TryAgainError, redis_errors.MasterDownError,
)


def redis_unavailable(error: BaseException) -> bool:
    """A Redis error in :data:`REDIS_UNAVAILABLE`."""
    return isinstance(error, REDIS_UNAVAILABLE)
