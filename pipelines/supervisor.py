"""Keeping the streaming job alive: resubmit a failed job, report health, give up loudly.

A long-lived deployment needs three things the bare job handle does not give:

* **A failed job is resubmitted.** Prism fails a job on the first bundle error. Steps wait out
  outages themselves (core/outage.py), so a failure here means an outage longer than
  ``pipeline.outage_max_wait_s`` or a bug. The job restarts from the committed offsets (nothing
  is lost; sinks upsert, so nothing is stored twice), with a growing pause, up to
  ``pipeline.job_restarts`` times within ``pipeline.job_restart_window_s``.
* **A true give-up ends the process non-zero**, so systemd or compose restart policies act: never
  a live process with a dead job.
* **Health that reflects reality**: ``GET /healthz`` (the process and its job are alive) and
  ``GET /readyz`` (the job runs and the broker, Redis and the store answer; 503 with the reasons
  otherwise), on ``pipeline.health_host:health_port`` (loopback by default); ``GET /metrics`` for
  Prometheus on the same port (pipelines/metrics.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from connectors.kafka import broker_check
from connectors.metrics import MetricsServer
from connectors.process import port_open
from core.outage import OUTAGES
from core.settings import Settings
from pipelines.io import finish_commits, reset_process_state
from pipelines.metrics import PipelineCollector
from pipelines.run import run

log = logging.getLogger(__name__)


class JobHandle(Protocol):
    """What the supervisor needs of a submitted job (pipelines.run.RunningPipeline)."""

    def wait_until_finish(self) -> Any: ...
    def cancel(self) -> None: ...


class PipelineSupervisor:
    """Submits the job with ``submit()``, watches it from a thread and resubmits it when it fails.

    ``wait(stop)`` blocks until ``stop`` is set (returns 0) or the supervisor gave up (returns 1).
    """

    def __init__(self, settings: Settings, submit: Callable[[], JobHandle],
                 sleep: Callable[[float], bool] | None = None) -> None:
        self.settings = settings
        self._submit = submit
        self._stopping = threading.Event()
        self._gave_up = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self._lock = threading.Lock()
        self._job: JobHandle | None = None
        self.state = "starting"
        self.restarts = 0
        self.failures: list[float] = []
        self.last_error: str | None = None
        self._watcher: threading.Thread | None = None
        self._health: MetricsServer | None = None
        self.collector = PipelineCollector(self)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> PipelineSupervisor:
        """Submit the job and start watching it (and the health endpoint, when configured)."""
        self._job = self._submit()
        self.state = "running"
        self._watcher = threading.Thread(target=self._watch, name="pipeline-supervisor", daemon=True)
        self._watcher.start()
        p = self.settings.pipeline
        if p.health_port is not None:
            self._health = MetricsServer(self.registry, p.health_host, p.health_port, "pipeline",
                                         alive=self.liveness, ready=self.readiness)
        return self

    def wait(self, stop: threading.Event) -> int:
        """Block until ``stop`` is set (0) or the supervisor gave up on the job (1)."""
        while not stop.wait(0.5):
            if self._gave_up.is_set():
                return 1
        return 1 if self._gave_up.is_set() else 0

    def stop(self) -> None:
        """Cancel the job (and stop Prism); no resubmission after this."""
        self._stopping.set()
        self.state = "stopped"
        with self._lock:
            job, self._job = self._job, None
        if job is not None:
            job.cancel()
        finish_commits()  # what the job's last bundles flushed to every sink gets committed
        if self._health is not None:
            self._health.stop()
        self.collector.close()

    @property
    def job(self) -> JobHandle | None:
        return self._job

    @property
    def gave_up(self) -> bool:
        return self._gave_up.is_set()

    # ------------------------------------------------------------------ watching
    def _watch(self) -> None:
        p = self.settings.pipeline
        while not self._stopping.is_set():
            job = self._job
            if job is None:
                return
            try:
                outcome = job.wait_until_finish()
                error = f"the job ended ({outcome})"
            except BaseException as exc:  # noqa: BLE001 - any end of a streaming job is a failure
                error = f"{type(exc).__name__}: {exc}"
            if self._stopping.is_set():
                return
            self.last_error = error[-2000:]
            now = time.monotonic()
            self.failures = [t for t in self.failures if now - t < p.job_restart_window_s] + [now]
            log.error("pipeline job failed: %s", self.last_error)
            try:
                job.cancel()  # stops this job's Prism
            except Exception as exc:  # noqa: BLE001 - it is gone either way
                log.debug("cancel after failure: %s", exc)
            if len(self.failures) > p.job_restarts:
                log.critical("pipeline job failed %d times within %.0fs (pipeline.job_restarts=%d); giving up",
                             len(self.failures), p.job_restart_window_s, p.job_restarts)
                self.state = "failed"
                self._gave_up.set()
                return
            self.state = "restarting"
            pause = min(60.0, 2.0 ** len(self.failures))
            log.warning("resubmitting the pipeline job from the committed offsets in %.0fs (restart %d of %d "
                        "allowed within %.0fs)", pause, len(self.failures), p.job_restarts, p.job_restart_window_s)
            if self._sleep(pause):
                return  # stopped while waiting
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._job = self._submit()
                except Exception as exc:  # noqa: BLE001 - counted like a job failure on the next turn
                    self._job = _FailedJob(exc)
            self.restarts += 1
            self.state = "running"

    # ------------------------------------------------------------------ health
    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """(alive, details): alive while the job runs or is being resubmitted, not after giving up."""
        alive = not self.gave_up
        return alive, {"alive": alive, "job": self.state}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details): the job runs, no step waits for a dependency, and the broker, Redis
        and the store accept connections."""
        checks = dependency_checks(self.settings)
        outages = {name: {"since": o.since, "error": o.error, "attempts": o.attempts}
                   for name, o in OUTAGES.current().items()}
        ready = self.state == "running" and not outages and all(c["ok"] for c in checks.values())
        return ready, {"ready": ready, "job": self.state, "restarts": self.restarts, "last_error": self.last_error,
                       "dependencies": checks, "waiting_for": outages}


class _FailedJob:
    """Stands in for a job whose submission failed, so the watcher counts it and tries again."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def wait_until_finish(self) -> Any:
        raise self.error

    def cancel(self) -> None:
        pass


def dependency_checks(settings: Settings) -> dict[str, dict[str, Any]]:
    """Whether each dependency accepts a connection now: every Kafka bootstrap server (any one
    answering is enough), Redis (PING) when the pipeline keeps state there (``redis``, and
    ``redis-<stages>`` for a server of ``redis.stage_urls``), the PostgreSQL store."""
    out: dict[str, dict[str, Any]] = {}
    out["kafka"] = broker_check(settings.kafka.bootstrap_servers)
    stages = settings.state_stages
    if stages:
        out["redis"] = _redis_check(settings.redis.url)
        for url, own in list(settings.redis.server_stages(stages).items())[1:]:  # redis.stage_urls' servers
            out[f"redis-{'+'.join(own)}"] = _redis_check(url)
    if settings.storage.kind == "postgresql":
        from urllib.parse import urlsplit

        parts = urlsplit(settings.storage_url)
        ok = port_open(parts.hostname or "127.0.0.1", parts.port or 5432)
        out["store"] = {"ok": ok, "detail": "PostgreSQL accepts connections" if ok else "PostgreSQL unavailable"}
    return out


def _redis_check(url: str) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
        memory = client.info("memory")
        used, limit = int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0))
        if limit and used >= limit:
            return {"ok": False, "detail": f"Redis full: {used / 2**20:.0f} MiB used of maxmemory "
                    f"{limit / 2**20:.0f} MiB (noeviction): state writes fail until redis.maxmemory is "
                    "raised or the windows (dedup ttl, stories max_gap_s) shorten"}
        share = f", {used / limit:.0%} of maxmemory" if limit else ""
        return {"ok": True, "detail": f"PING answered{share}"}
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return {"ok": False, "detail": f"Redis unavailable: {type(exc).__name__}: {exc}"[:300]}
    finally:
        client.close()


def supervise(settings: Settings, beam_args: Sequence[str] = ()) -> PipelineSupervisor:
    """Start the configured pipeline under a supervisor (what `newswire pipeline` and `up` run)."""
    def submit() -> JobHandle:
        reset_process_state()
        return run(list(beam_args), settings=settings)

    return PipelineSupervisor(settings, submit).start()
