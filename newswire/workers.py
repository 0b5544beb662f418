"""Scale-out on one machine: N pipeline jobs, each reading its share of the raw topic's partitions
(``pipeline.partitions``), all sharing the broker, Redis and the store.

Why processes: with Prism's loopback environment a job's stage work runs in the process that
submitted it, under one interpreter lock, so one job keeps one core busy however many partitions it
reads. N jobs on disjoint partitions use N cores, with nothing of our own to coordinate: offsets are
committed per partition by the job that reads it, and dedup, story and alert state live in Redis
(docs/deploy.md#scaling). On Flink the same split is one job with ``--parallelism N``.

Why one launcher that forks them (``python -m newswire.workers``): every job needs the same ~280 MB
of enrichment models and the same imports (Beam, the connectors), ~2 s of CPU per process. The
launcher loads them once, freezes them out of the garbage collector's reach (``gc.freeze``, so no
collection writes to their pages) and forks the jobs, which share those pages copy-on-write: the
preforking servers' pattern (gunicorn's ``--preload``). It forks while it has a single thread and no
gRPC channel or server exists (gRPC is imported, not started: its own guidance for fork), with
pyarrow's jemalloc background thread and OpenBLAS's pool turned off by the environment
(:data:`LAUNCHER_ENV`). Each job then runs exactly what ``newswire pipeline`` runs, in a session of
its own, with its log file; a job that dies when the launcher dies (``PR_SET_PDEATHSIG``) leaves no
orphan. Measured: bench/RESULTS.md ("One launcher forks the jobs").
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self


def default_workers(partitions: int, cores: int | None = None) -> int:
    """Two jobs per core, never more than partitions. A job's stage work holds one interpreter lock,
    and a job also waits on its own Redis round trips (~4.5 per fragment): a second job per core
    fills those waits. On the 2-core machine, alternated runs (bench/RESULTS.md, "One launcher forks
    the jobs"): four jobs beat two in all four pairs (97-109 vs 79-92 fragments/s), with lower
    median latency at 50/s; two beat one (85-101 vs 52-76, "One job per core"). Forked by one
    launcher, a job costs ~200-300 MB (PSS) beyond the first."""
    return max(1, min(2 * (cores or os.cpu_count() or 1), partitions))


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


#: The launcher's environment (inherited by the jobs it forks): no helper threads started at import,
#: so the process is single-threaded when it forks. pyarrow (imported by Beam) starts a jemalloc
#: background thread unless told not to; numpy's OpenBLAS starts a thread pool (nothing here uses
#: BLAS).
LAUNCHER_ENV = {"JE_ARROW_MALLOC_CONF": "background_thread:false", "OPENBLAS_NUM_THREADS": "1"}

#: The launcher writes the jobs' process ids here (in the log directory) once it has forked them.
PIDS_FILE = "pipeline-workers.json"


class PipelineWorkers:
    """``start()`` the launcher (``python -m newswire.workers``), which loads the models once and forks
    N `newswire pipeline` jobs (own session, log file each); ``failed`` says whether it ended by
    itself (a job gave up after its own supervisor's restarts: the launcher stops the others and
    exits 1, naming it); ``stop()`` sends SIGTERM to the launcher, which stops the jobs (SIGKILL to
    all after ``timeout_s``); ``job_pids()`` are the jobs' process ids."""

    def __init__(self, config_path: Path | None, partitions: int, workers: int, log_dir: Path,
                 health_port: int | None = None, extra_env: Mapping[str, str] | None = None,
                 verbose: bool = False, log_format: str = "text") -> None:
        self.config_path = config_path
        self.verbose = verbose  # the jobs' logging, as `newswire [-v] [--log-format json] pipeline`
        self.log_format = log_format
        self.partitions = partitions
        self.shares = split_partitions(partitions, workers)
        self.log_dir = log_dir
        self.health_port = health_port
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        config = ["--config", str(self.config_path)] if self.config_path else []
        port = ["--health-port", str(self.health_port)] if self.health_port is not None else []
        return [sys.executable, "-m", "newswire.workers", *config, "--partitions", str(self.partitions),
                "--workers", str(len(self.shares)), "--log-dir", str(self.log_dir), *port,
                "--log-format", self.log_format, *(["--verbose"] if self.verbose else [])]

    def log_path(self, index: int) -> Path:
        return self.log_dir / f"pipeline-worker-{index}.log"

    @property
    def launcher_log(self) -> Path:
        return self.log_dir / "pipeline-launcher.log"

    def start(self) -> Self:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / PIDS_FILE).unlink(missing_ok=True)
        env = {**os.environ, **self.extra_env, **LAUNCHER_ENV, "PYTHONUNBUFFERED": "1"}
        with open(self.launcher_log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        return self

    def job_pids(self, timeout_s: float = 120) -> list[int]:
        """The jobs' process ids, once the launcher has forked them (it loads the models first)."""
        deadline = time.monotonic() + timeout_s
        while (pids := self._written_pids()) is None:
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the pipeline launcher started no jobs: {'; '.join(self.failed) or 'timed out'}")
            time.sleep(0.05)
        return pids

    def _written_pids(self) -> list[int] | None:
        """The job pids the launcher wrote (:data:`PIDS_FILE`, replaced whole), or None before it has."""
        try:
            return [int(pid) for pid in json.loads((self.log_dir / PIDS_FILE).read_text())["pids"]]
        except FileNotFoundError:
            return None

    def describe(self) -> str:
        ports = (f", health/metrics on ports {', '.join(str(worker_port(self.health_port, i)) for i in range(len(self.shares)))}"
                 if self.health_port else "")
        shares = "; ".join(f"worker {i}: {list(s)}" for i, s in enumerate(self.shares))
        return f"{len(self.shares)} pipeline jobs by raw-topic partition ({shares}){ports}; logs in {self.log_dir}"

    @property
    def failed(self) -> list[str]:
        """Why the launcher ended by itself (its exit code and last log line: which job gave up), or []."""
        code = self.proc.poll() if self.proc is not None else None
        if code is None:
            return []
        tail = self.launcher_log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        return [f"launcher exited {code}: {tail[0][:400]}"]

    def stop(self, timeout_s: float = 60) -> None:
        if self.proc is None:
            return
        pids = self._written_pids() or []
        _signal_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s + 5)  # the launcher waits up to timeout_s for its jobs
        except subprocess.TimeoutExpired:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        for pid in pids:  # none is left unless the launcher could not stop them (or was killed itself)
            _signal_group(pid, signal.SIGKILL)  # the job and its Prism child


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- the launcher process

_PR_SET_PDEATHSIG = 1


def _run_job(index: int, share: Sequence[int], health_port: int | None, config: list[str], log_path: Path,
             launcher: int) -> None:
    """In a forked child: become `newswire pipeline` for worker ``index``; never returns."""
    code = 1
    try:
        os.setsid()  # its own process group: stopped (with its Prism) by one killpg
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != launcher:  # the launcher died before prctl took effect
            os._exit(1)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)  # the job's own CLI sets its handlers
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.environ.update(worker_env(index, share, health_port))
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)  # the job configures its own logging
        from newswire.cli import main as cli_main

        code = cli_main([*config, "pipeline"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 (whatever it is, the child ends here, with os._exit)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _preload(config: Path | None) -> None:
    """Everything the jobs would each load: the config's stage models, the CLI and Beam (imported,
    not started)."""
    from core.settings import load_settings
    from pipelines.warmup import warm_up

    settings = load_settings(config)
    if settings.pipeline.runner == "prism":  # on Flink the stage work runs in the Flink workers
        warm_up(settings)
    # The jobs run the CLI's `pipeline` command (Beam and the runner code, without a gRPC channel or
    # server); the apache_beam modules are what each job imports next to submit to Prism and serve
    # its SDK worker (~40 modules).
    import apache_beam.runners.portability.portable_runner
    import apache_beam.runners.worker.sdk_worker_main
    import apache_beam.runners.worker.worker_pool_main  # noqa: F401

    import newswire.cli  # noqa: F401
    import pipelines.supervisor  # noqa: F401


def _wait_for_own_groups(pids: list[int], timeout_s: float = 10) -> None:
    """Until each forked job has its own process group (``os.setsid`` in :func:`_run_job`), or is gone."""
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if os.getpgid(pid) == pid:
                    break
            except ProcessLookupError:
                break
            time.sleep(0.01)


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def launch(config: Path | None, partitions: int, workers: int, log_dir: Path, health_port: int | None,
           stop_timeout_s: float = 60, verbose: bool = False, log_format: str = "text") -> int:
    """Preload, fork the jobs, then wait: 0 after SIGTERM/SIGINT (jobs stopped), 1 when a job ended by
    itself (the others stopped), 2 on a bad config."""
    from core.settings import ConfigError

    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _: stopping.append(signum))
    shares = split_partitions(partitions, workers)
    started = time.perf_counter()
    try:
        _preload(config)
    except ConfigError as exc:
        print(f"newswire workers: configuration error: {exc}", flush=True)
        return 2
    gc.freeze()  # what is loaded now stays shared: no collection touches it in the jobs
    threads = [(Path("/proc/self/task") / t / "comm").read_text().strip() for t in os.listdir("/proc/self/task")]
    if len(threads) > 1:  # a fork keeps only this thread: whatever the others held stays held in the jobs
        print(f"WARNING: forking with {len(threads)} threads running ({', '.join(threads)}); an import started "
              "a thread (see LAUNCHER_ENV)", flush=True)
    print(f"preloaded the stage models and the pipeline code in {time.perf_counter() - started:.1f} s; "
          f"forking {workers} jobs", flush=True)
    argv_config = [*(["-v"] if verbose else []), "--log-format", log_format,
                   *(["--config", str(config)] if config else [])]
    pids: dict[int, int] = {}
    launcher = os.getpid()
    for i, share in enumerate(shares):
        if stopping:
            break
        pid = os.fork()
        if pid == 0:
            _run_job(i, share, health_port, argv_config, log_dir / f"pipeline-worker-{i}.log", launcher)
        pids[pid] = i
    _wait_for_own_groups(list(pids))  # so a killpg by the pids written next reaches each job
    tmp = log_dir / (PIDS_FILE + ".tmp")
    tmp.write_text(json.dumps({"launcher": launcher, "pids": list(pids)}))
    tmp.replace(log_dir / PIDS_FILE)
    ended = ""
    while pids and not stopping:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.2)  # a signal handler runs between sleeps; a job's exit is seen within 0.2 s
            continue
        i = pids.pop(pid)
        ended = (f"worker {i} exited {os.waitstatus_to_exitcode(status)}: "
                 f"{_last_line(log_dir / f'pipeline-worker-{i}.log')}")
        break
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + stop_timeout_s
    while pids and time.monotonic() < deadline:
        pid, _ = os.waitpid(-1, os.WNOHANG)
        if pid:
            pids.pop(pid, None)
        else:
            time.sleep(0.1)
    for pid in pids:
        _signal_group(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if ended:  # the log's last line: what PipelineWorkers.failed reports
        print(f"{ended} (the other jobs were stopped)", flush=True)
    return 1 if ended else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load the stage models once and fork N pipeline jobs "
                                                 "(what `newswire up --workers N` starts).")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument("--health-port", type=int, default=None)
    parser.add_argument("--verbose", action="store_true", help="the jobs log at INFO (`newswire -v`)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text", help="the jobs' log lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.log_dir.mkdir(parents=True, exist_ok=True)
    return launch(args.config, args.partitions, args.workers, args.log_dir, args.health_port,
                  verbose=args.verbose, log_format=args.log_format)


if __name__ == "__main__":
    sys.exit(main())
