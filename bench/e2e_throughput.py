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

from bench.stage_chain import StageChain, StageClock
from connectors.kafka import KafkaBroker, make_consumer, make_producer
from connectors.redis import RedisServer
from core.settings import load_settings
from newswire.workers import PipelineWorkers
from pipelines.text.normalise import split_sentences
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


def baseline(values: list[bytes], settings, clock: StageClock | None = None) -> float:
    """Fragments/s of the same stage functions in a plain loop (one core, no Kafka, no Beam):
    bench/stage_chain.py, shared with the Quix Streams peer; ``clock`` collects the time of each stage."""
    chain = StageChain(settings, namespace="baseline:", clock=clock or StageClock())
    t0 = time.perf_counter()
    for i, v in enumerate(values):
        chain.process(v, i)
    rate = len(values) / (time.perf_counter() - t0)
    chain.close()
    return rate


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
    ap.add_argument("--workers", type=int, default=1,
                    help="pipeline jobs splitting the partitions, as `newswire up --workers N` starts them")
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
        pool = None
        if args.workers == 1:
            stack.start_pipeline()
        else:
            pool = PipelineWorkers(stack.config_path, args.partitions, args.workers, tmp / "workers").start()
        # One warm-up fragment per partition: every job is up before the clock starts.
        warm = make_producer(stack.settings)
        for p in range(args.partitions):
            warm.send(stack.settings.kafka.topics.fragments.name, partition=p,
                      value=orjson.dumps({"source": "bench", "id": f"warmup-{p}", "text": f"Warm-up fragment {p}."}))
        warm.flush()
        warm.close()
        if len(collect(stack, {f"warmup-{p}" for p in range(args.partitions)}, 180)) < args.partitions:
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
        if pool is not None:
            pool.stop()
        stack.stop_all()

    clock = StageClock()
    n_base = min(args.n, 3000)
    base_rate = baseline(make_fragments(n_base, 1, "tp"), stack.settings, clock)
    redis.stop()
    print(f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
          f"runner: Prism, jobs: {args.workers}, partitions: {args.partitions}, enrichment: {args.entities}, "
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
