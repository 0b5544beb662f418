"""Start-up of the shipped pipeline: process start -> first enriched event, and where the time goes.

Starts its own Kafka broker and Redis, leaves one fragment waiting on each partition of the raw
topic, then starts the pipeline as `newswire up` runs it with the shipped configuration: ``--workers``
jobs (default: up's, two per core, at most one per partition), forked by one launcher
(newswire/workers.py) that loads the models first; or, with ``--workers 1``, `newswire -v pipeline`
alone. It times, per run:

- wall seconds from the process start until every waiting fragment is on the enriched topic (the
  issue-12 figure: every job is serving; bench/e2e_throughput.py prints the same one as "pipeline
  startup");
- the CPU seconds of the pipeline's Python processes until then (user + system, the launcher's and
  each job's own; less sensitive to a loaded machine);
- the phases, from the logs, each at the moment the last job reached it: the stage models loaded
  (pipelines/warmup.py; by the launcher when there is one), the job RUNNING on Prism, the first
  partition read, and the first enriched record's Kafka timestamp.

    python bench/startup.py              # 3 runs with the model cache as it is (warm after a first start)
    python bench/startup.py --workers 1  # one job, no launcher
    python bench/startup.py --repeat 5 --cold   # the first run rebuilds the model cache (cold start)

Figures and configs: bench/RESULTS.md ("Start-up").
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_throughput import collect
from connectors.kafka import KafkaBroker, make_producer
from connectors.redis import RedisServer
from core.settings import load_settings
from newswire.workers import PipelineWorkers, default_workers
from tests.harness import Stack, free_port

_PHASES = {
    "models loaded": re.compile(r"pipelines\.warmup: stage models loaded"),
    "job RUNNING": re.compile(r"Job state changed to RUNNING"),
    "first partition read": re.compile(r"pipelines\.io: reading "),
}
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _phases(log: str, t0: float) -> dict[str, float]:
    """Seconds after t0 at which each phase's first log line was written."""
    out: dict[str, float] = {}
    for line in log.splitlines():
        stamp = _STAMP.match(line)
        if not stamp:
            continue
        for name, pattern in _PHASES.items():
            if name not in out and pattern.search(line):
                out[name] = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - t0
    return out


def _last_of(logs: list[str], t0: float) -> dict[str, float]:
    """Each phase at the moment the last of ``logs`` reached it (a phase some log lacks is left out)."""
    phases = [_phases(log, t0) for log in logs]
    return {name: max(p[name] for p in phases) for name in _PHASES if all(name in p for p in phases)}


def one_run(stack: Stack, partitions: int, workers: int, run: int) -> dict[str, float]:
    """One pipeline start against the running broker (``workers`` jobs, as `newswire up` starts them);
    the pipeline is stopped afterwards."""
    want = {f"startup-{run}-{p}" for p in range(partitions)}
    producer = make_producer(stack.settings)
    for p in range(partitions):
        producer.send(stack.settings.kafka.topics.fragments.name, partition=p,
                      value=orjson.dumps({"source": "bench", "id": f"startup-{run}-{p}",
                                          "text": f"Start-up fragment {p} of run {run}, in English."}))
    producer.flush()
    producer.close()
    log_dir = stack.tmp / f"startup-{run}"
    log_dir.mkdir()
    t0 = time.time()
    if workers == 1:
        with open(log_dir / "pipeline.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "newswire.cli", "-v", "--config", str(stack.config_path),
                                     "pipeline"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        stack._procs.append(proc)
        pids = [proc.pid]
    else:
        pool = PipelineWorkers(stack.config_path, partitions, workers, log_dir, verbose=True).start()
        assert pool.proc is not None
        stack._procs.append(pool.proc)
        proc = pool.proc
        pids = [pool.proc.pid, *pool.job_pids()]
    try:
        got = collect(stack, want, 180)
        wall = time.time() - t0
        cpu = sum(_cpu_seconds(pid) for pid in pids)
    finally:
        stack.kill(proc, 15)
    logs = {path.name: path.read_text(errors="replace") for path in sorted(log_dir.glob("*.log"))}
    if len(got) < len(want):
        sys.exit(f"run {run}: the pipeline did not come up:\n" + "\n".join(t[-3000:] for t in logs.values()))
    jobs = [text for name, text in logs.items() if name != "pipeline-launcher.log"]
    result = {"wall": wall, "cpu": cpu, **_last_of(jobs, t0)}
    if "pipeline-launcher.log" in logs:  # the models load in the launcher, before the fork
        result.update({k: v for k, v in _phases(logs["pipeline-launcher.log"], t0).items() if k == "models loaded"})
    result["first enriched written"] = min(ts for _, ts in got.values()) / 1000 - t0
    return result


def main() -> None:
    shipped = load_settings(environ={})
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="pipeline starts, one after another (default 3)")
    ap.add_argument("--partitions", type=int, default=shipped.kafka.topics.fragments.partitions,
                    help="raw topic partitions (default: the shipped config's)")
    ap.add_argument("--workers", type=int, default=None,
                    help="pipeline jobs, as `newswire up --workers N` (default: up's, two per core, at most one "
                         "per partition); 1: `newswire pipeline` alone")
    ap.add_argument("--cold", action="store_true",
                    help="use an empty model cache, so the first run builds it (a new version's first start)")
    args = ap.parse_args()
    workers = default_workers(args.partitions) if args.workers is None else args.workers

    tmp = Path(tempfile.mkdtemp(prefix="newswire-startup-"))
    if args.cold:
        os.environ["NEWSWIRE_MODEL_CACHE"] = str(tmp / "model-cache")
    redis = RedisServer(tmp / "redis", port=free_port()).start()
    base = {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}", "kafka.embedded.controller_port": free_port(),
            "data_dir": str(tmp), "redis.url": redis.url}
    print(f"machine: {os.cpu_count()} cores, CPython {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.1f}; shipped config, runner Prism, {args.partitions} partitions, {workers} job"
          f"{'s (forked by one launcher)' if workers > 1 else ''}, model cache "
          f"{'cold (empty) on the first run' if args.cold else 'as found (warm after any earlier start)'}")
    runs = []
    try:
        with KafkaBroker(load_settings(overrides=base, environ={})):
            stack = Stack(base, tmp, **{"kafka.topics.fragments.partitions": args.partitions})
            for run in range(args.repeat):
                r = one_run(stack, args.partitions, workers, run)
                runs.append(r)
                phases = ", ".join(f"{name} {r[name]:.1f}" for name in (*_PHASES, "first enriched written")
                                   if name in r)
                print(f"run {run + 1}: start-up {r['wall']:.2f} s, pipeline processes' CPU {r['cpu']:.2f} s "
                      f"(load {os.getloadavg()[0]:.1f}); phases, s after start: {phases}", flush=True)
            stack.stop_all()
    finally:
        redis.stop()
    if len(runs) > 1:
        print(f"median of {len(runs)}: start-up {statistics.median(r['wall'] for r in runs):.2f} s, "
              f"CPU {statistics.median(r['cpu'] for r in runs):.2f} s (target: start-up <= 5 s)")


if __name__ == "__main__":
    main()
