"""The three stages that keep state in Redis (dedup, stories, alerts) under failure: an event that
breaks a stage goes to the dead-letter topic with the reason and the next event flows on; Redis
being unreachable is not the event's fault, so the stage waits it out in place (core/outage.py)
and goes on when Redis is back; only an outage longer than outage_max_wait_s fails the bundle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from apache_beam.pvalue import TaggedOutput

from connectors.redis import RedisServer
from core.alert_rules import parse_rules
from core.outage import OutageGaveUp
from core.settings import DedupSettings, NoveltySettings, StorySettings
from pipelines.stages.alerts.transform import _Evaluate
from pipelines.stages.dedup.transform import _JudgeWithRedis
from pipelines.stages.stories.transform import _AssignWithRedis
from pipelines.transforms.common import DEAD_LETTERS, StageFn
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
def test_redis_unreachable_for_too_long_fails_the_bundle_never_the_event(stage: str) -> None:
    fn = STAGES[stage](f"redis://127.0.0.1:{free_port()}/0", "t:")
    fn.outage_max_wait_s = 1.0
    fn.setup()
    try:
        with pytest.raises(OutageGaveUp) as err:
            run(fn, make_event("turku-port-fire.txt", 1_700_000_000, 0))
        assert isinstance(err.value.__cause__, redis.ConnectionError)
    finally:
        fn.teardown()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_redis_outage_is_waited_out_and_the_event_goes_on(stage: str, tmp_path: Path) -> None:
    port = free_port()
    fn = STAGES[stage](f"redis://127.0.0.1:{port}/0", "t:")
    fn.setup()
    outputs: list[Any] = []
    # The stage runs in a thread while Redis is down; the server starts from this thread (a child
    # started from a short-lived thread would get its parent-death signal when that thread ends).
    worker = threading.Thread(target=lambda: outputs.extend(run(fn, make_event("turku-port-fire.txt",
                                                                               1_700_000_000, 0))))
    worker.start()
    time.sleep(1.5)
    server = RedisServer(tmp_path / "redis", port=port).start()
    try:
        worker.join(60)
        assert not worker.is_alive()
        (out,) = outputs
        assert not isinstance(out, TaggedOutput) and out["event_id"]
    finally:
        fn.teardown()
        server.stop()
