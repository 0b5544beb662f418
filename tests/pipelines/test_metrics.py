"""The pipeline's /metrics (pipelines/metrics.py): Beam metrics as Prometheus families, consumer lag
from the real broker. The live scrape of a running job on Prism is in test_pipeline_e2e.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from kafka import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from connectors.kafka import make_consumer, make_producer
from connectors.metrics import exposition, label
from core.settings import LanguageSettings, load_settings
from pipelines.io import DEAD_LETTER_COUNTERS
from pipelines.metrics import ConsumerLag, beam_families
from pipelines.transforms.common import run_stage
from pipelines.transforms.language import _Detect
from tests.harness import Stack, parse_metrics, series
from tests.pipelines.beam_events import make_event


class _Fixed(Collector):
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.families


def _exposed(families: list[Any]) -> list[Any]:
    """The families as /metrics shows them, parsed back."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return parse_metrics(exposition(registry)[0].decode())


class _Counts(beam.DoFn):
    """Counts as the delivery step does, plus a name no label may carry."""

    def process(self, element: Any) -> Iterator[Any]:
        Metrics.counter(DEAD_LETTER_COUNTERS, "parse:not_json").inc()
        Metrics.counter("sinks", "events_written").inc(2)
        Metrics.counter("sinks", "<script>alert(1)</script>").inc()
        yield element


def test_beam_counters_and_latency_become_prometheus_families() -> None:
    good = [make_event("shared:" + name, 1000.0 + i, i) for i, name in
            enumerate(["liveblog-fragment-2-26.txt", "russia-warns-finland-sweden.txt"])]
    broken = {**good[0], "text": None, "event_id": "broken"}
    p = beam.Pipeline(runner="DirectRunner")
    events, _ = run_stage(p | beam.Create([*good, broken]), "Language", _Detect(LanguageSettings()))
    _ = events | beam.ParDo(_Counts())
    result = p.run()
    result.wait_until_finish()

    m = _exposed(beam_families(result.metrics().query()))
    assert series(m, "newswire_pipeline_counter_total", "stage", "name") == {
        ("language", "internal_errors"): 1, ("sinks", "events_written"): 4,  # summed over both events
        ("sinks", "other"): 2}  # the hostile name is not a label
    assert series(m, "newswire_pipeline_dead_letters_total", "stage", "reason") == {("parse", "not_json"): 2}
    assert series(m, "newswire_pipeline_stage_latency_seconds_count", "stage") == {("language",): 2}
    (total,) = series(m, "newswire_pipeline_stage_latency_seconds_sum", "stage").values()
    (fastest,) = series(m, "newswire_pipeline_stage_latency_min_seconds", "stage").values()
    (slowest,) = series(m, "newswire_pipeline_stage_latency_max_seconds", "stage").values()
    assert 0 < fastest <= total / 2 <= slowest < 10


def test_label_values_are_code_names_only() -> None:
    assert [label(v) for v in ("dedup", "notify:ops-slack", "kafka_read", 3)] == ["dedup", "notify:ops-slack",
                                                                                  "kafka_read", "3"]
    assert [label(v) for v in ("a b", "<x>", "", "x" * 65, "caf\u00e9", 'q"')] == ["other"] * 6


def test_consumer_lag_is_the_end_offset_minus_the_group_commit(stack: Stack) -> None:
    s = stack.settings
    topic = s.kafka.topics.fragments.name
    producer = make_producer(s)
    for i in range(5):
        producer.send(topic, value=b"{}", partition=0)
    producer.send(topic, value=b"{}", partition=1)
    producer.flush()
    producer.close()
    committer = make_consumer(s, group_id=s.kafka.consumer_group)
    committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "", -1)})
    committer.close()

    lag = ConsumerLag(s)
    try:
        assert lag.read() == {0: 3, 1: 1, 2: 0, 3: 0}  # partition 1: nothing committed, all unread
    finally:
        lag.close()
    mine = load_settings(stack.config_path, environ={}, overrides={"pipeline.partitions": [1, 3]})
    lag = ConsumerLag(mine)
    try:
        assert lag.read() == {1: 1, 3: 0}
    finally:
        lag.close()
