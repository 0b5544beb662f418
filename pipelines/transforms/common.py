"""What every stage shares: the in-flight event record, dead-letter routing, guarded DoFns.

An in-flight event is a plain dict (cheap for Beam's FastPrimitivesCoder) holding the
EnrichedEvent fields built so far plus private keys that travel to the delivery stage:
``_start`` (reader position before the record, for the offset ledger), ``_value``/``_key`` (the
original record bytes, so a later stage can still dead-letter it with the original).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import orjson
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from core.outage import OutageGaveUp, wait_out
from core.records import PRIVATE_KEYS, Delivery, Rejected, dead_letter
from core.settings import PipelineSettings

log = logging.getLogger(__name__)

#: Tag of every stage's second output: records that go to the dead-letter topic.
DEAD_LETTERS = "dead_letters"



def reject(event: dict[str, Any], stage: str, reason: str, error: str) -> Delivery:
    """A dead-letter Delivery for an in-flight event, with the record's original bytes while the event
    still carries them (see `drop_original`), else the event as it stood when it failed."""
    origin = event["origin"]
    original = event.get("_value")
    if original is None:
        original = orjson.dumps({k: v for k, v in event.items() if k not in PRIVATE_KEYS})
    return Delivery(
        kind="dead_letter",
        payload=dead_letter(stage, reason, error, original, event.get("_key"), origin["topic"],
                            origin["partition"], origin["offset"], origin.get("timestamp_ms")),
        topic=origin["topic"], partition=origin["partition"], start=event["_start"],
        next_offset=origin["offset"] + 1, key=event.get("_key"), alerts=tuple(event.get("_alerts") or ()),
    )


def drop_original(event: dict[str, Any]) -> dict[str, Any]:
    """The event without the original record bytes: applied before the first shuffle, where the
    stages that can reject input on its content are done, so the bytes do not cross the network."""
    return {k: v for k, v in event.items() if k not in ("_value", "_key")}


def accept(event: dict[str, Any]) -> Delivery:
    """An event Delivery: the public fields only."""
    origin = event["origin"]
    public = {k: v for k, v in event.items() if k not in PRIVATE_KEYS}
    return Delivery(kind="event", payload=public, topic=origin["topic"], partition=origin["partition"],
                    start=event["_start"], next_offset=origin["offset"] + 1,
                    alerts=tuple(event.get("_alerts") or ()))




class StageFn(beam.DoFn):
    """A DoFn around one pure stage function. Rejected input and unexpected errors become dead
    letters naming the stage; the pipeline keeps running. Errors in ``retry_on`` mean an
    unavailable dependency, not a bad event: the call is retried in place with backoff for up to
    ``outage_max_wait_s`` (core/outage.py), then the bundle fails."""

    stage = "stage"
    retry_on: tuple[type[Exception], ...] = ()
    outage_max_wait_s: float = PipelineSettings.outage_max_wait_s

    def __init__(self) -> None:
        self.rejected = Metrics.counter(self.stage, "rejected")
        self.errors = Metrics.counter(self.stage, "internal_errors")
        self.unavailable = Metrics.counter(self.stage, "retried_unavailable")
        # Wall time of one apply() in microseconds, outage waits included: the per-stage cost table
        # of a running job (Beam distribution: count, sum, min, max).
        self.latency_us = Metrics.distribution(self.stage, "latency_us")

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _unavailable(self, error: BaseException) -> bool:
        if isinstance(error, self.retry_on):
            self.unavailable.inc()
            return True
        return False

    def process(self, event: dict[str, Any]) -> Iterator[Any]:
        started = time.perf_counter_ns()
        try:
            if self.retry_on:
                out = wait_out(lambda: self.apply(event), self._unavailable, f"{self.stage} state (Redis)",
                               self.outage_max_wait_s)
            else:
                out = self.apply(event)
            self.latency_us.update((time.perf_counter_ns() - started) // 1000)
            yield out
        except Rejected as exc:
            self.rejected.inc()
            yield TaggedOutput(DEAD_LETTERS, reject(event, exc.stage, exc.reason, str(exc)))
        except OutageGaveUp:
            raise
        except Exception as exc:  # a bug or unforeseen input must not stop the stream
            self.errors.inc()
            log.exception("stage %s failed on event %s", self.stage, event.get("event_id"))
            yield TaggedOutput(DEAD_LETTERS, reject(event, self.stage, "internal", f"{type(exc).__name__}: {exc}"))


def run_stage(pcoll: beam.PCollection, label: str, fn: StageFn) -> tuple[beam.PCollection, beam.PCollection]:
    """Apply a StageFn; returns (events, dead letters)."""
    out = pcoll | label >> beam.ParDo(fn).with_outputs(DEAD_LETTERS, main="events")
    return out.events, out[DEAD_LETTERS]
