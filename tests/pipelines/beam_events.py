"""In-flight events built from fixture articles, and a streaming TestStream runner, for transform tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that
from apache_beam.transforms.window import TimestampedValue

from pipelines.text.normalise import content_hash, normalise_text
from tests.harness import SHARED
from tests.paths import ARTICLES

SAMPLES = SHARED / "samples"
HOUR = 3600.0


def read_text(name: str) -> str:
    """A fixture article, or ``shared:NAME`` from ../shared/samples (read there, never copied)."""
    path = SAMPLES / name.removeprefix("shared:") if name.startswith("shared:") else ARTICLES / name
    return path.read_text(encoding="utf-8")


def make_event(name: str, ts: float, offset: int, *, event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """An in-flight event dict as Parse -> Normalise -> Language would hand it on (private keys included)."""
    norm = normalise_text(read_text(name))
    eid = event_id or hashlib.blake2b(f"{name}#{offset}".encode(), digest_size=16).hexdigest()
    event = {
        "schema": "enriched-event/1", "event_id": eid, "source": fields.pop("source", "test-wire"),
        "source_id": None, "url": None, "title": name, "text": norm.text,
        "content_hash": content_hash(norm.text), "language": {"code": "en", "confidence": 0.99, "hint": None},
        "received_at": "2022-02-25T20:00:00Z", "metadata": {}, "duplicate_of": None,
        "marker": {"part": norm.marker.part, "total": norm.marker.total} if norm.marker else None,
        "origin": {"topic": "news.fragments", "partition": 0, "offset": offset, "timestamp_ms": int(ts * 1000)},
        "_start": offset, "_value": b"raw", "_key": None,
    }
    event.update(fields)
    return event


def run_stream(transform: beam.PTransform, steps: Sequence[dict[str, Any] | float],
               check: Callable[[list[dict[str, Any]]], None]) -> None:
    """Feed events (each at its origin timestamp) through ``transform`` on the BundleBasedDirectRunner.

    A float in ``steps`` advances the watermark to that time (fires event-time timers). ``check``
    gets every output event.
    """
    stream, watermark = TestStream(), float("-inf")
    for step in steps:
        if isinstance(step, dict):
            ts = step["origin"]["timestamp_ms"] / 1000.0
            stream = stream.add_elements([TimestampedValue(step, ts)])
        else:
            ts = step
        if ts > watermark:  # a record older than the watermark is late: it arrives, the watermark stays
            stream, watermark = stream.advance_watermark_to(ts), ts
    stream = stream.advance_watermark_to_infinity()
    options = beam.options.pipeline_options.PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(runner="BundleBasedDirectRunner", options=options) as p:
        out = p | stream | transform

        def matcher(actual: list[dict[str, Any]]) -> None:
            check(list(actual))

        assert_that(out, matcher)


class EventsOf(beam.PTransform):
    """A stage that outputs (events, dead letters), as its events only (for tests of the events)."""

    def __init__(self, stage: beam.PTransform) -> None:
        super().__init__()
        self.stage = stage

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        events, _ = pcoll | self.stage
        return events


def by_title(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Outputs by ``title`` (tests give each event a distinct title)."""
    out = {e["title"]: e for e in events}
    assert len(out) == len(events), f"titles repeat or events were emitted twice: {[e['title'] for e in events]}"
    return out
