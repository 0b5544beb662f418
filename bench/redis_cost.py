"""Redis CPU per fragment of the shipped stages, split by script: the bound one Redis sets on all jobs.

Run: ``.venv/bin/python bench/redis_cost.py [--n 1200] [--stream bench|unique] [--warmup 300]
[--split none|stories|each]``

Every pipeline job shares one Redis (dedup index, stories, alert windows), and Redis runs its
scripts on one main thread, so whatever the cores, all jobs together cannot go past ``1000 / (Redis
CPU ms per fragment)`` fragments/s (docs/deploy.md, "How far it goes"). This bench measures that
figure on a fresh embedded ``redis-server``: the plain loop of the shipped config
(bench/stage_chain.py, the same stage functions and scripts as the pipeline) runs ``--warmup``
fragments, then ``--n`` more in two halves:

* the first half untouched: Redis' own CPU per fragment (``INFO cpu``, user + sys of the server)
  and its script time (``INFO commandstats``, every ``EVALSHA``);
* the second half with ``INFO commandstats`` read around each direct script call, which splits the
  script time into dedup's probe, the stories read and the stories commit; the alert rules' script
  (sent in a pipeline with one call per rule) is the rest of the half's script time.

``--stream bench``: bench/e2e_throughput.py's fragments (random real sentences, so every sentence
and many LSH bands recur: dedup and story buckets fill up, the worst case); ``--stream unique``: the
same with each sentence's words shuffled (almost nothing recurs: the common case of fresh news).
``--split stories|each``: the same with stories (or every stage) on a Redis server of its own
(``redis.stage_urls``): each server's CPU per fragment, and the bound the busiest one sets.
Prints the figures with the config they were measured in.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_throughput import SPLITS, make_fragments, start_split
from bench.stage_chain import StageChain
from bench.stage_cpu import script_calls, server_cpu_s
from connectors.redis import RedisServer, make_redis
from core.settings import STATE_STAGES, load_settings
from tests.harness import free_port

#: The scripts timed call by call: store class -> (attribute holding the registered script, name).
#: The alert rules' script goes out in a pipeline, one call per rule, so it is the rest.
TIMED = {"RedisDedupStore": (("_script", "dedup probe"),),
         "RedisStoryStore": (("_read", "stories read"), ("_commit", "stories commit"))}


def _script_usec(client: Any) -> int:
    return script_calls(client)[1]


class _ScriptClock:
    """Wraps the stores' registered scripts: the server time of each direct call, by script."""

    def __init__(self, probe: Any) -> None:
        self.probe = probe
        self.usec: Counter[str] = Counter()

    def wrap(self, script: Any, name: str) -> Any:
        clock = self

        class Timed:
            def __call__(self, keys: Any = (), args: Any = (), client: Any = None) -> Any:
                if client is not None:  # inside a pipeline: not timed one by one
                    return script(keys=keys, args=args, client=client)
                before = _script_usec(clock.probe)
                reply = script(keys=keys, args=args)
                clock.usec[name] += _script_usec(clock.probe) - before
                return reply

        return Timed()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1200, help="fragments measured (two halves, see above)")
    ap.add_argument("--warmup", type=int, default=300, help="fragments first, to fill the state")
    ap.add_argument("--stream", choices=["bench", "unique"], default="bench")
    ap.add_argument("--split", choices=sorted(SPLITS), default="none",
                    help="stages on Redis servers of their own (redis.stage_urls): none (the shipped config), "
                         "stories, or each stage; prints each server's CPU per fragment and the bound they set")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="newswire-redis-cost-"))
    server = RedisServer(tmp / "redis", port=free_port()).start()
    own, stage_urls = start_split(tmp, args.split)
    try:
        settings = load_settings(environ={}, overrides={"redis.url": server.url, **stage_urls})
        chain = StageChain(settings, namespace="cost:")
        probe = make_redis(server.url)
        probes = {"redis.url (" + "+".join([stage for stage in STATE_STAGES if stage not in own] or ["status"]) + ")": probe,
                  **{f"{stage}'s own": make_redis(s.url) for stage, s in own.items()}}
        values = make_fragments(args.warmup + args.n, 1, "rc", shuffle=args.stream == "unique")
        for i, v in enumerate(values[:args.warmup]):
            chain.process(v, i)
        half = args.n // 2

        cpu0, usec0 = {name: server_cpu_s(p) for name, p in probes.items()}, _script_usec(probe)
        for i, v in enumerate(values[args.warmup:args.warmup + half], args.warmup):
            chain.process(v, i)
        by_server = {name: (server_cpu_s(p) - cpu0[name]) * 1000 / half for name, p in probes.items()}
        cpu_ms = max(by_server.values())
        script_ms = (_script_usec(probe) - usec0) / 1000 / half

        clock = _ScriptClock(probe)
        for store in chain.stores:
            for attr, name in TIMED.get(type(store).__name__, ()):
                setattr(store, attr, clock.wrap(getattr(store, attr), name))
        usec1 = _script_usec(probe)
        for i, v in enumerate(values[args.warmup + half:], args.warmup + half):
            chain.process(v, i)
        rest = args.n - half
        total = (_script_usec(probe) - usec1) - sum(clock.usec.values())
        clock.usec["alerts (the rest)"] = total
        chain.close()
    finally:
        for s in (*own.values(), server):
            s.stop()

    print(f"machine: {os.cpu_count()} cores; config: shipped (config/newswire.yaml: gazetteer entities + places, "
          f"near-dup dedup, stories, alerts), stream: {args.stream}, {args.warmup} warm-up + {args.n} fragments, "
          f"stages on servers of their own (redis.stage_urls): {args.split}")
    if not own:
        print(f"Redis CPU per fragment: {cpu_ms:.2f} ms (scripts {script_ms:.2f} ms); one Redis bounds all jobs "
              f"together at ~{1000 / cpu_ms:.0f} fragments/s on this machine")
    else:
        for name, ms in by_server.items():
            print(f"Redis CPU per fragment, {name}: {ms:.2f} ms"
                  + (f" (~{1000 / ms:.0f} fragments/s alone)" if ms >= 0.01 else ""))
        print(f"together: {sum(by_server.values()):.2f} ms; the busiest server bounds all jobs at "
              f"~{1000 / cpu_ms:.0f} fragments/s on this machine")
    print("script time per fragment" + (" (redis.url's scripts only):" if own else ":"))
    for name, usec in clock.usec.most_common():
        if usec or not own:
            print(f"  {name:<18} {usec / rest / 1000:6.3f} ms")


if __name__ == "__main__":
    main()
