"""A long-lived job's caches are bounded: what the stage functions cache per word, name and quotation
stops growing at a size that fits beside the models, whatever vocabulary the stream brings.

On a stream with new names and numbers in every fragment (bench/e2e_throughput.py ``open_fragments``)
every bounded cache fills, so each one's bytes per entry are measured here (what clearing it frees)
and multiplied by its maxsize; the sum is the most all of them can hold in one job. The unbounded
ones (``functools.cache``) are keyed by configuration and files, so a stream must not add to them.
bench/cache_memory.py prints the same measurement over a longer stream (bench/RESULTS.md).
"""

from __future__ import annotations

import gc
import tracemalloc

from bench.cache_memory import bounded, caches, measure
from bench.e2e_throughput import open_fragments
from bench.stage_chain import StageChain
from connectors.redis import RedisServer
from core.settings import load_settings

ALL_CACHES_FULL_MIB = 64  # per job; four jobs on two cores: ~256 MiB at most over the shared models


def test_every_cache_a_stream_fills_is_bounded_and_together_they_hold_at_most_64_mib(
        redis_server: RedisServer, redis_namespace: str) -> None:
    settings = load_settings(environ={}, overrides={"redis.url": redis_server.url})
    chain = StageChain(settings, namespace=redis_namespace)
    values = open_fragments(260, 3, "bounds")
    for i, value in enumerate(values[:10]):  # what loads on first use (models, tables, schemas) loads here
        chain.process(value, i, timestamp_ms=1_700_000_000_000 + i * 1000)
    found = caches()
    filled = bounded(found)
    unbounded_before = {name: c.cache_info().currsize for name, c in found.items() if name not in filled}
    for c in filled.values():
        c.cache_clear()
    gc.collect()
    tracemalloc.start()
    try:
        for i, value in enumerate(values[10:], start=10):
            assert chain.process(value, i, timestamp_ms=1_700_000_000_000 + i * 1000)[0].kind == "event"
        rows = measure(filled)
    finally:
        tracemalloc.stop()
        chain.close()
    # the stream reached every bounded cache, so every one of them was measured
    assert {name for name, r in rows.items() if r.entries == 0} == set(), rows
    full = sum(r.full_mib for r in rows.values())
    assert full <= ALL_CACHES_FULL_MIB, {name: round(r.full_mib, 1) for name, r in rows.items()}
    # the caches keyed by configuration and files did not grow with 250 fragments of new words
    assert {name: c.cache_info().currsize for name, c in found.items() if name not in filled} == unbounded_before
