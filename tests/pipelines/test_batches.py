"""The graph's elements are batches, one per reader poll: what crosses Beam between the reader and the
sinks, how a batch is keyed for delivery, how a stage of single events sits between batches, and how
the stats windows count a batch that spans two of them."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window
from apache_beam.transforms.window import TimestampedValue

from core.records import Delivery
from core.settings import load_settings
from pipelines.io import by_partition, poll_timeout_ms
from pipelines.stages.dedup.exact import ExactDuplicates
from pipelines.transforms.common import chain_steps, drop_original
from pipelines.transforms.emit import EmitEvents
from pipelines.transforms.stats import _BatchCounts, _Format, batch_counts
from tests.pipelines.beam_events import make_event

NAMES = ["liveblog-fragment-2-26.txt", "russia-warns-finland-sweden.txt"]


def delivery(partition: int, offset: int, topic: str = "news.fragments") -> Delivery:
    return Delivery(kind="event", payload={"event_id": f"{partition}-{offset}"}, topic=topic,
                    partition=partition, start=offset, next_offset=offset + 1)


def test_a_batch_of_one_partition_is_one_keyed_element() -> None:
    batch = [delivery(3, 10), delivery(3, 11), delivery(3, 12)]
    assert list(by_partition(batch)) == [("news.fragments/3", batch)]


def test_a_batch_that_mixes_partitions_is_split_in_order_never_misrouted() -> None:
    batch = [delivery(1, 5), delivery(2, 7), delivery(1, 6), delivery(1, 8, topic="other")]
    assert list(by_partition(batch)) == [
        ("news.fragments/1", [batch[0], batch[2]]), ("news.fragments/2", [batch[1]]), ("other/1", [batch[3]])]


def test_a_single_event_stage_between_batches_gets_events_and_hands_on_batches() -> None:
    """Exact dedup keeps its first sightings in Beam state keyed by content hash, so it takes single
    events: chain_steps unbatches its input and hands its outputs on as batches of one."""
    first, other = (make_event("shared:" + n, 1000.0 + i, i) for i, n in enumerate(NAMES))
    copy = {**first, "event_id": "c" * 32, "origin": {**first["origin"], "offset": 2}, "_start": 2}
    steps = [("DropOriginal", drop_original), ("Dedup", ExactDuplicates()), ("Emit", EmitEvents())]
    p = beam.Pipeline(runner="DirectRunner")
    dead_letters: list[beam.PCollection] = []
    polls = p | beam.Create([(1000, [first, other]), (1010, [copy])]) | beam.Map(
        lambda tb: TimestampedValue(tb[1], tb[0]))
    deliveries = chain_steps(polls, steps, dead_letters)

    def check(batches: list[list[Delivery]]) -> None:
        assert [len(b) for b in batches] == [1, 1, 1]
        marks = {d.payload["event_id"]: d.payload["duplicate_of"] for (d,) in batches}
        assert marks[other["event_id"]] is None
        # one copy of the text is first (Beam state does not order elements), the other points at it
        assert (marks[first["event_id"]], marks["c" * 32]) in ((None, first["event_id"]), ("c" * 32, None))

    assert_that(deliveries | beam.combiners.ToList(), lambda got: check(got[0]))
    p.run().wait_until_finish()


def test_batch_counts_are_per_source_and_event_time_window() -> None:
    def event(source: str, ms: int) -> dict[str, Any]:
        return {"source": source, "origin": {"timestamp_ms": ms}}

    batch = [event("a", 59_000), event("b", 59_500), event("a", 60_000), event("a", 119_999)]
    assert batch_counts(batch, 60) == {("a", 0): 1, ("b", 0): 1, ("a", 60_000): 2}


def test_a_batch_spanning_two_windows_counts_in_each() -> None:
    """The batch's element time is its first record's (59 s); the records at 60 s and after belong to
    the next window, and are counted there, not in the batch's."""
    batch = [{"source": "a", "origin": {"timestamp_ms": ms}} for ms in (59_000, 59_900, 60_100, 61_000)]
    p = beam.Pipeline(runner="DirectRunner")
    counts = (p | beam.Create([batch]) | beam.Map(lambda b: TimestampedValue(b, 59.0))
              | beam.ParDo(_BatchCounts(60)) | beam.WindowInto(window.FixedWindows(60))
              | beam.CombinePerKey(sum) | beam.ParDo(_Format(None))
              | beam.Map(lambda r: (r["source"], r["fragments"], r["window_start"], r["window_end"])))
    assert_that(counts, equal_to([("a", 2, "1970-01-01T00:00:00.000Z", "1970-01-01T00:01:00.000Z"),
                                  ("a", 2, "1970-01-01T00:01:00.000Z", "1970-01-01T00:02:00.000Z")]))
    p.run().wait_until_finish()


def test_a_job_reading_one_partition_polls_longer_than_one_reading_several() -> None:
    """A poll returns when records arrive; only an idle partition waits it out. With several
    partitions the others wait behind that poll, so it stays short; with one, nobody does."""
    s = load_settings(environ={})
    assert (poll_timeout_ms(s, 1), poll_timeout_ms(s, 2), poll_timeout_ms(s, 4)) == (250, 50, 50)
    shorter = load_settings(environ={}, overrides={"pipeline.lone_poll_timeout_ms": 10})
    assert poll_timeout_ms(shorter, 1) == 50  # never shorter than a shared partition's poll


def test_the_readers_fetches_wait_for_a_batch_but_never_longer_than_the_poll(stack: Any) -> None:
    """The reader's consumer asks the broker to hold a fetch until fetch_min_bytes of records are
    there (so a steady rate arrives in batches), for at most fetch_max_wait_ms, capped to the poll's
    wait: a job reading several partitions keeps its short poll."""
    from pipelines.io import _ReadPartition

    reader = _ReadPartition(stack.settings)
    reader.setup()
    topic = stack.settings.kafka.topics.fragments.name
    try:
        lone, shared = reader._consumer(topic, 0, 1), reader._consumer(topic, 1, 4)
        p = stack.settings.pipeline
        assert lone.config["fetch_min_bytes"] == shared.config["fetch_min_bytes"] == p.fetch_min_bytes == 65536
        assert lone.config["fetch_max_wait_ms"] == p.fetch_max_wait_ms == 100  # the lone poll waits 250
        assert shared.config["fetch_max_wait_ms"] == p.poll_timeout_ms == 50
    finally:
        reader.teardown()
