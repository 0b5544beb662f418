"""ParseFragments: raw Kafka records -> validated in-flight events, or dead letters with the reason."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from core.records import ENRICHED_SCHEMA, Delivery, Rejected, dead_letter, iso_from_millis, parse_fragment
from core.settings import Settings
from pipelines.io import KafkaRecord
from pipelines.transforms.common import DEAD_LETTERS, batch_outputs


def start_event(record: KafkaRecord, max_bytes: int) -> dict[str, Any]:
    """Parse one record into the in-flight event dict (raises Rejected)."""
    fragment = parse_fragment(record.value, max_bytes, record.replay_of)
    f = fragment.fields
    return {
        "schema": ENRICHED_SCHEMA,
        "event_id": fragment.event_id,
        "source": f["source"],
        "source_id": f.get("id"),
        "url": f.get("url"),
        "title": f.get("title"),
        "author": f.get("author"),
        "published_at": f.get("published_at"),
        **({"published_precision": f["published_precision"]} if f.get("published_precision") else {}),
        "received_at": f.get("received_at") or iso_from_millis(record.timestamp_ms),
        "text": f["text"],
        "language": {"code": "und", "confidence": 0.0, "hint": f.get("language")},
        "story_key": f.get("story_key"),
        "parent_id": f.get("parent_id"),
        "metadata": {**f.get("metadata", {}),
                     **{k: f[k] for k in ("content_type", "encoding", "part", "parts") if f.get(k) is not None}},
        "duplicate_of": None,
        "origin": {"topic": record.topic, "partition": record.partition, "offset": record.offset,
                   "timestamp_ms": record.timestamp_ms},
        "_start": record.start,
        "_value": record.value,
        "_key": record.key,
    }


class _Parse(beam.DoFn):
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.rejected = Metrics.counter("parse", "rejected")
        self.latency_us = Metrics.distribution("parse", "latency_us")  # as StageFn's

    def process(self, batch: list[KafkaRecord]) -> Iterator[Any]:
        events: list[dict[str, Any]] = []
        dead: list[Delivery] = []
        for record in batch:
            started = time.perf_counter_ns()
            try:
                events.append(start_event(record, self.max_bytes))
                self.latency_us.update((time.perf_counter_ns() - started) // 1000)
            except Rejected as exc:
                self.rejected.inc()
                dead.append(Delivery(
                    kind="dead_letter",
                    payload=dead_letter(exc.stage, exc.reason, str(exc), record.value, record.key, record.topic,
                                        record.partition, record.offset, record.timestamp_ms),
                    topic=record.topic, partition=record.partition, start=record.start,
                    next_offset=record.offset + 1, key=record.key))
        yield from batch_outputs(events, dead)


class ParseFragments(beam.PTransform):
    """Decode (UTF-8), parse (JSON) and validate (config/schemas/fragment.v1.json) each record.

    Outputs: ``events`` (in-flight event dicts) and ``dead_letters`` (Delivery records)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.max_bytes = settings.pipeline.max_fragment_bytes

    def expand(self, records: beam.PCollection[list[KafkaRecord]]) -> beam.pvalue.DoOutputsTuple:
        return records | beam.ParDo(_Parse(self.max_bytes)).with_outputs(DEAD_LETTERS, main="events")
