"""DeduplicateWithRedis: exact copies, same URL / feed item, near duplicates and excerpts.

The Beam side of ``logic.py`` (read its docstring first): a plain DoFn; per event, the fingerprint,
one round trip to Redis (``state.py``'s :class:`RedisDedupStore`: a server-side script reads and
updates all the event's keys atomically) and :func:`~pipelines.stages.dedup.logic.judge`. The state
outlives the pipeline (Redis' append-only file) and is shared by every worker and every pipeline
instance pointed at the same Redis; keys expire ``ttl_s`` after their last write. Redis
unavailable: waited out in place (core/outage.py), so dedup is never skipped; an event that
breaks the stage itself: a dead letter. ``exact.py`` beside it is the Redis-free mode (content
hash only, Beam keyed state).

Records, not event ids, get verdicts: the same fragment delivered twice (a replay after a crash,
a producer retry) has one event_id but two records, and each must get its own verdict; a replayed
event sees only the entries stored before its own, so it gets its first verdict again.

Output fields: ``duplicate_of`` (exact copy, another source's copy of the URL, or a version of
the same page that adds nothing: the event it repeats), ``update_of`` (a new version of the same
page, URL or feed GUID, from the same source that adds to it, e.g. a live blog's update: the
version it supersedes; not a duplicate), ``near_duplicate_of`` (edited re-post, excerpt, or the
full text of an earlier excerpt), ``dedup_kind`` (exact | same_url | update | near_duplicate |
contained | contains), ``similarity`` (estimated Jaccard of word 3-shingles) and ``containment``
(share of sentences in common); all ``None`` for a first sighting. Duplicates are marked, never
dropped. When a page's version is an update is :func:`~pipelines.stages.dedup.logic.is_update`.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from core.outage import REDIS_UNAVAILABLE
from core.records import DEDUP_FIELDS, analysis_text, event_time_ms
from core.settings import DedupSettings, PipelineSettings
from pipelines.stages.dedup.logic import DEFAULT_SETTINGS, DedupMatch, Fingerprint, fingerprint
from pipelines.transforms.common import StageFn, run_stage

_EPSILON_S = 0.001  # timers fire once the watermark reaches them; an entry at exactly ts - ttl is still live


def record_id(event: dict[str, Any]) -> str:
    """Identity of one delivered record (event_id@topic/partition/offset): replays get their own verdict."""
    o = event.get("origin") or {}
    return f"{event['event_id']}@{o.get('topic')}/{o.get('partition')}/{o.get('offset')}"


def event_fingerprint(event: dict[str, Any], settings: DedupSettings, match_url: bool, match_guid: bool
                      ) -> Fingerprint:
    """Fingerprint of an in-flight event. The GUID is the source's item id, scoped by source; the
    source also tells a page's own versions from another source's copy of its URL.

    A part of a multi-part item (``metadata.part``) shares the item's URL and id with its siblings,
    so it is keyed by ``id#part`` and not by URL: parts are not copies of each other.
    """
    part = (event.get("metadata") or {}).get("part")
    url = event.get("url") if match_url and part is None else None
    guid = None
    if match_guid and event.get("source_id"):
        guid = f"{event['source']}\x1f{event['source_id']}" + (f"#{part}" if part is not None else "")
    return fingerprint(analysis_text(event), url=url, guid=guid, content_hash=event.get("content_hash"),
                       source=event.get("source"), settings=settings)


def verdict_counters() -> dict[str, Any]:
    """One ``dedup`` counter per verdict kind, and ``new`` for first sightings."""
    return {kind: Metrics.counter("dedup", kind) for kind in
            ("exact", "same_url", "update", "near_duplicate", "contained", "contains", "new")}


def dedup_fields(match: DedupMatch | None) -> dict[str, Any]:
    """The event fields for a verdict (see the module docstring)."""
    if match is None:
        return dict.fromkeys(DEDUP_FIELDS)
    fields = match.as_fields()
    scores = fields.pop("dedup")
    assert isinstance(scores, dict)
    return {**fields, "dedup_kind": scores["kind"], "similarity": scores["similarity"],
            "containment": scores["containment"]}


class _JudgeWithRedis(StageFn):
    """event -> event with the verdict fields; the dedup state is in Redis, one round trip per event.
    Redis unavailable: the bundle is retried; an error of this event's own: a dead letter."""

    stage = "dedup"
    retry_on = REDIS_UNAVAILABLE

    def __init__(self, redis_url: str, settings: DedupSettings, match_url: bool, match_guid: bool,
                 namespace: str) -> None:
        super().__init__()
        self.redis_url, self.settings, self.namespace = redis_url, settings, namespace
        self.match_url, self.match_guid = match_url, match_guid
        self.counts = verdict_counters()

    def setup(self) -> None:
        from connectors.redis import make_redis  # worker side, like pipelines/io.py
        from pipelines.stages.dedup.state import RedisDedupStore

        self._client = make_redis(self.redis_url)
        self._store = RedisDedupStore(self._client, self.settings, self.namespace.encode())

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        fp = event_fingerprint(event, self.settings, self.match_url, self.match_guid)
        verdict = self._store.observe(event["event_id"], fp, event_time_ms(event) / 1000.0)
        self.counts[verdict.match.kind if verdict.match else "new"].inc()
        return {**event, **dedup_fields(verdict.match)}

    def teardown(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()


class DeduplicateWithRedis(beam.PTransform):
    """:class:`Deduplicate` with its state in Redis: fast on any runner, restart-safe, shared by workers.

    ``redis_url``: ``redis://host:port/db`` (the embedded server: ``connectors.redis.RedisServer``).
    ``namespace`` prefixes every Redis key, so pipelines (or tests) can share one server.
    In: as :class:`Deduplicate`. Out: (events with the verdict fields, dead letters); one Redis round
    trip per event, no shuffle.
    """

    def __init__(self, redis_url: str, settings: DedupSettings = DEFAULT_SETTINGS, *, match_url: bool = True,
                 match_guid: bool = True, namespace: str = "nd:", outage_max_wait_s: float = PipelineSettings.outage_max_wait_s) -> None:
        super().__init__()
        self.redis_url, self.settings, self.namespace = redis_url, settings, namespace
        self.match_url, self.match_guid = match_url, match_guid
        self.outage_max_wait_s = outage_max_wait_s

    def stage_fn(self) -> StageFn:
        fn = _JudgeWithRedis(self.redis_url, self.settings, self.match_url, self.match_guid, self.namespace)
        fn.outage_max_wait_s = self.outage_max_wait_s
        return fn

    def expand(self, events: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        return run_stage(events, "JudgeWithRedis", self.stage_fn())
