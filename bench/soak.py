"""Soak: the shipped pipeline at a steady rate for a long time; memory, lag and latency over time.

A long-lived service has to hold its memory flat once its caches have filled, keep up with a rate
below its capacity for good, and answer as fast in the last minute as in the first. This starts its
own Kafka broker and Redis and the pipeline jobs exactly as bench/e2e_throughput.py does (`newswire
up --workers N`, shipped config/newswire.yaml), produces distinct ~1 KB fragments at ``--rate`` for
``--minutes``, reads the enriched topic throughout, and every ``--every`` seconds prints one row:

* memory (PSS, MB) of the jobs' Python processes together, of their Prism runners together, of the
  launcher that forked them, and Redis' ``used_memory`` (the pipeline state, which grows with the
  fragments in its window by design: bench/RESULTS.md "State size");
* fragments produced and enriched so far, and the lag between them;
* the interval's enriched-record latency p50 / p99 (raw record time -> enriched record time) and
  the CPU the jobs (with their Prism runners) used in it, in % of one core.

At the end, each process group's memory trend over the second half of the run (least squares, MB
per hour; the first half fills caches and per-process structures) and the lag's: a flat service
has trends near 0 and a lag that does not grow.

    python bench/soak.py                       # 20 minutes at 60/s (shipped config, default jobs)
    python bench/soak.py --minutes 60 --rate 100 --every 120
    python bench/soak.py --minutes 30 --stream open   # a growing vocabulary: the caches fill, then level
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_throughput import make_fragments, open_fragments, percentile, wait_until_serving
from bench.peers.compare import memory_mb, tree_cpu_of, tree_memory_by_name
from connectors.kafka import KafkaBroker, make_consumer, make_producer
from connectors.redis import RedisServer, make_redis
from core.settings import load_settings
from newswire.workers import default_workers
from tests.harness import Stack, free_port


class Enriched(threading.Thread):
    """Reads the enriched topic from the start: counts records and keeps the latencies (ms) of those
    that arrived since the last :meth:`take`."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack, self.count, self._lat, self._lock = stack, 0, [], threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        consumer = make_consumer(self.stack.settings, group_id=None)
        consumer.subscribe([self.stack.settings.kafka.topics.enriched.name])
        while not self.stopping.is_set():
            for records in consumer.poll(timeout_ms=200, max_records=5000).values():
                docs = [(r.timestamp, orjson.loads(r.value)) for r in records]
                lat = [ts - d["origin"]["timestamp_ms"] for ts, d in docs if str(d.get("source_id")).startswith("soak")]
                with self._lock:  # the warm-up fragments (one a partition) are not counted
                    self.count += len(lat)
                    self._lat.extend(lat)
        consumer.close()

    def take(self) -> tuple[int, list[int]]:
        with self._lock:
            lat, self._lat = self._lat, []
            return self.count, lat


def produce(stack: Stack, rate: float, until: float, produced: list[int], stream: str = "corpus") -> None:
    """Distinct fragments at ``rate`` per second until the monotonic time ``until``; ``produced[0]``
    counts what the broker acknowledged. ``stream``: ``corpus`` (recycled real sentences) or ``open``
    (a vocabulary that keeps growing: bench/e2e_throughput.py ``open_fragments``)."""
    fragments = open_fragments if stream == "open" else make_fragments
    producer = make_producer(stack.settings, linger_ms=5)
    topic, t0, chunk, sent = stack.settings.kafka.topics.fragments.name, time.monotonic(), 0, 0
    while time.monotonic() < until:
        for value in fragments(500, 100 + chunk, f"soak{chunk}"):
            producer.send(topic, value=value).add_callback(lambda _: produced.__setitem__(0, produced[0] + 1))
            sent += 1
            pause = t0 + sent / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if time.monotonic() >= until:
                break
        chunk += 1
    producer.flush()
    producer.close()


def trend_per_hour(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (seconds), per hour."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return 3600.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def main() -> None:
    shipped = load_settings(environ={})
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20, help="how long to produce (default 20)")
    ap.add_argument("--rate", type=float, default=60, help="fragments/s (default 60, below capacity)")
    ap.add_argument("--every", type=float, default=60, help="seconds between rows (default 60)")
    ap.add_argument("--partitions", type=int, default=shipped.kafka.topics.fragments.partitions)
    ap.add_argument("--workers", type=int, default=None, help="pipeline jobs (default: `newswire up`'s)")
    ap.add_argument("--stream", choices=["corpus", "open"], default="corpus",
                    help="corpus: recycled real sentences (default); open: new names and numbers in every "
                         "fragment, which fills every cache keyed by words (bench/cache_memory.py)")
    args = ap.parse_args()
    workers = args.workers or default_workers(args.partitions)

    tmp = Path(tempfile.mkdtemp(prefix="newswire-soak-"))
    redis = RedisServer(tmp / "redis", port=free_port()).start()
    base = {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}", "kafka.embedded.controller_port": free_port(),
            "data_dir": str(tmp), "redis.url": redis.url}
    print(f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}; "
          f"config: shipped (config/newswire.yaml), jobs: {workers}, partitions: {args.partitions}; "
          f"{args.rate:.0f} fragments/s for {args.minutes:.0f} min, stream {args.stream}", flush=True)
    rows: list[tuple[float, dict[str, float], int, int]] = []
    with KafkaBroker(load_settings(overrides=base, environ={})):
        stack = Stack(base, tmp, **{"kafka.topics.fragments.partitions": args.partitions})
        pids = stack.start_jobs(workers)
        wait_until_serving(stack, "pipeline")
        launcher = [root for root in stack.process_roots() if root not in pids]
        state = make_redis(redis.url)
        reader = Enriched(stack)
        reader.start()
        produced = [0]
        t0 = time.monotonic()
        feeder = threading.Thread(target=produce, args=(stack, args.rate, t0 + args.minutes * 60, produced, args.stream),
                                  daemon=True)
        feeder.start()
        print(f"{'min':>5} {'jobs MB':>8} {'prism MB':>8} {'launcher':>8} {'redis MB':>8} {'produced':>9} "
              f"{'enriched':>9} {'lag':>6} {'p50 ms':>7} {'p99 ms':>7} {'jobs CPU':>8}", flush=True)
        cpu_before, t_before = sum(tree_cpu_of(pids).values()), time.monotonic()
        while feeder.is_alive() or reader.count < produced[0]:
            time.sleep(args.every)
            done, lat = reader.take()
            pss = [tree_memory_by_name(p) for p in pids]
            mem = {"jobs": sum(m.get("python", 0.0) for m in pss),
                   "prism": sum(v for m in pss for k, v in m.items() if k.startswith("prism")),
                   "launcher": sum(memory_mb(p) for p in launcher),
                   "redis": int(state.info("memory")["used_memory"]) / 2**20}
            cpu, now = sum(tree_cpu_of(pids).values()), time.monotonic()
            busy = 100 * (cpu - cpu_before) / (now - t_before)
            cpu_before, t_before = cpu, now
            t = time.monotonic() - t0
            rows.append((t, mem, produced[0], done))
            print(f"{t / 60:5.1f} {mem['jobs']:8.0f} {mem['prism']:8.0f} {mem['launcher']:8.0f} {mem['redis']:8.0f} "
                  f"{produced[0]:9d} {done:9d} {produced[0] - done:6d} "
                  f"{percentile(lat, .5) if lat else float('nan'):7.0f} {percentile(lat, .99) if lat else float('nan'):7.0f} "
                  f"{busy:7.0f}%", flush=True)
            if not feeder.is_alive() and time.monotonic() - t0 > args.minutes * 60 + 300:
                break  # caught up or not, five minutes after the last fragment is the end
        reader.stopping.set()
        stack.stop_all()
    redis.stop()
    half = [r for r in rows if r[0] >= rows[-1][0] / 2 and r[0] <= args.minutes * 60] or rows
    xs = [r[0] for r in half]
    print("trend over the second half (least squares): " + ", ".join(
        f"{k} {trend_per_hour(xs, [r[1][k] for r in half]):+.0f} MB/h" for k in ("jobs", "prism", "launcher", "redis"))
        + f", lag {trend_per_hour(xs, [float(r[2] - r[3]) for r in half]):+.0f} fragments/h")
    print(f"enriched {rows[-1][3]} of {rows[-1][2]} produced")


if __name__ == "__main__":
    main()
