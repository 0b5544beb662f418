"""Every stage reports its cost as a Beam distribution (``<stage>/latency_us``) beside its counters."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.util import assert_that, equal_to

from core.settings import LanguageSettings
from pipelines.transforms.common import run_stage
from pipelines.transforms.language import _Detect
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
