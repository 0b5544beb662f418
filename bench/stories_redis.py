"""Story clustering and novelty with their state in a real redis-server: cost per event and memory.

Run: ``.venv/bin/python bench/stories_redis.py [--events 5000] [--memory-events 30000]``

Starts its own embedded ``redis-server`` on a free port, then feeds ``RedisStoryStore.assign``
(what the pipeline's ``AssignStories`` runs per event) a generated stream, one event per second of
event time:

* 40% of events start a new story: ~1 KB of filler (bench/dedup_eval.py: real article sentences,
  words shuffled), six entity/place ids drawn from a Zipf(1.1) law over 50,000 ids (a few names in
  every story, a long tail of rare ones), and two fresh 12-word quotations;
* 60% follow one of the 200 most recent stories: new filler, four of the story's ids plus two
  random ones, and one of the story's quotations (what another outlet or a live-blog update does).

Reported: ms per event (mean, p50, p99, the whole step: features, rarity read, transaction), the
client's and redis-server's CPU per event (``INFO cpu``), the server time of each script per event
(``INFO commandstats``, and split into read and commit by ``SLOWLOG`` on ``--split-events`` more;
this needs ``CONFIG``, enabled on its own server),
events/s for one client, the share of follow-ups that joined their story (a sanity check, not a
quality metric: quality is tested on real articles in tests/), and, for ``--memory-events``,
``used_memory`` growth extrapolated to 1M events (posting shards scaled to the run's volume, as
in production at 1M events per 72 h) with the bytes per key kind (the version hash
``v``, which stops growing at ``STRIPES`` fields, counted once at that size; the per-kind figures
scale a ``MEMORY USAGE`` sample and vary run to run, ``used_memory`` is the total to quote).
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dedup_eval import base_articles, filler
from bench.stage_cpu import script_calls, server_cpu_s
from connectors.process import free_port
from connectors.redis import RedisServer, make_redis
from pipelines.stages.dedup.logic import sentences
from pipelines.stages.stories.state import KEY_KINDS, POSTING_SHARDS, STRIPES, RedisStoryStore

T0 = 1_700_000_000.0


def stream(seed: int, n: int) -> list[tuple[dict[str, Any], str | None]]:
    """(event, index of the generated story it follows or None) for n events."""
    rng = random.Random(seed)
    pool = [s for t in base_articles().values() for s in sentences(t) if len(s.split()) >= 6]
    vocab = sorted({w.strip(".,\"'").lower() for s in pool for w in s.split() if w.isalpha()})
    cumulative = list(itertools.accumulate(1 / (k ** 1.1) for k in range(1, 50_001)))  # Zipf(1.1)

    def ids(k: int) -> list[str]:
        return [f"org:e{i}" for i in rng.choices(range(50_000), cum_weights=cumulative, k=k)]

    def quote() -> str:
        return " ".join(rng.choice(vocab) for _ in range(12))

    stories: list[tuple[list[str], list[str]]] = []
    out: list[tuple[dict[str, Any], str | None]] = []
    for i in range(n):
        follow = bool(stories) and rng.random() < 0.6
        if follow:
            sid = rng.randrange(max(0, len(stories) - 200), len(stories))
            terms, quotes = stories[sid]
            chosen, quoted = rng.sample(terms, 4) + ids(2), [rng.choice(quotes)]
        else:
            terms, quotes = ids(6), [quote(), quote()]
            stories.append((terms, quotes))
            chosen, quoted = terms, quotes
        text = filler(rng, pool, rng.randrange(6, 9)) + "".join(f'\n\nShe said: "{q}."' for q in quoted)
        event = {"event_id": f"{i:032x}", "source": f"outlet-{rng.randrange(300)}", "text": text,
                 "entities": [{"id": t, "name": t} for t in dict.fromkeys(chosen)], "places": []}
        out.append((event, str(sid) if follow else None))
    return out


def script_split(store: RedisStoryStore, events: list[tuple[dict[str, Any], str | None]]) -> dict[str, float]:
    """Server microseconds per event of each script, from ``SLOWLOG`` at threshold 0 (which logs
    every call, the commands inside scripts too, so it is drained every 10 events; a separate pass
    on a fresh namespace, since logging every command costs the server time itself)."""
    client, read, commit = store.client, store._read.sha, store._commit.sha
    store = RedisStoryStore(client, namespace="split:")
    usec = {"read": 0, "commit": 0}

    def drain() -> None:
        for entry in client.slowlog_get(-1):
            cmd = entry["command"]
            head = (cmd.decode(errors="replace") if isinstance(cmd, bytes) else cmd)[:49].split(" ")
            if head[0].upper() == "EVALSHA" and len(head) > 1:
                usec["read" if head[1] == read else "commit" if head[1] == commit else "other"] = (
                    usec.get("read" if head[1] == read else "commit" if head[1] == commit else "other", 0)
                    + entry["duration"])
        client.slowlog_reset()

    client.config_set("slowlog-max-len", 100_000)
    client.config_set("slowlog-log-slower-than", 0)
    client.slowlog_reset()
    for i, (event, _) in enumerate(events):
        store.assign(event, T0 + i)
        if i % 10 == 9:
            drain()
    client.config_set("slowlog-log-slower-than", 10_000)
    drain()
    return {f"server_us_per_event[{k}]": v / len(events) for k, v in usec.items() if k != "other"}


def cost(store: RedisStoryStore, events: list[tuple[dict[str, Any], str | None]]) -> dict[str, float]:
    times, joined, follows = [], 0, 0
    story_of_gen: dict[int, str] = {}
    gen_index = -1
    client = store.client
    cpu0, srv0, (calls0, usec0) = time.process_time(), server_cpu_s(client), script_calls(client)
    t_all = time.perf_counter()
    for i, (event, follows_gen) in enumerate(events):
        t0 = time.perf_counter()
        d = store.assign(event, T0 + i)
        times.append(time.perf_counter() - t0)
        if follows_gen is None:
            gen_index += 1
            story_of_gen[gen_index] = d.story_id
        else:
            follows += 1
            joined += story_of_gen.get(int(follows_gen)) == d.story_id
    wall = time.perf_counter() - t_all
    client_cpu, server_cpu = time.process_time() - cpu0, server_cpu_s(client) - srv0
    calls, usec = (a - b for a, b in zip(script_calls(client), (calls0, usec0), strict=True))
    kb = statistics.fmean(len(e["text"].encode()) for e, _ in events) / 1024
    q = statistics.quantiles(times, n=100)
    return {"events": len(events), "mean_event_kb": kb, "ms_per_event": 1000 * statistics.fmean(times),
            "ms_per_event_p50": 1000 * q[49], "ms_per_event_p99": 1000 * q[98],
            "client_cpu_ms_per_event": 1000 * client_cpu / len(events),
            "server_cpu_ms_per_event": 1000 * server_cpu / len(events),
            "script_calls_per_event": calls / len(events), "script_us_per_call": usec / max(1, calls),
            "events_per_s_one_client": len(events) / wall, "follow_ups_joined": joined / max(1, follows),
            "transaction_retries": store.conflicts}


def memory(store: RedisStoryStore, events: list[tuple[dict[str, Any], str | None]]) -> dict[str, float]:
    client = store.client
    client.flushall()
    # Posting lists live in POSTING_SHARDS hashes a day, sized for ~1M events per 72 h (~333,000 a
    # day); this stream puts all its events in one day, so for a linear extrapolation the run
    # scales the shards to its own volume (the same lists per hash as 1M events would give).
    store = RedisStoryStore(client, posting_shards=max(1, round(POSTING_SHARDS * len(events) * 3 / 1_000_000)))
    before = client.info("memory")["used_memory"]
    for i, (event, _) in enumerate(events):
        store.assign(event, T0 + i)
    grown = client.info("memory")["used_memory"] - before
    scale = 1_000_000 / len(events)
    usage = store.memory_usage(sample=1 << 30)  # every key: one outlier (a live blog's big set) must not be scaled up
    # The version hash (st:v:) does not grow with events past STRIPES fields: count it once, at
    # its full size (bytes per field now x STRIPES), instead of scaling it with the events.
    versions = store.prefix + "v:"
    fields = client.hlen(versions)
    v_now = usage.get("v_bytes", 0)
    v_full = v_now / max(1, fields) * STRIPES
    out: dict[str, float] = {"events": len(events), "keys_per_event": client.dbsize() / len(events),
                             "used_memory_MiB_per_1M": ((grown - v_now) * scale + v_full) / 2**20}
    for kind in KEY_KINDS:
        out[f"MiB_per_1M[{kind}]"] = (v_full if kind == "v" else usage[f"{kind}_bytes"] * scale) / 2**20
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--memory-events", type=int, default=30_000)
    parser.add_argument("--split-events", type=int, default=500, help="events for the read/commit split (0: skip)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis", port=free_port(),
                                                           enable_commands=("FLUSHALL", "CONFIG")) as server:
        client = make_redis(server.url)
        store = RedisStoryStore(client)
        for k, v in cost(store, stream(args.seed, args.events)).items():
            print(f"{k:28s} {v:,.3f}" if isinstance(v, float) else f"{k:28s} {v:,}")
        if args.split_events:
            for k, v in script_split(store, stream(args.seed + 2, args.split_events)).items():
                print(f"{k:28s} {v:,.1f}")
        if args.memory_events:
            for k, v in memory(store, stream(args.seed + 1, args.memory_events)).items():
                print(f"{k:28s} {v:,.1f}")
        client.close()


if __name__ == "__main__":
    main()
