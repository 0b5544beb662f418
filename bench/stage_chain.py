"""The pipeline's per-record work as one plain call, for the benches that run it outside Beam.

``StageChain(settings).process(value, offset)`` runs, on one raw record, the stage functions the
Beam graph runs (pipelines/run.py ``build_pipeline``), in its order and with its routing::

    Parse -> Normalise -> Language -> [Enrich] -> DropOriginal -> Dedup -> [Stories] -> [Alerts] -> Emit

and returns what the graph hands its sinks: one :class:`~core.records.Delivery` per record (the
enriched event with the alerts it fired, or a dead letter). Each stage is the pure function its
DoFn wraps, called the way ``StageFn`` calls it: input a stage rejects, or an error it raises,
becomes a dead letter naming the stage; Redis unavailable is waited out in place
(``core.outage.wait_out``, like ``retry_on``). Settings are the pipeline's: analysis bound, language
thresholds, enrichment mode, dedup mode and tunables, story and novelty tunables, alert rules, list
and event-size bounds, and event time = the raw record's timestamp.

What the chain leaves out is what a framework adds: reading and committing Kafka, moving records
between stages, the sinks. It is shared by ``bench/e2e_throughput.py`` (the plain-loop baseline, with
a :class:`StageClock`) and ``bench/peers/quix_peer.py`` (the same chain inside a Quix Streams app), so
the pipeline, its peer and the plain loop do the same work per fragment.

Exact dedup mode (``pipeline.dedup.mode: exact``) keeps first sightings in a dict of this process,
where Beam keeps them in keyed state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from core.outage import REDIS_UNAVAILABLE, OutageGaveUp, wait_out
from core.records import ALERTS_KEY, Delivery, Rejected, dead_letter, event_time_ms
from core.settings import Settings
from pipelines.io import KafkaRecord
from pipelines.transforms.common import accept, drop_original, reject
from pipelines.transforms.emit import finish_event
from pipelines.transforms.language import detect_event_language
from pipelines.transforms.normalise import normalise_event
from pipelines.transforms.parse import start_event

log = logging.getLogger(__name__)

Stage = Callable[[dict[str, Any]], Any]


class StageClock:
    """CPU-wall time per stage over a loop: ``with clock("dedup"): ...``; ms per fragment at the end."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.cpu_ms = float("nan")  # CPU time per fragment of the whole loop (set by its runner)
        self._name = ""
        self._t = 0.0

    def __call__(self, name: str) -> StageClock:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._t = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.total[self._name] = self.total.get(self._name, 0.0) + time.perf_counter() - self._t

    def table(self, n: int) -> str:
        whole = sum(self.total.values())
        return "\n".join(f"  {name:<10} {secs / n * 1000:6.2f} ms  {secs / whole:5.1%}"
                         for name, secs in sorted(self.total.items(), key=lambda kv: -kv[1]))


class _NoClock(StageClock):
    """A clock that measures nothing (the peer's default: no timing calls around each stage)."""

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


class StageChain:
    """The stage functions of the configured pipeline with their models and state stores, built once.

    ``namespace``: prefix of the Redis keys (default ``redis.namespace``); give each run its own so
    dedup and story state do not mix. ``clock``: a :class:`StageClock` to time each stage."""

    def __init__(self, settings: Settings, namespace: str | None = None, clock: StageClock | None = None,
                 topic: str | None = None) -> None:
        self.settings = settings
        self.clock = clock or _NoClock()
        self.topic = topic or settings.kafka.topics.fragments.name
        self.namespace = settings.redis.namespace if namespace is None else namespace
        self._clients: list[Any] = []
        self.stores: list[Any] = []  # the Redis state stores of the stages (dedup, stories, alerts)
        p = settings.pipeline
        # name -> (function, waits out an unavailable Redis)
        self.stages: list[tuple[str, Stage, tuple[type[Exception], ...]]] = [
            ("normalise", lambda e: normalise_event(e, p.analysis_max_chars), ()),
            ("language", lambda e: detect_event_language(e, p.language), ()),
        ]
        if p.enrichment.entities != "off":
            self.stages.append(("enrich", self._enrich_stage(), ()))
        self.stages.append(("drop", drop_original, ()))
        self.stages.append(("dedup", *self._dedup_stage()))
        if p.stories.enabled:
            self.stages.append(("stories", *self._stories_stage()))
        if settings.alerts.enabled:
            self.stages.append(("alerts", self._alerts_stage(), REDIS_UNAVAILABLE))
        self.stages.append(("emit", lambda e: accept(finish_event(e, p.max_list_items, p.max_event_bytes)), ()))
        from pipelines.text.language import detect_language

        detect_language("warm up the profiles once, as the Language DoFn's setup does")

    # -- the stages, as the DoFns build and apply them
    def _redis(self, stage: str) -> Any:
        from connectors.redis import make_redis

        client = make_redis(self.settings.redis.url_for(stage))
        self._clients.append(client)
        return client

    def _enrich_stage(self) -> Stage:
        from pipelines.text.enrich import _models, enrich_event

        e = self.settings.pipeline.enrichment
        tagger, resolver = _models(e.entities, e.demonyms)  # loaded once per process, like the workers
        return lambda event: enrich_event(event, tagger, resolver)

    def _dedup_stage(self) -> tuple[Stage, tuple[type[Exception], ...]]:
        d = self.settings.pipeline.dedup
        if d.mode == "exact":
            from pipelines.stages.dedup.exact import mark_duplicate

            first: dict[str, str] = {}
            return lambda e: mark_duplicate(e, first.setdefault(e["content_hash"], e["event_id"])), ()
        from pipelines.stages.dedup.state import RedisDedupStore
        from pipelines.stages.dedup.transform import dedup_fields, event_fingerprint

        store = RedisDedupStore(self._redis("dedup"), d, self.namespace.encode())
        self.stores.append(store)

        def judge(event: dict[str, Any]) -> dict[str, Any]:
            fp = event_fingerprint(event, d, d.match_url, d.match_guid)
            verdict = store.observe(event["event_id"], fp, event_time_ms(event) / 1000.0)
            return {**event, **dedup_fields(verdict.match)}

        return judge, REDIS_UNAVAILABLE

    def _stories_stage(self) -> tuple[Stage, tuple[type[Exception], ...]]:
        from pipelines.stages.stories.state import RedisStoryStore, StoryContention
        from pipelines.stages.stories.transform import story_time_s

        c = self.settings.pipeline.stories
        store = RedisStoryStore(self._redis("stories"), c, c.novelty, namespace=self.namespace)
        self.stores.append(store)
        return (lambda e: {**e, **store.assign(e, story_time_s(e, c)).to_fields()},
                (*REDIS_UNAVAILABLE, StoryContention))

    def _alerts_stage(self) -> Stage:
        from core.alert_rules import load_rules
        from pipelines.stages.alerts.logic import build_alert, matches
        from pipelines.stages.alerts.state import AlertStateStore

        rules = load_rules(self.settings.alerts.rules_path).rules
        store = AlertStateStore(self._redis("alerts"), namespace=self.namespace)
        self.stores.append(store)

        def evaluate(event: dict[str, Any]) -> dict[str, Any]:
            due = [rule for rule in rules if matches(rule, event)]
            alerts = [build_alert(rule, result.facts, event)
                      for rule, result in zip(due, store.evaluate(event, due) if due else [], strict=True)
                      if result.facts is not None]
            return {**event, ALERTS_KEY: alerts}

        return evaluate

    # -- one record
    def process(self, value: bytes, offset: int, *, partition: int = 0, timestamp_ms: int | None = None,
                key: bytes | None = None, topic: str | None = None, replay_of: str | None = None) -> list[Delivery]:
        """The Deliveries of one raw record (one: its event or its dead letter). ``timestamp_ms``:
        the record's Kafka timestamp (default now), the event time of every stage."""
        clock = self.clock
        ts = round(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        record = KafkaRecord(topic or self.topic, partition, offset, offset, ts, key, value, replay_of)
        with clock("parse"):
            try:
                event: Any = start_event(record, self.settings.pipeline.max_fragment_bytes)
            except Rejected as exc:
                return [Delivery(kind="dead_letter", payload=dead_letter(
                    exc.stage, exc.reason, str(exc), value, key, record.topic, partition, offset, ts),
                    topic=record.topic, partition=partition, start=offset, next_offset=offset + 1, key=key)]
        wait_s = self.settings.pipeline.outage_max_wait_s
        for name, stage, retry_on in self.stages:
            with clock(name):
                try:
                    if retry_on:
                        event = wait_out(lambda: stage(event), lambda exc: isinstance(exc, retry_on),  # noqa: B023
                                         f"{name} state (Redis)", wait_s)
                    else:
                        event = stage(event)
                except Rejected as exc:
                    return [reject(event, exc.stage, exc.reason, str(exc))]
                except OutageGaveUp:
                    raise
                except Exception as exc:  # a bug or unforeseen input: a dead letter, as StageFn does
                    log.exception("stage %s failed on event %s", name, event.get("event_id"))
                    return [reject(event, name, "internal", f"{type(exc).__name__}: {exc}")]
        return [event]

    def close(self) -> None:
        for client in self._clients:
            client.close()
