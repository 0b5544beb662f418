"""Near-duplicate detection with its state in a real redis-server: cost per event and memory.

Run: ``.venv/bin/python bench/dedup_redis.py [--events 5000] [--memory-fragments 50000]``

Starts its own embedded ``redis-server`` (connectors.redis.RedisServer) in a temporary directory
on a free port, then:

* cost: ``--events`` fresh ~1 KB fragments (bench/dedup_eval.py's filler: real article sentences
  with their words shuffled, 8-10 sentences) followed by one re-post per 10 of them, each through
  what ``DeduplicateWithRedis`` does per event: fingerprint, one script round trip
  (``RedisDedupStore.probe``), ``judge``. Reported: ms per event (mean, p50, p99) for the whole step
  and for the round trip alone, events/s for one client, and the server's own time per script
  call (INFO commandstats), which bounds the events/s of all workers together.
* batching (``--batch N``, off by default): the same fresh fragments probed one round trip per
  event and then ``probe_many`` N events per round trip (what batching inside the DoFn per bundle
  would do), alternating, with this process's CPU time and the server's (INFO cpu) per event:
  the measurement behind the decision not to batch yet (bench/RESULTS.md).
* memory: ``--memory-fragments`` fresh fragments inserted (pipelined, 200 per round trip), then
  INFO memory ``used_memory`` growth, extrapolated linearly to 1M fragments, with keys per fragment.
  The index is spread over ``dedup.index_shards`` hashes sized for ~1M fragments per TTL; for a
  linear extrapolation to hold, the run scales the shard count to its own volume (the same fields
  per hash as 1M fragments would give with the shipped setting).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dedup_eval import base_articles, filler
from connectors.process import free_port
from connectors.redis import RedisServer, make_redis
from pipelines.stages.dedup.logic import fingerprint, judge, sentences
from pipelines.stages.dedup.state import RedisDedupStore


def fragments(seed: int, n: int) -> list[str]:
    """n ~1 KB filler fragments (see bench/dedup_eval.py)."""
    rng = random.Random(seed)
    pool = [s for t in base_articles().values() for s in sentences(t) if len(s.split()) >= 6]
    return [filler(rng, pool, rng.randrange(8, 11)) for _ in range(n)]


def cost(store: RedisDedupStore, texts: list[str]) -> dict[str, float]:
    """Per-event cost of fingerprint + round trip + judge, in the order the DoFn runs them."""
    stream = [(f"{i:032x}", t) for i, t in enumerate(texts)]
    stream += [(f"{len(texts) + i:032x}", texts[i] + "\n\nRead more at example.") for i in range(0, len(texts), 10)]
    total, trip, dups = [], [], 0
    t_all = time.perf_counter()
    for i, (eid, text) in enumerate(stream):
        t0 = time.perf_counter()
        fp = fingerprint(text)
        t1 = time.perf_counter()
        hits = store.probe(fp, eid, 1_700_000_000.0 + i)
        t2 = time.perf_counter()
        dups += judge(fp, hits) is not None
        total.append(time.perf_counter() - t0)
        trip.append(t2 - t1)
    wall = time.perf_counter() - t_all
    kb = sum(len(t.encode("utf-8")) for _, t in stream) / 1024 / len(stream)
    q = statistics.quantiles(total, n=100)
    return {"events": len(stream), "mean_fragment_kb": kb, "found_duplicates": dups,
            "ms_per_event": 1000 * statistics.fmean(total), "ms_per_event_p50": 1000 * q[49],
            "ms_per_event_p99": 1000 * q[98], "ms_round_trip": 1000 * statistics.fmean(trip),
            "events_per_s_one_client": len(stream) / wall}


def batching(client: redis.Redis, texts: list[str], batch: int, rounds: int = 3) -> list[str]:
    """CPU per event (client and server) of one round trip per event vs ``batch`` events per round trip."""
    fps = [fingerprint(t) for t in texts]
    lines = []
    for r in range(rounds):
        for size in (1, batch):
            store = RedisDedupStore(client, namespace=f"batch{r}-{size}:".encode())
            cpu0, srv0 = time.process_time(), client.info("cpu")
            for start in range(0, len(fps), size):
                chunk = [(fps[i], f"{i:032x}", 1_700_000_000.0 + i) for i in range(start, min(start + size, len(fps)))]
                if size == 1:
                    store.probe(*chunk[0])
                else:
                    store.probe_many(chunk)
            srv1 = client.info("cpu")
            client_ms = (time.process_time() - cpu0) * 1000 / len(fps)
            server_ms = sum(srv1[k] - srv0[k] for k in ("used_cpu_sys", "used_cpu_user")) * 1000 / len(fps)
            lines.append(f"batch {size:3d} round {r}: client CPU {client_ms:.3f} ms/event, server CPU {server_ms:.3f} ms/event")
    return lines


def memory(store: RedisDedupStore, texts: list[str]) -> dict[str, float]:
    """used_memory growth for len(texts) fresh fragments, extrapolated to 1M."""
    client = store.client
    client.flushall()
    shipped = store.settings.index_shards
    store = RedisDedupStore(client, replace(store.settings, index_shards=max(1, shipped * len(texts) // 1_000_000)))
    before = client.info("memory")["used_memory"]
    fps = [fingerprint(t) for t in texts]
    for start in range(0, len(fps), 200):
        store.probe_many([(fps[i], f"{i:032x}", 1_700_000_000.0 + i)
                          for i in range(start, min(start + 200, len(fps)))])
    info = client.info("memory")
    n, scale = len(texts), 1_000_000 / len(texts)
    keys = client.dbsize()
    return {"fragments": n, "index_shards_scaled_to": store.settings.index_shards, "keys_per_fragment": keys / n,
            "bytes_per_key": (info["used_memory"] - before) / keys,
            "used_memory_MiB_per_1M": (info["used_memory"] - before) * scale / 2**20,
            "rss_MiB_per_1M": info["used_memory_rss"] * scale / 2**20}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--memory-fragments", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=0, help="also compare N events per round trip with one (0: skip)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis", port=free_port(),
                                                           enable_commands=("FLUSHALL",)) as server:
        client = make_redis(server.url)
        store = RedisDedupStore(client)
        for k, v in cost(store, fragments(args.seed, args.events)).items():
            print(f"{k:28s} {v:,.3f}" if isinstance(v, float) else f"{k:28s} {v:,}")
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        print(f"{'server_us_per_script_call':28s} {stats.get('usec_per_call', float('nan')):,.1f}")
        if args.batch > 1:
            print("\n".join(batching(client, fragments(args.seed + 2, args.events), args.batch)))
        if args.memory_fragments:
            for k, v in memory(store, fragments(args.seed + 1, args.memory_fragments)).items():
                print(f"{k:28s} {v:,.1f}")
        client.close()


if __name__ == "__main__":
    main()
