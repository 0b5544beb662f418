"""Every stage reports its cost as a Beam distribution (``<stage>/latency_us``) beside its counters."""

from __future__ import annotations

import base64

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.util import assert_that, equal_to

from core.settings import LanguageSettings
from pipelines.transforms.common import chain_steps, drop_original, run_stage
from pipelines.transforms.emit import EmitEvents
from pipelines.transforms.language import DetectLanguage, _Detect
from tests.pipelines.beam_events import make_event


def test_each_stage_records_a_latency_distribution_of_the_events_it_passed() -> None:
    good = [make_event("shared:" + name, 1000.0 + i, i) for i, name in
            enumerate(["liveblog-fragment-2-26.txt", "russia-warns-finland-sweden.txt"])]
    broken = {**good[0], "text": None, "event_id": "broken"}  # the stage fails on it: a dead letter
    p = beam.Pipeline(runner="DirectRunner")
    events, dead = run_stage(p | beam.Create([*good, broken]), "Language", _Detect(LanguageSettings()))
    assert_that(events | beam.Map(lambda e: e["language"]["code"]), equal_to(["en", "en"]), label="events")
    assert_that(dead | beam.Map(lambda d: (d.payload["stage"], d.payload["reason"])),
                equal_to([("language", "internal")]), label="dead")
    result = p.run()
    result.wait_until_finish()

    found = result.metrics().query(MetricsFilter().with_namespace("language").with_name("latency_us"))
    (dist,) = found["distributions"]
    assert dist.committed.count == 2  # the dead-lettered event is counted as an error, not timed
    assert 0 < dist.committed.min <= dist.committed.max < 10_000_000
    (errors,) = result.metrics().query(MetricsFilter().with_namespace("language")
                                       .with_name("internal_errors"))["counters"]
    assert errors.committed == 1


def test_fused_stages_keep_each_stages_metrics_and_dead_letters() -> None:
    """The graph runs Normalise..Emit as one ChainFn (pipelines/run.py): each stage still times and
    counts itself under its own namespace, a plain function step runs in between, and an event a
    stage refuses leaves the chain there, as a dead letter naming that stage, with its original bytes."""
    good = [make_event("shared:" + name, 1000.0 + i, i) for i, name in
            enumerate(["liveblog-fragment-2-26.txt", "russia-warns-finland-sweden.txt"])]
    broken = {**good[0], "text": None, "event_id": "broken"}  # language fails on it
    steps = [("Language", DetectLanguage(LanguageSettings())), ("DropOriginal", drop_original),
             ("Emit", EmitEvents())]
    p = beam.Pipeline(runner="DirectRunner")
    dead_letters: list[beam.PCollection] = []
    # the graph's elements are batches (one reader poll each): a batch of three, then one of one
    deliveries = chain_steps(p | beam.Create([[good[0], broken, good[1]], [good[1]]]), steps, dead_letters)
    assert len(dead_letters) == 1  # one fused ParDo, so one dead-letter output
    assert_that(deliveries | beam.Map(lambda b: [(d.kind, d.payload["language"]["code"], "_value" in d.payload)
                                                 for d in b]),
                equal_to([[("event", "en", False)] * 2, [("event", "en", False)]]), label="events")
    assert_that(dead_letters[0] | beam.Map(lambda b: [(d.payload["stage"], d.payload["reason"],
                                                         base64.b64decode(d.payload["original_b64"])) for d in b]),
                equal_to([[("language", "internal", b"raw")]]), label="dead")
    result = p.run()
    result.wait_until_finish()

    def dist(stage: str) -> int:
        (d,) = result.metrics().query(MetricsFilter().with_namespace(stage).with_name("latency_us"))["distributions"]
        return int(d.committed.count)

    assert (dist("language"), dist("emit")) == (3, 3)  # the refused event never reached emit
    (errors,) = result.metrics().query(MetricsFilter().with_namespace("language")
                                       .with_name("internal_errors"))["counters"]
    assert errors.committed == 1
