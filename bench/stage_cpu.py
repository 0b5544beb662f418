"""CPU time per fragment of the language, enrichment and dedup stages, dedup split into its parts.

Run: ``.venv/bin/python bench/stage_cpu.py [--n 2000] [--stream bench|unique] [--repeat 1] [--out FILE]``

The fragments are ``bench/e2e_throughput.py``'s (``--stream bench``: random real sample sentences,
so every sentence recurs and every dedup bucket fills up: the worst case for dedup's probe) or, with
``--stream unique``, the same sizes with the words of each sentence shuffled (almost every sentence,
band and shingle new: the common case of a news stream). Each fragment is parsed and normalised as
the pipeline does (bench/stage_chain.py, shipped config), then every stage runs over all of them in
turn, timed with this process's CPU time (``time.process_time``: steadier than wall clock on a
shared machine):

* ``language``, ``enrich``: the stage functions;
* ``dedup.fingerprint``: ``event_fingerprint``; ``dedup.probe``: ``RedisDedupStore.probe`` (building
  the script's arguments, the round trip, decoding the hits: the client's CPU, not the wait);
  ``dedup.script``: the server's own time per probe script call (INFO commandstats, a fresh
  embedded redis-server); ``dedup.judge``: ``judge`` over the hits.

``--out FILE`` writes every stage's output (language, entities, places, fingerprint, hits, verdict)
as JSON, so two checkouts' outputs can be compared byte for byte; the printed ``outputs`` digest is
its SHA-1. ``--repeat N``: the pure stages run N times and the least CPU is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_throughput import command_stats, make_fragments
from bench.stage_chain import StageChain
from connectors.redis import RedisServer, make_redis
from core.records import event_time_ms
from core.settings import load_settings
from pipelines.io import KafkaRecord
from pipelines.stages.dedup.logic import judge
from pipelines.stages.dedup.state import RedisDedupStore
from pipelines.stages.dedup.transform import dedup_fields, event_fingerprint
from pipelines.transforms.parse import start_event
from tests.harness import free_port


def server_cpu_s(client: Any) -> float:
    """CPU seconds the Redis server has used so far (user + system, ``INFO cpu``)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def script_calls(client: Any) -> tuple[int, int]:
    """(calls, microseconds) of every EVAL/EVALSHA so far."""
    return command_stats(client)[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="fragments")
    ap.add_argument("--stream", choices=["bench", "unique"], default="bench")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each pure stage; the least CPU is kept")
    ap.add_argument("--out", type=Path, help="write every stage's output here (JSON)")
    args = ap.parse_args()
    values = make_fragments(args.n, 1, "tp") if args.stream == "bench" else make_fragments(args.n, 1, "u", shuffle=True)
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="newswire-stage-cpu-")) / "redis", port=free_port()).start()
    try:
        settings = load_settings(environ={}, overrides={"redis.url": redis.url})
        stages = {name: fn for name, fn, _ in StageChain(settings, namespace="stage-cpu:").stages}
        events = []
        for i, v in enumerate(values):
            record = KafkaRecord("fragments", 0, i, i, 1_700_000_000_000 + i * 1000, None, v, None)
            events.append(stages["normalise"](start_event(record, settings.pipeline.max_fragment_bytes)))
        ms: dict[str, float] = {}

        def timed(name: str, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
            best = float("inf")
            for _ in range(args.repeat):
                cpu0 = time.process_time()
                outs = [fn(x) for x in items]
                best = min(best, time.process_time() - cpu0)
            ms[name] = best * 1000 / args.n
            return outs

        d = settings.pipeline.dedup
        languages = timed("language", stages["language"], events)
        enriched = timed("enrich", stages["enrich"], languages)
        fps = timed("dedup.fingerprint", lambda e: event_fingerprint(e, d, d.match_url, d.match_guid), enriched)
        client = make_redis(redis.url)
        store = RedisDedupStore(client, d, b"stage-cpu:")
        before, cpu0 = script_calls(client), time.process_time()
        hits = [store.probe(fp, e["event_id"], event_time_ms(e) / 1000) for fp, e in zip(fps, enriched, strict=True)]
        ms["dedup.probe"] = (time.process_time() - cpu0) * 1000 / args.n
        after = script_calls(client)
        ms["dedup.script"] = (after[1] - before[1]) / 1000 / max(1, after[0] - before[0])
        verdicts = timed("dedup.judge", lambda pair: judge(pair[0], pair[1], d), list(zip(fps, hits, strict=True)))
        client.close()
    finally:
        redis.stop()
    outputs = orjson.dumps([
        {"language": lang.get("language"), "entities": e.get("entities"), "places": e.get("places"),
         "fingerprint": repr(fp), "hits": repr(h), "verdict": dedup_fields(v)}
        for lang, e, fp, h, v in zip(languages, enriched, fps, hits, verdicts, strict=True)], option=orjson.OPT_SORT_KEYS)
    if args.out:
        args.out.write_bytes(outputs)
    kinds: dict[str, int] = {}
    for v in verdicts:
        kinds[v.kind if v else "new"] = kinds.get(v.kind if v else "new", 0) + 1
    print(f"{args.n} fragments, stream {args.stream}, load average {os.getloadavg()[0]:.2f}, verdicts {kinds}, "
          f"outputs {hashlib.sha1(outputs).hexdigest()[:12]}")
    print("CPU ms per fragment: " + "  ".join(f"{k} {v:.3f}" for k, v in ms.items()) +
          f"  (dedup client {ms['dedup.fingerprint'] + ms['dedup.probe'] + ms['dedup.judge']:.3f}"
          f" + script {ms['dedup.script']:.3f})")


if __name__ == "__main__":
    main()
