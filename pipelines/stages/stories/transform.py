"""AssignStories: every event joins a story (``story_id``) and learns what it adds to it (``novelty``).

The Beam side of :class:`pipelines.stages.stories.state.RedisStoryStore`, which runs the pure decisions of
``pipelines.stages.stories.clustering`` (clustering) and ``pipelines.stages.stories.novelty`` against state kept in Redis.

Why Redis and not Beam keyed state
----------------------------------
A story decision reads the candidate stories (found under content-derived routing keys) and then
writes the chosen story *and* the routing index under every key of the event. In Beam keyed state
that is a read in one stateful step and a write in a later one: a cycle, which a graph cannot have,
so the only keyed design is one "desk" key holding everything (one worker, state lost when Prism
restarts: Prism keeps no checkpoints). In Redis each decision is one optimistic transaction, so any
number of workers and pipeline instances decide concurrently and consistently, and the state lives
through restarts (append-only file). Expiry is Redis TTLs (``max_gap_s`` after a story's last
event), which is also what bounds memory; scoring and candidate lookups additionally ignore
anything older than ``max_gap_s`` in event time, so replaying old data behaves as it did live.

Links: an event that Deduplicate marked (``duplicate_of`` / ``near_duplicate_of``) joins the story
of the event it repeats, an update of a page (``update_of``: a live blog's new version) the story of
the version it supersedes, with only what that version lacked as its novelty; one whose source gave
a ``story_key`` joins the story of that source's earlier event with the same key, while that story
is open.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from core.outage import REDIS_UNAVAILABLE
from core.records import PUBLISHED_PRECISION_S, event_time_ms
from core.settings import NoveltySettings, PipelineSettings, StorySettings
from pipelines.stages.stories.clustering import DEFAULT_STORY_SETTINGS
from pipelines.stages.stories.novelty import DEFAULT_NOVELTY_SETTINGS
from pipelines.stages.stories.state import StoryContention
from pipelines.transforms.common import StageFn, run_stage


def story_time_s(event: dict[str, Any], settings: StorySettings = DEFAULT_STORY_SETTINGS) -> float:
    """The time stories score an event on: its own publication time (``published_at``) when that is
    plausible (not more than an hour after the event reached Kafka), else the
    event time (:func:`core.records.event_time_ms`). Two reports of one event published hours
    apart stay hours apart however they arrive. A date without a time (``published_precision``
    "day": ``published_at`` is that day's midnight UTC) is scored at the day's middle, the point
    nearest every time it may stand for (bench/RESULTS.md, issue 16: an interval was tried)."""
    arrived = event_time_ms(event) / 1000.0
    published = event.get("published_at")
    if published:
        try:
            ts = datetime.fromisoformat(str(published)).timestamp()
        except ValueError:
            return arrived
        if ts <= arrived + 3600.0:
            return ts + PUBLISHED_PRECISION_S.get(str(event.get("published_precision") or ""), 0.0) / 2
    return arrived


class _AssignWithRedis(StageFn):
    """event -> event with :data:`STORY_FIELDS`; state in Redis (two round trips per event, three when it joins a
    story that is not its linked one).
    Redis unavailable or a story too contended: retried in place (core/outage.py); an error of this event's
    own: a dead letter."""

    stage = "stories"
    retry_on = (*REDIS_UNAVAILABLE, StoryContention)

    def __init__(self, redis_url: str, settings: StorySettings, novelty: NoveltySettings, namespace: str) -> None:
        super().__init__()
        self.redis_url, self.settings, self.novelty, self.namespace = redis_url, settings, novelty, namespace
        self.new_stories = Metrics.counter("stories", "new_stories")
        self.joined = Metrics.counter("stories", "joined")
        self.conflicts = Metrics.counter("stories", "transaction_retries")

    def setup(self) -> None:
        from connectors.redis import make_redis  # worker side, like pipelines/io.py
        from pipelines.stages.stories.state import RedisStoryStore

        self._client = make_redis(self.redis_url)
        self._store = RedisStoryStore(self._client, self.settings, self.novelty, namespace=self.namespace)

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        before = self._store.conflicts
        decision = self._store.assign(event, story_time_s(event, self.settings))
        self.conflicts.inc(self._store.conflicts - before)
        (self.new_stories if decision.is_new else self.joined).inc()
        return {**event, **decision.to_fields()}

    def teardown(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()


class AssignStories(beam.PTransform):
    """Give every event ``story_id``, ``story`` (the story after this event) and ``novelty``.

    In: in-flight event dicts with ``event_id``, ``source``, ``text`` (normalised), ``origin``;
    optional ``entities`` / ``places`` (enrichment; quotes alone work without them),
    ``duplicate_of`` / ``near_duplicate_of`` / ``update_of`` (run deduplication first) and ``story_key``.
    Element timestamps are event time. Out: (the same dicts plus :data:`STORY_FIELDS`, dead letters).
    ``namespace`` prefixes every Redis key (pipelines or tests can share one server).
    """

    def __init__(self, redis_url: str, settings: StorySettings = DEFAULT_STORY_SETTINGS,
                 novelty: NoveltySettings = DEFAULT_NOVELTY_SETTINGS, *, namespace: str = "nd:",
                 outage_max_wait_s: float = PipelineSettings.outage_max_wait_s) -> None:
        super().__init__()
        self.redis_url, self.settings, self.novelty, self.namespace = redis_url, settings, novelty, namespace
        self.outage_max_wait_s = outage_max_wait_s

    def stage_fn(self) -> StageFn:
        fn = _AssignWithRedis(self.redis_url, self.settings, self.novelty, self.namespace)
        fn.outage_max_wait_s = self.outage_max_wait_s
        return fn

    def expand(self, events: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        return run_stage(events, "AssignWithRedis", self.stage_fn())
