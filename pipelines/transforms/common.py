"""What every stage shares: the in-flight event record, dead-letter routing, guarded DoFns.

The graph's elements are batches, one per reader poll (pipelines/io.py): `ChainFn` takes a list
of in-flight events and hands on a list of Deliveries and a list of dead letters. An in-flight
event is a plain dict (cheap for Beam's FastPrimitivesCoder) holding the
EnrichedEvent fields built so far plus private keys that travel to the delivery stage:
``_start`` (reader position before the record, for the offset ledger), ``_value``/``_key`` (the
original record bytes, so a later stage can still dead-letter it with the original).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
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


def batch_outputs(events: list[Any], dead: list[Delivery]) -> Iterator[Any]:
    """A batch step's outputs: the list of what passed on the main output, the list of dead letters
    on ``DEAD_LETTERS``, each only when not empty."""
    if events:
        yield events
    if dead:
        yield TaggedOutput(DEAD_LETTERS, dead)


def run_stage(pcoll: beam.PCollection, label: str, fn: beam.DoFn) -> tuple[beam.PCollection, beam.PCollection]:
    """Apply a StageFn (or a ChainFn of them); returns (events, dead letters)."""
    out = pcoll | label >> beam.ParDo(fn).with_outputs(DEAD_LETTERS, main="events")
    return out.events, out[DEAD_LETTERS]


#: One step of a ChainFn: a StageFn, or a plain function of the event that cannot fail on its content.
Step = StageFn | Callable[[dict[str, Any]], Any]


class ChainFn(beam.DoFn):
    """Consecutive stages as ONE DoFn over a batch (one reader poll): each event of it goes through
    every step in turn, in one Beam call; out come one list of what the last step returned and one
    list of dead letters (each only when not empty), in the batch's order.

    Why: every ParDo between the reader and the delivery step costs per element (Beam's dispatch,
    an element count and sampled size per output collection) and per bundle (its metrics, sent again
    on every progress report, which Prism asks for every 100 ms of a running bundle); the stages
    themselves are cheap pure functions. Measured (bench/RESULTS.md, "Framework overhead"): no change
    in the pipeline's CPU per fragment beyond this machine's noise, Prism ~0.9 ms per fragment less;
    the framework cost is per bundle more than per element. Nothing else changes: each StageFn still times itself
    (``<stage>/latency_us``), counts its rejects and errors under its own namespace, waits out its
    outages, and an event it refuses leaves the chain there as a dead letter naming that stage.
    """

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self._fns = [s for s in self.steps if isinstance(s, StageFn)]

    def setup(self) -> None:
        for fn in self._fns:
            fn.setup()

    def start_bundle(self) -> None:
        for fn in self._fns:
            fn.start_bundle()

    def process(self, batch: list[Any]) -> Iterator[Any]:
        events: list[Any] = []
        dead: list[Delivery] = []
        for event in batch:
            out, refused = self._through(event)
            (dead if refused else events).append(out)
        yield from batch_outputs(events, dead)

    def _through(self, event: Any) -> tuple[Any, bool]:
        """One event through every step: (the last step's output, False), or (the dead letter of
        the step that refused it, True)."""
        for step in self.steps:
            if not isinstance(step, StageFn):
                event = step(event)
                continue
            for out in step.process(event):
                if isinstance(out, TaggedOutput):  # a dead letter: the event leaves the chain here
                    return out.value, True
                event = out
        return event, False

    def finish_bundle(self) -> None:
        for fn in self._fns:
            fn.finish_bundle()

    def teardown(self) -> None:
        for fn in reversed(self._fns):
            fn.teardown()


def chain_steps(pcoll: beam.PCollection, steps: Sequence[tuple[str, Any]], dead_letters: list[beam.PCollection]
                ) -> beam.PCollection:
    """Apply the (label, step) ``steps`` in order, fusing each run of consecutive ones that are stage
    transforms (with a ``stage_fn()``) or plain functions into one ChainFn labelled with their labels
    joined by "+"; any other transform (e.g. Beam-state exact dedup) is applied as it is, under its
    label. ``pcoll`` holds batches (lists of events) and so does the result; a transform of single
    events is fed the batches' events and its outputs become batches of one. Every step's dead
    letters (batches too) are appended to ``dead_letters``."""
    run: list[Step] = []
    names: list[str] = []

    def flush(pc: beam.PCollection) -> beam.PCollection:
        if not run:
            return pc
        events, dead = run_stage(pc, "+".join(names), ChainFn(run))
        dead_letters.append(dead)
        run.clear()
        names.clear()
        return events

    for label, step in steps:
        if hasattr(step, "stage_fn"):
            run.append(step.stage_fn())
            names.append(label)
        elif isinstance(step, beam.PTransform):
            # A transform of single events (e.g. exact dedup's keyed state) between batches: its
            # input unbatched, its outputs as batches of one.
            pcoll = flush(pcoll) | f"{label}/Unbatch" >> beam.FlatMap(lambda batch: batch)
            events, dead = pcoll | label >> step
            pcoll = events | f"{label}/Batch" >> beam.Map(lambda e: [e])
            dead_letters.append(dead | f"{label}/BatchDead" >> beam.Map(lambda d: [d]))
        else:
            run.append(step)
            names.append(label)
    return flush(pcoll)
