"""What a pipeline job's caches hold on a stream whose vocabulary keeps growing, and their bound.

The stage functions cache what they compute per word, name and quotation (``functools.lru_cache``),
so a job's memory grows with the vocabulary it has seen until each cache is full. On the corpus
streams of the other benches (a few hundred recycled sentences) they stay small; a news stream
brings new names and numbers all day, so in a long-lived job every bounded cache ends up full.
This runs the plain loop of the shipped config (bench/stage_chain.py, its own Redis) over
``bench/e2e_throughput.py``'s ``open_fragments`` and prints:

* every ``--every`` fragments: the Python heap (tracemalloc) and each bounded cache's fill;
* at the end, per bounded cache: entries, hit rate, bytes per entry (what clearing it frees, over
  its entries) and what it holds when full (bytes per entry x maxsize), and the sum: the most that
  a job's caches can hold whatever the stream;
* the unbounded caches (``functools.cache``) with their entries: they are keyed by configuration
  and file paths, so their size must not depend on the stream.

    python bench/cache_memory.py                    # 6,000 open-vocabulary fragments
    python bench/cache_memory.py --n 20000 --every 2000
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_throughput import make_fragments, open_fragments
from bench.stage_chain import StageChain
from connectors.redis import RedisServer
from core.settings import load_settings
from tests.harness import free_port

_PACKAGES = ("pipelines.", "core.")


def caches() -> dict[str, Any]:
    """module.function -> its functools cache wrapper, for every module of the pipeline's packages
    imported so far (the stage chain imports all that the pipeline runs)."""
    out = {}
    for mod_name, mod in sorted(sys.modules.items()):
        if not mod_name.startswith(_PACKAGES):
            continue
        for attr, value in vars(mod).items():
            if (isinstance(value, functools._lru_cache_wrapper)  # type: ignore[attr-defined]
                    and value.__module__ == mod_name):
                out[f"{mod_name.removeprefix('pipelines.')}.{attr}"] = value
    return out


def bounded(found: dict[str, Any]) -> dict[str, Any]:
    """The caches of ``found`` with a maxsize (``functools.lru_cache``): those a stream fills."""
    return {name: c for name, c in found.items() if c.cache_parameters()["maxsize"] is not None}


class Bound(NamedTuple):
    entries: int
    hit_rate: float
    per_entry: float  # bytes its entries hold (what clearing it frees) per entry
    maxsize: int
    full_mib: float  # per_entry x maxsize


def measure(filled: dict[str, Any]) -> dict[str, Bound]:
    """Each cache's bound, measured by clearing it (tracemalloc must be tracing since before the
    entries were made). Clears them in order: what two caches share is counted in the later one."""
    out = {}
    for name, c in filled.items():
        info = c.cache_info()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        c.cache_clear()
        gc.collect()
        per = (before - tracemalloc.get_traced_memory()[0]) / info.currsize if info.currsize else float("nan")
        rate = info.hits / (info.hits + info.misses) if info.hits + info.misses else float("nan")
        out[name] = Bound(info.currsize, rate, per, info.maxsize, per * info.maxsize / 2**20)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6000, help="fragments (default 6,000)")
    ap.add_argument("--every", type=int, default=1000, help="fragments between rows (default 1,000)")
    ap.add_argument("--stream", choices=["open", "corpus"], default="open",
                    help="open_fragments (default), or make_fragments: the other benches' recycled sentences")
    args = ap.parse_args()
    values = open_fragments(args.n, 7, "cm") if args.stream == "open" else make_fragments(args.n, 7, "cm")
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="newswire-cache-memory-")) / "redis", port=free_port()).start()
    try:
        settings = load_settings(environ={}, overrides={"redis.url": redis.url})
        chain = StageChain(settings, namespace="cache-memory:")
        found = caches()
        filled = bounded(found)
        print(f"machine: {os.cpu_count()} cores, CPython {platform.python_version()}; config: shipped "
              f"(config/newswire.yaml), plain loop; {args.n} fragments, stream {args.stream}")
        print(f"{'fragments':>9} {'heap MB':>8} {'CPU ms/frag':>11}  " + " ".join(k.rsplit('.', 1)[1][:12].rjust(12) for k in filled))
        gc.collect()
        tracemalloc.start()
        cpu0, done = time.process_time(), 0
        for i, v in enumerate(values):
            chain.process(v, i, timestamp_ms=1_700_000_000_000 + i * 1000)
            if (i + 1) % args.every == 0 or i + 1 == len(values):
                cpu = (time.process_time() - cpu0) * 1000 / (i + 1 - done)
                cpu0, done = time.process_time(), i + 1
                print(f"{i + 1:9d} {tracemalloc.get_traced_memory()[0] / 1e6:8.1f} {cpu:11.2f}  "
                      + " ".join(f"{c.cache_info().currsize:12d}" for c in filled.values()))
        chain.close()
        print("\n(CPU under tracemalloc, ~2-3x the plain loop's)\n")
        print(f"{'bounded cache':<44} {'entries':>8} {'hit rate':>8} {'B/entry':>8} {'maxsize':>8} {'full MiB':>9}")
        rows = measure(filled)
        for name, r in rows.items():
            print(f"{name:<44} {r.entries:8d} {r.hit_rate:8.1%} {r.per_entry:8.0f} {r.maxsize:8d} {r.full_mib:9.1f}")
        print(f"{'all bounded caches, full':<44} {'':>8} {'':>8} {'':>8} {'':>8} "
              f"{sum(r.full_mib for r in rows.values() if r.entries):9.1f}")
        print("\nunbounded caches (keyed by configuration and paths: their entries must not grow with the stream):")
        print("  " + ", ".join(f"{k} {c.cache_info().currsize}" for k, c in found.items() if k not in filled))
        tracemalloc.stop()
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
