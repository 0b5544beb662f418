"""The three stages that keep state in Redis (dedup, stories, alerts) under failure: an event that
breaks a stage goes to the dead-letter topic with the reason and the next event flows on; Redis
being unreachable is not the event's fault, so it fails the bundle (the runner retries it) instead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from apache_beam.pvalue import TaggedOutput

from connectors.redis import RedisServer
from pipelines.text.alerts import parse_rules
from pipelines.text.dedup import DedupSettings
from pipelines.text.novelty import NoveltySettings
from pipelines.text.stories import StorySettings
from pipelines.transforms.alerts import _Evaluate
from pipelines.transforms.common import DEAD_LETTERS, StageFn
from pipelines.transforms.near_dedup import _JudgeWithRedis
from pipelines.transforms.stories import _AssignWithRedis
from tests.harness import free_port
from tests.pipelines.beam_events import make_event

RULES = parse_rules({"rules": [{"name": "any", "match": {"any": [{"entity": "Turku"}, {"keyword": "harbour"}]},
                                "window": "10m", "threshold": {"count": 100}}]})

STAGES: dict[str, Callable[[str, str], StageFn]] = {
    "dedup": lambda url, ns: _JudgeWithRedis(url, DedupSettings(), True, True, ns),
    "stories": lambda url, ns: _AssignWithRedis(url, StorySettings(), NoveltySettings(), ns),
    "alerts": lambda url, ns: _Evaluate(url, RULES, ns),
}
# What breaks each stage's own logic (not Redis): a text that is not a string, entities that are not a list.
POISON: dict[str, dict[str, Any]] = {"dedup": {"text": 12345}, "stories": {"entities": 5}, "alerts": {"entities": 5}}


def run(fn: StageFn, event: dict[str, Any]) -> list[Any]:
    return list(fn.process(event))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_an_event_that_breaks_the_stage_is_a_dead_letter_and_the_next_flows(
        stage: str, redis_server: RedisServer, redis_namespace: str) -> None:
    fn = STAGES[stage](redis_server.url, redis_namespace)
    fn.setup()
    try:
        good = make_event("turku-port-fire.txt", 1_700_000_000, 0)
        (bad,) = run(fn, {**make_event("turku-port-fire.txt", 1_700_000_000, 1), **POISON[stage]})
        (after,) = run(fn, good)
    finally:
        fn.teardown()
    assert isinstance(bad, TaggedOutput) and bad.tag == DEAD_LETTERS
    letter = bad.value.payload
    assert (letter["stage"], letter["reason"]) == (stage, "internal")
    assert "Error" in letter["error"] and letter["original_b64"]
    assert not isinstance(after, TaggedOutput) and after["event_id"] == good["event_id"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_redis_unreachable_fails_the_bundle_instead(stage: str) -> None:
    fn = STAGES[stage](f"redis://127.0.0.1:{free_port()}/0", "t:")
    fn.setup()
    try:
        with pytest.raises(redis.ConnectionError):
            run(fn, make_event("turku-port-fire.txt", 1_700_000_000, 0))
    finally:
        fn.teardown()
