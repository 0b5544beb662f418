"""End-to-end throughput and latency: raw topic -> Prism pipeline -> enriched topic, on this machine.

Starts its own Apache Kafka broker (free ports, temporary data dir) and the pipeline as a separate
process, exactly as `newswire up` does, then:

1. throughput: produce N distinct ~1 KB fragments as fast as the producer can and measure
   fragments/s from the first produce until the last enriched event is on the topic;
2. latency: produce at a fixed rate (default 200/s) and report p50/p99 of
   (enriched record time - raw record time), both Kafka CreateTime stamps from this machine's clock;
3. baseline: the same stage functions (parse, normalise, language, [enrich], dedup, stories, alerts,
   schema check) in a plain Python loop, no Kafka and no Beam, on the same fragments, with the same
   Redis: overhead ratio = baseline / pipeline.

Every default is the shipped config/newswire.yaml's (gazetteer entities, near-dup dedup, stories, alerts).

    python bench/e2e_throughput.py [--n 5000] [--rate 200] [--seconds 15] [--dedup near|exact]
                                   [--entities off|gazetteer|spacy] [--stories on|off] [--alerts on|off]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connectors.kafka import KafkaBroker, make_consumer, make_producer
from connectors.redis import RedisServer
from core.settings import load_settings
from pipelines.io import KafkaRecord
from pipelines.stages.dedup.exact import mark_duplicate
from pipelines.text.normalise import split_sentences
from pipelines.transforms.emit import finish_event
from pipelines.transforms.language import detect_event_language
from pipelines.transforms.normalise import normalise_event
from pipelines.transforms.parse import start_event
from tests.harness import Stack, free_port


def corpus_sentences() -> list[str]:
    """English sentences from the real samples (../shared/samples) and the demo fragments."""
    texts = [p.read_text(encoding="utf-8") for p in (REPO.parent / "shared" / "samples").glob("*.txt")]
    for line in (REPO / "docs" / "examples" / "demo-fragments.jsonl").read_text().splitlines():
        doc = orjson.loads(line)
        if doc.get("text") and doc["source"].startswith("demo:wire"):
            texts.append(doc["text"])
    return [s for t in texts for s in split_sentences(" ".join(t.split())) if len(s) > 40]


def make_fragments(n: int, seed: int, tag: str) -> list[bytes]:
    """n distinct fragments of about 1 KB: random real sentences plus a unique numbered sentence."""
    rng = random.Random(seed)
    sentences = corpus_sentences()
    out = []
    for i in range(n):
        body = [f"Update {tag}-{i}: officials confirmed the figures on {rng.randint(1, 28)} November."]
        while sum(map(len, body)) < 950:
            body.append(rng.choice(sentences))
        out.append(orjson.dumps({"source": f"bench:{i % 8}", "id": f"{tag}-{i}", "text": " ".join(body)}))
    return out


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def collect(stack: Stack, want: set[str], timeout_s: float) -> dict[str, tuple[int, int]]:
    """Read enriched events until every source_id in `want` arrived: id -> (raw ts, enriched ts)."""
    consumer = make_consumer(stack.settings, group_id=None)
    consumer.subscribe([stack.settings.kafka.topics.enriched.name])
    got: dict[str, tuple[int, int]] = {}
    deadline = time.monotonic() + timeout_s
    while want - got.keys() and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200, max_records=5000).values():
            for r in records:
                doc = orjson.loads(r.value)
                if doc["source_id"] in want:
                    got[doc["source_id"]] = (doc["origin"]["timestamp_ms"], r.timestamp)
    consumer.close()
    return got


def make_redis_client(settings):
    from connectors.redis import make_redis

    return make_redis(settings.redis.url)


class StageClock:
    """CPU-wall time per stage over a loop: ``with clock("dedup"): ...``; ms per fragment at the end."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
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


def baseline(values: list[bytes], settings, clock: StageClock | None = None) -> float:
    """Fragments/s of the same stage functions in a plain loop (one core, no Kafka, no Beam);
    ``clock`` collects the time of each stage."""
    clock = clock or StageClock()
    first: dict[str, str] = {}
    enrich = settings.pipeline.enrichment
    if enrich.entities != "off":
        from pipelines.text.entities import EntityTagger
        from pipelines.text.places import PlaceResolver
        from pipelines.transforms.enrich import enrich_event

        tagger, resolver = EntityTagger(mode=enrich.entities), PlaceResolver(demonyms=enrich.demonyms)
    near = settings.pipeline.dedup.mode == "near"
    if near:
        from connectors.redis import make_redis
        from core.settings import DedupSettings
        from pipelines.stages.dedup.state import RedisDedupStore
        from pipelines.stages.dedup.transform import dedup_fields, event_fingerprint

        dedup = DedupSettings()
        store = RedisDedupStore(make_redis(settings.redis.url), dedup, b"baseline:")
    if settings.pipeline.stories.enabled:
        from pipelines.stages.stories.state import RedisStoryStore

        stories = RedisStoryStore(make_redis_client(settings), namespace="baseline:")
    if settings.alerts.enabled:
        from core.alert_rules import load_rules
        from pipelines.stages.alerts.logic import build_alert, matches
        from pipelines.stages.alerts.state import AlertStateStore

        rules = load_rules(settings.alerts.rules_path).rules
        alert_state = AlertStateStore(make_redis_client(settings), namespace="baseline:")
    t0 = time.perf_counter()
    for i, v in enumerate(values):
        with clock("parse"):
            event = start_event(KafkaRecord("t", 0, i, i, 0, None, v), settings.pipeline.max_fragment_bytes)
        with clock("normalise"):
            event = normalise_event(event)
        with clock("language"):
            event = detect_event_language(event, settings.pipeline.language)
        if enrich.entities != "off":
            with clock("enrich"):
                event = enrich_event(event, tagger, resolver)
        with clock("dedup"):
            if near:
                verdict = store.observe(event["event_id"], event_fingerprint(event, dedup, True, True), time.time())
                event = {**event, **dedup_fields(verdict.match)}
            else:
                event = mark_duplicate(event, first.setdefault(event["content_hash"], event["event_id"]))
        if settings.pipeline.stories.enabled:
            with clock("stories"):
                event = {**event, **stories.assign(event, time.time()).to_fields()}
        if settings.alerts.enabled:
            with clock("alerts"):
                due = [r for r in rules if matches(r, event)]
                for rule, result in zip(due, alert_state.evaluate(event, due) if due else [], strict=True):
                    if result.facts is not None:
                        build_alert(rule, result.facts, event)
        with clock("emit"):
            finish_event(event)
    return len(values) / (time.perf_counter() - t0)


def main() -> None:
    shipped = load_settings(environ={})  # every default below is the shipped config/newswire.yaml's
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="fragments for the throughput run")
    ap.add_argument("--rate", type=float, default=200, help="fragments/s for the latency run")
    ap.add_argument("--seconds", type=float, default=15, help="duration of the latency run")
    ap.add_argument("--partitions", type=int, default=shipped.kafka.topics.fragments.partitions)
    ap.add_argument("--dedup", choices=["near", "exact"], default=shipped.pipeline.dedup.mode,
                    help="pipeline.dedup.mode: near (Redis index) or exact (content hash, Beam state)")
    ap.add_argument("--entities", choices=["off", "gazetteer", "spacy"], default=shipped.pipeline.enrichment.entities,
                    help="enrichment mode (pipeline.enrichment.entities); off = the foundation stages only")
    ap.add_argument("--stories", choices=["on", "off"], default="on" if shipped.pipeline.stories.enabled else "off",
                    help="pipeline.stories.enabled")
    ap.add_argument("--alerts", choices=["on", "off"], default="on" if shipped.alerts.enabled else "off",
                    help="alerts.enabled (config/alerts.yaml)")
    ap.add_argument("--baseline-only", action="store_true",
                    help="only the plain loop and its per-stage cost table (no broker, no pipeline)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="newswire-bench-"))
    redis = RedisServer(tmp / "redis", port=free_port()).start()
    if args.baseline_only:
        settings = load_settings(environ={}, overrides={
            "redis.url": redis.url, "pipeline.enrichment.entities": args.entities, "pipeline.dedup.mode": args.dedup,
            "pipeline.stories.enabled": args.stories == "on", "alerts.enabled": args.alerts == "on"})
        clock = StageClock()
        rate = baseline(make_fragments(args.n, 1, "tp"), settings, clock)
        redis.stop()
        print(f"plain loop, {args.n} fragments, enrichment: {args.entities}, dedup: {args.dedup}, stories: "
              f"{args.stories}, alerts: {args.alerts}: {rate:.0f} fragments/s ({1000 / rate:.2f} ms each); per stage:")
        print(clock.table(args.n))
        return
    base = {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}", "kafka.embedded.controller_port": free_port(),
            "data_dir": str(tmp), "redis.url": redis.url}
    with KafkaBroker(load_settings(overrides=base, environ={})):
        stack = Stack(base, tmp, **{"kafka.topics.fragments.partitions": args.partitions,
                                    "pipeline.enrichment.entities": args.entities,
                                    "pipeline.dedup.mode": args.dedup,
                                    "pipeline.stories.enabled": args.stories == "on",
                                    "alerts.enabled": args.alerts == "on"})
        t_start = time.monotonic()
        stack.start_pipeline()
        stack.produce([orjson.dumps({"source": "bench", "id": "warmup", "text": "Warm-up fragment for the bench."})])
        if not collect(stack, {"warmup"}, 120):
            sys.exit("pipeline did not come up:\n" + stack.pipeline_log())
        startup = time.monotonic() - t_start

        # 1. Throughput
        values = make_fragments(args.n, 1, "tp")
        size = statistics.mean(map(len, values))
        producer = make_producer(stack.settings, linger_ms=20, batch_size=256 * 1024)
        t0 = time.time()
        for v in values:
            producer.send(stack.settings.kafka.topics.fragments.name, value=v)
        producer.flush()
        produced_s = time.time() - t0
        got = collect(stack, {f"tp-{i}" for i in range(args.n)}, 600)
        last_ms = max(e for _, e in got.values())
        throughput = len(got) / (last_ms / 1000 - t0)
        tp_lat = [e - r for r, e in got.values()]

        # 2. Latency at a fixed rate
        values_l = make_fragments(int(args.rate * args.seconds), 2, "lat")
        interval = 1 / args.rate
        t1 = time.monotonic()
        for i, v in enumerate(values_l):
            producer.send(stack.settings.kafka.topics.fragments.name, value=v)
            producer.flush() if i % 10 == 9 else None
            pause = t1 + (i + 1) * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        producer.flush()
        got_l = collect(stack, {f"lat-{i}" for i in range(len(values_l))}, 300)
        lat = [e - r for r, e in got_l.values()]
        producer.close()
        stack.stop_all()

    clock = StageClock()
    n_base = min(args.n, 3000)
    base_rate = baseline(make_fragments(n_base, 1, "tp"), stack.settings, clock)
    redis.stop()
    print(f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
          f"runner: Prism, partitions: {args.partitions}, enrichment: {args.entities}, "
          f"dedup: {args.dedup}, stories: {args.stories}, alerts: {args.alerts}")
    print(f"pipeline startup (process start -> first enriched event): {startup:.1f} s")
    print(f"throughput: {len(got)}/{args.n} fragments of {size:.0f} B; produced in {produced_s:.2f} s; "
          f"end to end {throughput:.0f} fragments/s")
    print(f"  latency under that burst: p50 {percentile(tp_lat, .5):.0f} ms, p99 {percentile(tp_lat, .99):.0f} ms")
    print(f"latency at {args.rate:.0f} fragments/s for {args.seconds:.0f} s ({len(got_l)}/{len(values_l)} arrived): "
          f"p50 {percentile(lat, .5):.0f} ms, p99 {percentile(lat, .99):.0f} ms, max {max(lat):.0f} ms")
    print(f"baseline (same stage functions, plain loop, 1 core): {base_rate:.0f} fragments/s; per stage:")
    print(clock.table(n_base))
    print(f"overhead ratio (baseline / pipeline): {base_rate / throughput:.2f}x")


if __name__ == "__main__":
    main()
