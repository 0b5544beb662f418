"""FragmentCounts: fragments per source in fixed event-time windows, on the stats topic.

This is the pipeline's live pulse for ops dashboards, and the proof that event-time windows fire
while the unbounded stream runs (tests/pipelines/test_streaming.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.transforms import window

from core.records import utc_now_iso
from core.settings import Settings


def window_count(source: str, count: int, start_s: float, end_s: float) -> dict[str, Any]:
    """A stats record for one window and source."""
    from core.records import iso_from_millis

    return {"schema": "fragment-count/1", "source": source, "fragments": count,
            "window_start": iso_from_millis(int(start_s * 1000)), "window_end": iso_from_millis(int(end_s * 1000)),
            "emitted_at": utc_now_iso()}


class _Format(beam.DoFn):
    def process(self, element: tuple[str, int], win: Any = beam.DoFn.WindowParam) -> Iterator[dict[str, Any]]:
        source, count = element
        yield window_count(source, count, float(win.start), float(win.end))


class _Produce(beam.DoFn):
    """Writes JSON records to a topic; flushes (waits for acks) at the end of every bundle."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic

    def setup(self) -> None:
        from connectors.kafka import make_producer

        self._producer = make_producer(self.settings)

    def process(self, record: dict[str, Any]) -> None:
        import orjson

        self._producer.send(self.topic, key=record["source"].encode(), value=orjson.dumps(record))

    def finish_bundle(self) -> None:
        self._producer.flush()

    def teardown(self) -> None:
        producer = getattr(self, "_producer", None)
        if producer is not None:
            producer.close()


class FragmentCounts(beam.PTransform):
    """Count parsed fragments per source per ``pipeline.stats_window_s`` window -> stats topic."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        s = self.settings
        return (
            events
            | "Window" >> beam.WindowInto(window.FixedWindows(s.pipeline.stats_window_s))
            | "BySource" >> beam.Map(lambda e: (e["source"], 1))
            | "Count" >> beam.CombinePerKey(sum)
            | "Format" >> beam.ParDo(_Format())
            | "Produce" >> beam.ParDo(_Produce(s, s.kafka.topics.stats.name))
        )
