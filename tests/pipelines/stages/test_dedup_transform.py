"""DeduplicateWithRedis on Beam's BundleBasedDirectRunner with TestStream (and the batch runner), state
in the session's real Redis, in each test's own key namespace."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from connectors.redis import RedisServer
from core.records import DEDUP_FIELDS
from core.settings import DedupSettings
from pipelines.stages.dedup.exact import ExactDuplicates
from pipelines.stages.dedup.transform import DeduplicateWithRedis
from tests.pipelines.beam_events import HOUR, EventsOf, by_title, make_event, run_stream

RECORD_KEYS = ("_start", "_value", "_key")  # what the raw record gives every in-flight event

T0 = 1_646_118_000.0  # 2022-03-01T07:00Z


@pytest.fixture
def dedup(redis_server: RedisServer, redis_namespace: str) -> Any:
    """The pipeline's dedup stage (events only) on the session's redis-server."""
    def make(settings: DedupSettings | None = None) -> Any:
        return EventsOf(DeduplicateWithRedis(redis_server.url, settings or DedupSettings(), namespace=redis_namespace))
    return make


def ev(name: str, minutes: float, offset: int, title: str | None = None, **fields: Any) -> dict[str, Any]:
    return make_event(name, T0 + minutes * 60, offset, title=title or name, **fields)


BACKGROUND = [ev("helsinki-tram-line.txt", 0, 0), ev("turku-port-fire.txt", 1, 1),
              ev("tallinn-ferry-strike.txt", 2, 2)]
ARTICLE_ID = BACKGROUND[1]["event_id"]


def test_reposts_edits_excerpts_and_other_outlets(dedup: Any) -> None:
    steps = [*BACKGROUND,
             ev("turku-port-fire.repost.txt", 10, 3),
             ev("turku-port-fire.edited.txt", 11, 4),
             ev("turku-port-fire.excerpt-3-26.txt", 12, 5),
             ev("turku-port-fire.other-outlet.txt", 13, 6)]

    def check(out: list[dict[str, Any]]) -> None:
        got = by_title(out)
        assert all(set(DEDUP_FIELDS) <= set(e) for e in out)
        for name in ("helsinki-tram-line.txt", "turku-port-fire.txt", "tallinn-ferry-strike.txt",
                     "turku-port-fire.other-outlet.txt"):
            assert got[name]["duplicate_of"] is None and got[name]["near_duplicate_of"] is None, name
            assert got[name]["dedup_kind"] is None
        repost = got["turku-port-fire.repost.txt"]
        assert (repost["duplicate_of"], repost["dedup_kind"]) == (ARTICLE_ID, "exact")
        edited = got["turku-port-fire.edited.txt"]
        assert (edited["duplicate_of"], edited["near_duplicate_of"]) == (None, ARTICLE_ID)
        assert edited["dedup_kind"] == "near_duplicate" and edited["similarity"] > 0.85
        excerpt = got["turku-port-fire.excerpt-3-26.txt"]
        assert (excerpt["near_duplicate_of"], excerpt["dedup_kind"]) == (ARTICLE_ID, "contained")
        assert excerpt["containment"] >= 0.8 and excerpt["similarity"] < 0.45
        for e in out:  # private keys pass through untouched
            assert all(k in e for k in RECORD_KEYS) and e["_value"] == b"raw"

    run_stream(dedup(), steps, check)


def test_shared_samples_are_not_duplicates_of_each_other(dedup: Any) -> None:
    steps = [make_event("shared:russia-warns-finland-sweden.txt", T0, 0, title="article"),
             make_event("shared:liveblog-fragment-2-26.txt", T0 + 3600, 1, title="liveblog")]

    def check(out: list[dict[str, Any]]) -> None:
        for e in out:
            assert (e["duplicate_of"], e["near_duplicate_of"]) == (None, None), e["title"]
        assert len(out) == 2

    run_stream(dedup(), steps, check)


def test_same_url_and_same_feed_item_are_duplicates_or_updates_but_parts_are_not(dedup: Any) -> None:
    url = "https://www.turku-daily.example/news/port-fire/"
    steps = [ev("turku-port-fire.txt", 0, 0, url=url),
             ev("turku-port-fire.edited.txt", 1, 1, title="same url", url=url + "?utm_source=rss"),
             ev("helsinki-tram-line.txt", 2, 2, source_id="item-7"),
             ev("tallinn-ferry-strike.txt", 3, 3, title="same item", source_id="item-7"),
             ev("helsinki-tram-line.txt", 4, 4, title="same item again", source_id="item-7"),
             ev("stockholm-housing.txt", 5, 5, source_id="item-9", metadata={"part": 1}),
             ev("kyiv-wheat-exports.txt", 6, 6, title="part 2", source_id="item-9", metadata={"part": 2})]

    def check(out: list[dict[str, Any]]) -> None:
        got = by_title(out)
        # a one-sentence correction at the same URL is a duplicate
        assert (got["same url"]["dedup_kind"], got["same url"]["duplicate_of"]) == ("same_url", steps[0]["event_id"])
        # new content under the same GUID updates the item; its first text again is an exact duplicate
        item = got["same item"]
        assert (item["dedup_kind"], item["update_of"], item["duplicate_of"]) == ("update", steps[2]["event_id"], None)
        again = got["same item again"]
        assert (again["dedup_kind"], again["duplicate_of"], again["update_of"]) == ("exact", steps[2]["event_id"], None)
        assert got["part 2"]["dedup_kind"] is None

    run_stream(dedup(), steps, check)


@pytest.mark.parametrize("ttl_h, cleared", [(2, True), (72, False)])
def test_a_repost_later_than_the_ttl_is_new(dedup: Any, ttl_h: float, cleared: bool) -> None:
    settings = DedupSettings(ttl_s=ttl_h * HOUR)
    first = ev("turku-port-fire.txt", 0, 0)
    steps = [first, ev("turku-port-fire.repost.txt", 60, 1, title="within ttl"),
             ev("turku-port-fire.repost.txt", 3 * 60, 2, title="three hours later")]

    def check(out: list[dict[str, Any]]) -> None:
        got = by_title(out)
        assert got["within ttl"]["duplicate_of"] == first["event_id"]
        late = got["three hours later"]  # event time: past a 2 h TTL, within a 72 h one
        assert late["duplicate_of"] == (None if cleared else first["event_id"])

    run_stream(dedup(settings), steps, check)


def test_replayed_record_with_the_same_event_id_gets_its_own_verdict(dedup: Any) -> None:
    first = ev("turku-port-fire.txt", 0, 0)
    replay = {**ev("turku-port-fire.txt", 1, 7), "event_id": first["event_id"]}

    def check(out: list[dict[str, Any]]) -> None:
        assert sorted(e["origin"]["offset"] for e in out) == [0, 7]
        assert all(e["duplicate_of"] is None for e in out)  # the same event is not its own duplicate

    run_stream(dedup(), [first, replay], check)


def test_batch_runner_without_timestamps_judges_by_origin_time(dedup: Any) -> None:
    """The default (non-streaming) runner: no TestStream, Create without timestamps."""
    events = [ev("turku-port-fire.txt", 0, 0), ev("turku-port-fire.repost.txt", 5, 1)]
    with TestPipeline() as p:
        out = (p | beam.Create(events) | dedup()
               | beam.Map(lambda e: (e["title"], e["duplicate_of"] or e["near_duplicate_of"])))
        # Order of a batch is not defined: one of the two is the first sighting, the other points at it.
        pairs = out | beam.combiners.ToList() | beam.Map(lambda xs: sorted(x[1] is None for x in xs))
        assert_that(pairs, equal_to([[False, True]]))


def test_exact_mode_marks_copies_by_content_hash_and_rejects_nothing(dedup: Any) -> None:
    """pipeline.dedup.mode: exact (Beam state, no Redis): the stage contract (events, dead letters)."""
    copy = ev("turku-port-fire.repost.txt", 5, 5)
    steps = [*BACKGROUND, {**copy, "content_hash": BACKGROUND[1]["content_hash"]}]

    def check(out: list[dict[str, Any]]) -> None:
        got = by_title(out)
        assert got["turku-port-fire.repost.txt"]["duplicate_of"] == ARTICLE_ID
        assert [got[e["title"]]["duplicate_of"] for e in BACKGROUND] == [None, None, None]

    run_stream(EventsOf(ExactDuplicates()), steps, check)


def test_the_pipeline_graph_builds_in_exact_mode(dedup: Any) -> None:
    from core.settings import load_settings
    from pipelines.run import build_pipeline

    settings = load_settings(overrides={"pipeline.dedup.mode": "exact", "pipeline.stories.enabled": False,
                                        "alerts.enabled": False}, environ={})
    build_pipeline(beam.Pipeline(), settings)  # the stages' (events, dead letters) outputs wire up
