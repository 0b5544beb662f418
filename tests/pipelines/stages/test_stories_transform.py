"""AssignStories (after DeduplicateWithRedis) on the BundleBasedDirectRunner with TestStream, state in a real Redis:
stories, novelty, TTL, idempotent replays, sharing across workers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from connectors.redis import RedisServer
from core.records import STORY_FIELDS
from core.settings import StorySettings
from pipelines.stages.dedup.transform import DeduplicateWithRedis
from pipelines.stages.stories.clustering import StoryClusterer, StoryInput
from pipelines.stages.stories.transform import AssignStories
from pipelines.text.normalise import normalise_text
from tests.pipelines.beam_events import ARTICLES, HOUR, EventsOf, by_title, make_event, read_text, run_stream

T0 = 1_645_819_800.0  # 2022-02-25T20:10Z


@pytest.fixture
def stories(redis_server: RedisServer, redis_namespace: str) -> Any:
    """AssignStories on the session's redis-server, in this test's own key namespace."""
    def make(settings: StorySettings | None = None) -> EventsOf:
        return EventsOf(AssignStories(redis_server.url, settings or StorySettings(), namespace=redis_namespace))
    return make


def ev(name: str, minutes: float, offset: int, **fields: Any) -> dict[str, Any]:
    return make_event(name, T0 + minutes * 60, offset, title=fields.pop("title", name), **fields)


def test_shared_samples_join_one_story_from_quotes_alone_and_are_not_duplicates(stories: Any, redis_server: RedisServer,
                                                                                redis_namespace: str) -> None:
    steps: list[dict[str, Any] | float] = [ev("shared:russia-warns-finland-sweden.txt", 0, 0, source="dailymail"),
             ev("russia-gas-transit.txt", 50, 1), ev("finland-airspace-helicopter.txt", 80, 2),
             ev("shared:liveblog-fragment-2-26.txt", 115, 3, source="live-blog-outlet")]

    def check(out: list[dict[str, Any]]) -> None:
        got = by_title(out)
        article, liveblog = got["shared:russia-warns-finland-sweden.txt"], got["shared:liveblog-fragment-2-26.txt"]
        assert all(set(STORY_FIELDS) <= set(e) and "entities" not in e for e in out)
        assert article["story_id"] == liveblog["story_id"]
        assert article["story"]["is_new"] and not liveblog["story"]["is_new"]
        assert (liveblog["story"]["event_count"], liveblog["story"]["source_count"]) == (2, 2)
        assert (liveblog["duplicate_of"], liveblog["near_duplicate_of"]) == (None, None)
        for other in ("russia-gas-transit.txt", "finland-airspace-helicopter.txt"):  # same topic, other story
            assert got[other]["story_id"] != article["story_id"]
        assert liveblog["novelty"]["ratio"] > 0.8  # another outlet's text: mostly new sentences

    run_stream("Dedup" >> EventsOf(DeduplicateWithRedis(redis_server.url, namespace=redis_namespace)) | stories(), steps, check)


def test_enriched_events_get_the_same_stories_as_the_single_process_clusterer(stories: Any) -> None:
    """tests/fixtures/articles/events.json (with entities/places) through Beam == StoryClusterer."""
    events, clusterer, expected = [], StoryClusterer(), {}
    for i, spec in enumerate(json.loads((ARTICLES / "events.json").read_text(encoding="utf-8"))["events"]):
        ts = datetime.fromisoformat(spec["received_at"]).timestamp()
        event = make_event(spec["file"], ts, i, title=spec["file"], source=spec["source"],
                           entities=spec["entities"], places=spec["places"])
        events.append(event)
        item = StoryInput(event["event_id"], ts, spec["source"], normalise_text(read_text(spec["file"])).text,
                          tuple(spec["entities"]), tuple(spec["places"]))
        expected[spec["file"]] = clusterer.assign(item).story_id

    def check(out: list[dict[str, Any]]) -> None:
        got = by_title(out)
        same = {("shared:russia-warns-finland-sweden.txt", "shared:liveblog-fragment-2-26.txt"),
                ("turku-port-fire.txt", "turku-port-fire.other-outlet.txt")}
        for a, b in same:
            assert got[a]["story_id"] == got[b]["story_id"], (a, b)
        assert len({e["story_id"] for e in out}) == len(out) - 2
        story = got["shared:liveblog-fragment-2-26.txt"]["story"]
        assert {"person:maria-zakharova", "org:nato"} <= {x["id"] for x in story["top_entities"]}
        assert {title: e["story_id"] for title, e in got.items()} == expected

    run_stream(stories(), events, check)


def test_live_blog_updates_stay_in_one_story_and_only_new_sentences_count(stories: Any, redis_server: RedisServer,
                                                                          redis_namespace: str) -> None:
    steps = [ev("liveblog-storm.update-1.txt", 0, 0), ev("liveblog-storm.update-2.txt", 20, 1),
             ev("liveblog-storm.update-3.txt", 40, 2)]

    def check(out: list[dict[str, Any]]) -> None:
        got = by_title(out)
        first, repeat, update = (got[f"liveblog-storm.update-{i}.txt"] for i in (1, 2, 3))
        assert first["story_id"] == repeat["story_id"] == update["story_id"]
        assert first["novelty"]["ratio"] == 1.0
        assert repeat["duplicate_of"] == first["event_id"]  # re-wrapped copy with a new marker
        assert (repeat["novelty"]["ratio"], repeat["novelty"]["new_sentences"]) == (0.0, [])
        assert update["novelty"]["new_sentences"] == [
            "Rail operator VR has cancelled all trains between Seinäjoki and Oulu until at least Sunday morning.",
            "Replacement buses will run where roads are open, the company said.",
            "Repair crews expect most homes to be reconnected by Sunday night.",
        ]
        assert 0.4 < update["novelty"]["ratio"] < 0.7

    run_stream("Dedup" >> EventsOf(DeduplicateWithRedis(redis_server.url, namespace=redis_namespace)) | stories(), steps, check)


def test_source_story_key_joins_updates_without_shared_text(stories: Any) -> None:
    steps = [ev("tallinn-ferry-strike.txt", 0, 0, story_key="strike"),
             ev("stockholm-housing.txt", 5, 1, story_key="strike", title="same key"),
             ev("helsinki-tram-line.txt", 6, 2, story_key="other")]

    def check(out: list[dict[str, Any]]) -> None:
        got = by_title(out)
        assert got["same key"]["story_id"] == got["tallinn-ferry-strike.txt"]["story_id"]
        assert got["helsinki-tram-line.txt"]["story_id"] != got["same key"]["story_id"]

    run_stream(stories(), steps, check)


@pytest.mark.parametrize("max_gap_h, cleared", [(2, True), (72, False)])
def test_stories_close_after_max_gap_and_forget_novelty(stories: Any, max_gap_h: float, cleared: bool) -> None:
    settings = StorySettings(max_gap_s=max_gap_h * HOUR)
    steps: list[dict[str, Any] | float] = [ev("shared:russia-warns-finland-sweden.txt", 0, 0, source="dailymail"),
             ev("shared:russia-warns-finland-sweden.txt", 180, 1, title="late copy")]  # 3 h later

    def check(out: list[dict[str, Any]]) -> None:
        got = by_title(out)
        first, late = got["shared:russia-warns-finland-sweden.txt"], got["late copy"]
        assert (late["story_id"] == first["story_id"]) is not cleared
        assert late["novelty"]["ratio"] == (1.0 if cleared else 0.0)

    run_stream(stories(settings), steps, check)
