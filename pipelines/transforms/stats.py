"""FragmentCounts: fragments per source in fixed event-time windows, on the stats topic.

This is the pipeline's live pulse for ops dashboards, and the proof that event-time windows fire
while the unbounded stream runs (tests/pipelines/test_streaming.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import orjson
from apache_beam.transforms import window
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from connectors.kafka import make_producer
from core.outage import kafka_unavailable, wait_out
from core.records import iso_from_millis, utc_now_iso
from core.settings import Settings


def window_count(source: str, count: int, start_s: float, end_s: float,
                 partitions: Sequence[int] | None = None) -> dict[str, Any]:
    """A stats record for one window and source. ``partitions``: the raw-topic partitions the count
    covers when this job reads only some (``pipeline.partitions``, e.g. one of `up --workers N`'s
    jobs): each job then emits its share, and a consumer sums records of one source and window."""
    return {"schema": "fragment-count/1", "source": source, "fragments": count,
            "window_start": iso_from_millis(int(start_s * 1000)), "window_end": iso_from_millis(int(end_s * 1000)),
            "emitted_at": utc_now_iso(), "partitions": list(partitions) if partitions is not None else None}


def batch_counts(events: Iterable[dict[str, Any]], window_s: int) -> dict[tuple[str, int], int]:
    """Fragments per (source, start of their event-time window in ms) in one batch."""
    size_ms = window_s * 1000
    counts: Counter[tuple[str, int]] = Counter()
    for e in events:
        t = e["origin"]["timestamp_ms"]
        counts[(e["source"], t - t % size_ms)] += 1
    return counts


class _BatchCounts(beam.DoFn):
    """A batch's counts per source and window, each timestamped inside its window and never before
    the batch (so never behind the watermark the batch was read under): one element per source and
    window instead of one per fragment."""

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s

    def process(self, batch: list[dict[str, Any]], ts: Any = beam.DoFn.TimestampParam
                ) -> Iterator[TimestampedValue]:
        for (source, start_ms), n in batch_counts(batch, self.window_s).items():
            yield TimestampedValue((source, n), max(ts, Timestamp(micros=start_ms * 1000)))


class _Format(beam.DoFn):
    def __init__(self, partitions: Sequence[int] | None) -> None:
        self.partitions = partitions

    def process(self, element: tuple[str, int], win: Any = beam.DoFn.WindowParam) -> Iterator[dict[str, Any]]:
        source, count = element
        yield window_count(source, count, float(win.start), float(win.end), self.partitions)


class _Produce(beam.DoFn):
    """Writes JSON records to a topic; flushes (waits for acks) at the end of every bundle."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic

    def setup(self) -> None:
        self._producer = self._wait_out(lambda: make_producer(self.settings))

    def _wait_out(self, call: Any) -> Any:
        return wait_out(call, kafka_unavailable, "Kafka (stats)", self.settings.pipeline.outage_max_wait_s)

    def process(self, record: dict[str, Any]) -> None:
        value = orjson.dumps(record)
        self._wait_out(lambda: self._producer.send(self.topic, key=record["source"].encode(), value=value))

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

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        s = self.settings
        return (
            batches
            | "BySource" >> beam.ParDo(_BatchCounts(s.pipeline.stats_window_s))
            | "Window" >> beam.WindowInto(window.FixedWindows(s.pipeline.stats_window_s))
            | "Count" >> beam.CombinePerKey(sum)
            | "Format" >> beam.ParDo(_Format(s.pipeline.partitions))
            | "Produce" >> beam.ParDo(_Produce(s, s.kafka.topics.stats.name))
        )
