"""Newswire (Beam on Prism) beside a Quix Streams peer and the plain loop, in one run, on one machine.

Starts one Apache Kafka broker and one Redis (free ports, temporary data dir), then, one after the
other so they never compete for the cores:

1. Newswire: the pipeline as `newswire pipeline` runs it (tests/harness.Stack, as bench/e2e_throughput.py);
2. Quix: bench/peers/quix_peer.py, the same stage chain (bench/stage_chain.py) as a Quix Streams app;
3. the plain loop: the same chain in a loop, no Kafka, no framework (bench/e2e_throughput.baseline).

Newswire and Quix each get their own topics, consumer group, Redis key namespace and SQLite store
(a Stack each) on the same broker and Redis, and the same fragments; each is measured by the same
code: startup (process start -> first enriched event), throughput (N fragments produced as fast as
possible -> fragments/s until the last enriched event, and the CPU time of its processes per
fragment), latency at a fixed rate (p50/p99 of enriched record time - raw record time, both this
machine's clock), and the memory of its processes. Then the ratios Newswire/Quix and each/plain loop.
Why this is a fair comparison, and what differs: bench/peers/README.md.

    python bench/peers/compare.py [--n 3000] [--rate 200] [--seconds 10] [--order newswire,quix]
        [--entities off|gazetteer|spacy] [--dedup near|exact] [--stories on|off] [--alerts on|off]
        [--workers N] [--commit-interval 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.e2e_throughput import baseline, collect, make_fragments, percentile, wait_until_serving
from bench.peers.quix_peer import start_peer
from bench.stage_chain import StageChain, StageClock
from connectors.kafka import KafkaBroker, make_producer
from connectors.redis import RedisServer
from core.settings import load_settings
from newswire.workers import default_workers
from tests.harness import Stack, free_port

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    name: str
    startup_s: float
    arrived: int
    n: int
    throughput: float  # fragments/s, first produce -> last enriched event
    burst_p50_ms: float
    burst_p99_ms: float
    cpu_ms: float  # CPU time of the engine's processes per fragment, throughput phase
    lat_arrived: int
    lat_n: int
    lat_p50_ms: float
    lat_p99_ms: float
    lat_max_ms: float
    rss_mb: float  # proportional memory (PSS) of the engine's processes after the run
    processes: int
    cpu_ms_by_process: dict[str, float]


def tree_pids(root: int) -> list[int]:
    """``root`` and its live descendants (the pipeline with its Prism runner, which runs in a
    session of its own, or the peer)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def tree_cpu_s(root: int) -> dict[str, float]:
    """User + system CPU seconds of a process tree's live processes (their threads included), by
    process name (python, prism, ...)."""
    out: dict[str, float] = {}
    for pid in tree_pids(root):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICK
    return out


def memory_mb(pid: int, kind: str = "Pss") -> float:
    """One process's memory in MB: ``Rss`` (resident, shared pages counted whole) or ``Pss``
    (proportional: each shared page split among the processes sharing it; jobs forked by one
    launcher share its models' pages, which their RSS would each count whole). 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(f"{kind}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_memory_by_name(root: int, kind: str = "Pss") -> dict[str, float]:
    """:func:`memory_mb` of a process tree's live processes, summed by process name (python, prism, ...)."""
    out: dict[str, float] = {}
    for pid in tree_pids(root):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + memory_mb(pid, kind)
    return out


def tree_cpu_of(pids: list[int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pid in pids:
        for k, v in tree_cpu_s(pid).items():
            out[k] = out.get(k, 0.0) + v
    return out


def measure(name: str, stack: Stack, start: Callable[[], list[int]], values: list[bytes],
            values_l: list[bytes], rate: float) -> Result:
    """Startup, throughput, latency at ``rate`` and memory of one engine (its processes started by ``start``)."""
    topic = stack.settings.kafka.topics.fragments.name
    t_start = time.monotonic()
    procs = start()
    wait_until_serving(stack, name)
    startup = time.monotonic() - t_start

    # Throughput: everything at once.
    producer = make_producer(stack.settings, linger_ms=20, batch_size=256 * 1024)
    cpu0 = tree_cpu_of(procs)
    t0 = time.time()
    for v in values:
        producer.send(topic, value=v)
    producer.flush()
    got = collect(stack, {orjson.loads(v)["id"] for v in values}, 900)
    cpu1 = tree_cpu_of(procs)
    per_process = {k: (v - cpu0.get(k, 0.0)) / max(1, len(values)) * 1000 for k, v in cpu1.items()}
    last_ms = max(e for _, e in got.values())
    burst = [float(e - r) for r, e in got.values()]

    # Latency at a fixed rate.
    interval = 1 / rate
    t1 = time.monotonic()
    for i, v in enumerate(values_l):
        producer.send(topic, value=v)
        if i % 10 == 9:
            producer.flush()
        pause = t1 + (i + 1) * interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    producer.flush()
    producer.close()
    got_l = collect(stack, {orjson.loads(v)["id"] for v in values_l}, 600)
    lat = [float(e - r) for r, e in got_l.values()] or [float("nan")]
    roots = stack.process_roots()  # the launcher (whose tree holds the jobs), a lone job, or the peer processes
    rss = sum(sum(tree_memory_by_name(pid).values()) for pid in roots)
    nproc = sum(len(tree_pids(pid)) for pid in roots)
    stack.stop_all()
    return Result(name, startup, len(got), len(values), len(got) / (last_ms / 1000 - t0),
                  percentile(burst, .5), percentile(burst, .99), sum(per_process.values()),
                  len(got_l), len(values_l), percentile(lat, .5), percentile(lat, .99), max(lat), rss, nproc, per_process)


def main() -> None:
    shipped = load_settings(environ={})
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="fragments for the throughput run")
    ap.add_argument("--rate", type=float, default=200, help="fragments/s for the latency run")
    ap.add_argument("--seconds", type=float, default=10, help="duration of the latency run")
    ap.add_argument("--baseline-n", type=int, default=2000, help="fragments for the plain loop")
    ap.add_argument("--partitions", type=int, default=shipped.kafka.topics.fragments.partitions)
    ap.add_argument("--dedup", choices=["near", "exact"], default=shipped.pipeline.dedup.mode)
    ap.add_argument("--entities", choices=["off", "gazetteer", "spacy"], default=shipped.pipeline.enrichment.entities)
    ap.add_argument("--stories", choices=["on", "off"], default="on" if shipped.pipeline.stories.enabled else "off")
    ap.add_argument("--alerts", choices=["on", "off"], default="on" if shipped.alerts.enabled else "off")
    ap.add_argument("--workers", type=int, default=default_workers(shipped.kafka.topics.fragments.partitions),
                    help="Newswire jobs splitting the partitions (as `newswire up --workers N`; default up's: two "
                         "per core, at most one per partition) and as many Quix app processes in one consumer group")
    ap.add_argument("--commit-interval", type=float, default=5.0, help="the Quix app's checkpoint interval (its default)")
    ap.add_argument("--order", default="newswire,quix", help="which engine runs first")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    order = [o.strip() for o in args.order.split(",")]
    if sorted(order) != ["newswire", "quix"]:
        ap.error("--order: newswire,quix or quix,newswire")
    overrides = {"kafka.topics.fragments.partitions": args.partitions, "pipeline.enrichment.entities": args.entities,
                 "pipeline.dedup.mode": args.dedup, "pipeline.stories.enabled": args.stories == "on",
                 "alerts.enabled": args.alerts == "on"}
    shipped_cfg = (args.entities, args.dedup, args.stories, args.alerts) == (
        shipped.pipeline.enrichment.entities, shipped.pipeline.dedup.mode,
        "on" if shipped.pipeline.stories.enabled else "off", "on" if shipped.alerts.enabled else "off")
    cfg = (f"[{'shipped config: ' if shipped_cfg else 'config: '}entities {args.entities}, dedup {args.dedup}, "
           f"stories {args.stories}, alerts {args.alerts}; {args.partitions} partitions; {args.workers} "
           f"{'job' if args.workers == 1 else 'jobs'} / Quix processes]")

    tmp = Path(tempfile.mkdtemp(prefix="newswire-peers-"))
    redis = RedisServer(tmp / "redis", port=free_port()).start()
    base = {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}", "kafka.embedded.controller_port": free_port(),
            "data_dir": str(tmp), "redis.url": redis.url}
    values = make_fragments(args.n, 1, "tp")
    values_l = make_fragments(int(args.rate * args.seconds), 2, "lat")
    results: dict[str, Result] = {}
    loads: dict[str, tuple[float, ...]] = {}
    try:
        with KafkaBroker(load_settings(overrides=base, environ={})):
            for name in order:
                (tmp / name).mkdir()
                stack = Stack(base, tmp / name, **overrides)
                loads[name] = os.getloadavg()
                start = ((lambda s=stack: s.start_jobs(args.workers)) if name == "newswire" else
                         (lambda s=stack: [start_peer(s, args.commit_interval).pid for _ in range(args.workers)]))
                try:
                    results[name] = measure(name, stack, start, values, values_l, args.rate)
                finally:
                    stack.stop_all()
                print(f"... {name} done", file=sys.stderr)
        loads["plain"] = os.getloadavg()
        clock = StageClock()
        n_base = min(args.baseline_n, args.n)
        StageChain(stack.settings, namespace="warm-up:").close()  # the models load once per process: not in the CPU time
        cpu0 = time.process_time()
        base_rate = baseline(values[:n_base], stack.settings, clock)
        base_cpu_ms = (time.process_time() - cpu0) / n_base * 1000
    finally:
        redis.stop()

    nw, qx = results["newswire"], results["quix"]
    size = statistics.mean(map(len, values))
    print(f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}; "
          f"{len(values)} fragments of {size:.0f} B; order {', '.join(order)}, then the plain loop; "
          f"load average before each: " + ", ".join(f"{k} {v[0]:.1f}" for k, v in loads.items()) + f" {cfg}")
    for r, engine in ((nw, "Beam on Prism (newswire pipeline)"),
                      (qx, f"Quix Streams app, at-least-once, commit every {args.commit_interval:g} s")):
        print(f"{r.name:<8} {engine}: startup {r.startup_s:.1f} s; end to end {r.throughput:.0f} fragments/s "
              f"({r.arrived}/{r.n}), CPU {r.cpu_ms:.1f} ms per fragment, burst latency p50 {r.burst_p50_ms:.0f} ms "
              f"p99 {r.burst_p99_ms:.0f} ms; at {args.rate:.0f}/s for {args.seconds:.0f} s ({r.lat_arrived}/{r.lat_n}): "
              f"p50 {r.lat_p50_ms:.0f} ms, p99 {r.lat_p99_ms:.0f} ms, max {r.lat_max_ms:.0f} ms; "
              f"memory {r.rss_mb:.0f} MB in {r.processes} processes; CPU ms per fragment by process: "
              + ", ".join(f"{k} {v:.1f}" for k, v in sorted(r.cpu_ms_by_process.items(), key=lambda kv: -kv[1]))
              + f" {cfg}")
    print(f"plain    same stage chain in a loop, 1 core, no Kafka: {base_rate:.0f} fragments/s "
          f"({1000 / base_rate:.2f} ms each, CPU {base_cpu_ms:.1f} ms), {n_base} fragments {cfg}")
    print(f"ratio Newswire/Quix: throughput {nw.throughput / qx.throughput:.2f}x, CPU per fragment "
          f"{nw.cpu_ms / qx.cpu_ms:.2f}x, latency at {args.rate:.0f}/s p50 {nw.lat_p50_ms / qx.lat_p50_ms:.2f}x "
          f"p99 {nw.lat_p99_ms / qx.lat_p99_ms:.2f}x, startup {nw.startup_s / qx.startup_s:.2f}x {cfg}")
    for r in (nw, qx):
        print(f"ratio {r.name}/plain loop: throughput {r.throughput / base_rate:.2f}x (overhead "
              f"{base_rate / r.throughput:.2f}x), CPU per fragment {r.cpu_ms / base_cpu_ms:.2f}x {cfg}")
    print(f"plain loop per stage {cfg}:")
    print(clock.table(n_base))
    if args.json:
        args.json.write_text(json.dumps({
            "config": cfg, "cores": os.cpu_count(), "fragments": len(values), "fragment_bytes": size,
            "order": order, "load_average": loads, "results": {k: asdict(v) for k, v in results.items()},
            "plain_loop": {"fragments_per_s": base_rate, "cpu_ms": base_cpu_ms, "n": n_base,
                           "per_stage_ms": {k: v / n_base * 1000 for k, v in clock.total.items()}}}, indent=2))


if __name__ == "__main__":
    main()
