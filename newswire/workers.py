"""Scale-out on one machine: N pipeline jobs, each a `newswire pipeline` process reading its share of
the raw topic's partitions (``pipeline.partitions``), all sharing the broker, Redis and the store.

Why processes: with Prism's loopback environment a job's stage work runs in the process that
submitted it, under one interpreter lock, so one job keeps one core busy however many partitions it
reads. N jobs on disjoint partitions use N cores, with nothing of our own to coordinate: offsets are
committed per partition by the job that reads it, and dedup, story and alert state live in Redis
(docs/deploy.md#scaling). On Flink the same split is one job with ``--parallelism N``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self


def default_workers(partitions: int, cores: int | None = None) -> int:
    """One job per core, never more than partitions. Each job's stage work holds one interpreter
    lock, so one job keeps one core busy; the broker, Redis and Prism fit in what is left. On the
    2-core machine, alternated runs (bench/RESULTS.md, "One job per core"): two jobs 85-101
    fragments/s (median 85), one job 52-76 (median 68); p99 latency at 50/s 1.0-3.9 s vs 1.0-12 s."""
    return max(1, min(cores or os.cpu_count() or 1, partitions))


def split_partitions(partitions: int, workers: int) -> list[tuple[int, ...]]:
    """Partitions 0..partitions-1 dealt round-robin to ``workers`` jobs (worker i: i, i+N, ...)."""
    if not 1 <= workers <= partitions:
        raise ValueError(f"workers: {workers} jobs for {partitions} raw-topic partitions; use 1..{partitions} "
                         "(each job reads whole partitions: add partitions to kafka.topics.fragments first)")
    return [tuple(range(i, partitions, workers)) for i in range(workers)]


#: Worker i serves /readyz and /metrics on ``pipeline.health_port + PORT_STRIDE * i`` (8081, 8091, ...),
#: clear of the ports next to it (HTTP ingest 8080, the notifier's metrics 8082).
PORT_STRIDE = 10


def worker_port(health_port: int | None, index: int) -> int | None:
    """Worker ``index``'s health/metrics port (None: no endpoint; 0: a free port each)."""
    return health_port + PORT_STRIDE * index if health_port else health_port


def worker_env(index: int, share: Sequence[int], health_port: int | None) -> dict[str, str]:
    """The environment overrides of worker ``index`` (core/settings.py reads NEWSWIRE__SECTION__KEY)."""
    env = {"NEWSWIRE__PIPELINE__PARTITIONS": json.dumps(list(share))}
    port = worker_port(health_port, index)
    if port is not None:
        env["NEWSWIRE__PIPELINE__HEALTH_PORT"] = str(port)
    return env


class PipelineWorkers:
    """``start()`` N `newswire pipeline` processes (own process group, log file each), ``failed``
    names the ones that exited by themselves (each gives up only after its own supervisor's
    restarts), ``stop()`` sends SIGTERM and waits (SIGKILL after ``timeout_s``)."""

    def __init__(self, config_path: Path | None, partitions: int, workers: int, log_dir: Path,
                 health_port: int | None = None, extra_env: Mapping[str, str] | None = None) -> None:
        self.config_path = config_path
        self.shares = split_partitions(partitions, workers)
        self.log_dir = log_dir
        self.health_port = health_port
        self.extra_env = dict(extra_env or {})
        self.procs: list[subprocess.Popen[bytes]] = []

    def command(self) -> list[str]:
        config = ["--config", str(self.config_path)] if self.config_path else []
        return [sys.executable, "-m", "newswire.cli", *config, "pipeline"]

    def log_path(self, index: int) -> Path:
        return self.log_dir / f"pipeline-worker-{index}.log"

    def start(self) -> Self:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for i, share in enumerate(self.shares):
            env = {**os.environ, **self.extra_env, **worker_env(i, share, self.health_port), "PYTHONUNBUFFERED": "1"}
            with open(self.log_path(i), "ab") as log:
                self.procs.append(subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                                   start_new_session=True))
        return self

    def describe(self) -> str:
        ports = (f", health/metrics on ports {', '.join(str(worker_port(self.health_port, i)) for i in range(len(self.shares)))}"
                 if self.health_port else "")
        shares = "; ".join(f"worker {i}: {list(s)}" for i, s in enumerate(self.shares))
        return f"{len(self.shares)} pipeline jobs by raw-topic partition ({shares}){ports}; logs in {self.log_dir}"

    @property
    def failed(self) -> list[str]:
        """Workers that exited on their own, with their exit codes and the last line of their log."""
        out = []
        for i, proc in enumerate(self.procs):
            code = proc.poll()
            if code is not None:
                tail = self.log_path(i).read_text(errors="replace").strip().splitlines()[-1:] or [""]
                out.append(f"worker {i} exited {code}: {tail[0][:300]}")
        return out

    def stop(self, timeout_s: float = 60) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the job's Prism child too
                except ProcessLookupError:
                    pass
                proc.wait(5)
