"""Issue 15's acceptance for live blogs, through the three stages that keep state in Redis (dedup ->
stories -> alerts, the DoFns the pipeline runs, on the session's real redis-server): a same-URL
update is ``update_of`` with its new sentences and counts towards alerts; identical content stays a
duplicate; replays give the same verdicts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.redis import RedisServer
from core.alert_rules import parse_rules
from core.settings import DedupSettings, NoveltySettings, StorySettings
from pipelines.stages.alerts.transform import _Evaluate
from pipelines.stages.dedup.transform import _JudgeWithRedis
from pipelines.stages.stories.transform import _AssignWithRedis
from pipelines.transforms.common import StageFn
from tests.pipelines.beam_events import make_event

T0 = 1_646_118_000.0  # 2022-03-01T07:00Z
BLOG = "https://www.helsinki-news.example/live/storm-aila"
RULES = parse_rules({"rules": [{"name": "storm", "match": {"keyword": "Seinäjoki"}, "window": "1h",
                                "threshold": {"count": 2, "of": "events"}}]})


@pytest.fixture
def stages(redis_server: RedisServer, redis_namespace: str) -> Iterator[list[StageFn]]:
    fns: list[StageFn] = [_JudgeWithRedis(redis_server.url, DedupSettings(), True, True, redis_namespace),
                          _AssignWithRedis(redis_server.url, StorySettings(), NoveltySettings(), redis_namespace),
                          _Evaluate(redis_server.url, RULES, redis_namespace)]
    for fn in fns:
        fn.setup()
    yield fns
    for fn in fns:
        fn.teardown()


def through(stages: list[StageFn], event: dict[str, Any]) -> dict[str, Any]:
    for fn in stages:
        (event,) = list(fn.process(event))
    return event


def version(name: str, minutes: float, offset: int, url: str = BLOG) -> dict[str, Any]:
    """The live blog's page as its source republished it (same source, same URL)."""
    return make_event(f"liveblog-storm.update-{name}.txt", T0 + 60 * minutes, offset, source="rss:helsinki-news",
                      url=url)


def test_a_same_url_update_is_update_of_with_its_new_sentences_and_counts_towards_alerts(
        stages: list[StageFn]) -> None:
    first = through(stages, version("1", 0, 0))
    assert first["dedup_kind"] is None and first["_alerts"] == []  # one event: below the threshold
    update = through(stages, version("3", 10, 1, url=BLOG + "/?utm_source=rss"))
    # an update of the first version, not a duplicate
    assert (update["update_of"], update["duplicate_of"], update["near_duplicate_of"]) == (first["event_id"], None, None)
    assert update["dedup_kind"] == "update"
    # activity of the blog's story, with only what the first version lacked as its novelty
    assert update["story_id"] == first["story_id"] and update["story"]["event_count"] == 2
    assert update["novelty"]["new_sentences"] == [
        "Rail operator VR has cancelled all trains between Seinäjoki and Oulu until at least Sunday morning.",
        "Replacement buses will run where roads are open, the company said.",
        "Repair crews expect most homes to be reconnected by Sunday night."]
    assert update["novelty"]["repeated"] == 4
    # and it counts: the second matching event fires the rule, naming the update
    (alert,) = update["_alerts"]
    assert alert["counts"]["events"] == 2 and update["event_id"] in alert["event_ids"]

    # the first version again (re-wrapped, a new marker line): identical content, still a duplicate
    again = through(stages, version("2", 20, 2))
    assert (again["dedup_kind"], again["duplicate_of"], again["update_of"]) == ("exact", first["event_id"], None)
    assert again["story_id"] == first["story_id"] and again["novelty"]["new_sentences"] == []

    # at-least-once: the same records replayed get the same verdicts, stories and novelty
    replayed = [through(stages, version(n, m, o, url=u)) for n, m, o, u in
                (("3", 10, 1, BLOG + "/?utm_source=rss"), ("1", 0, 0, BLOG), ("2", 20, 2, BLOG))]
    for before, after in zip((update, first, again), replayed, strict=True):
        for field in ("duplicate_of", "update_of", "dedup_kind", "story_id", "novelty"):
            assert after[field] == before[field], field
