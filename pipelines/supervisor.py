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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import orjson
from prometheus_client import CollectorRegistry

from connectors.metrics import exposition
from connectors.process import port_open
from core.outage import OUTAGES
from core.settings import Settings
from pipelines.io import reset_process_state
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
        self._health: HealthServer | None = None
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
            self._health = HealthServer(self, p.health_host, p.health_port).start()
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


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return (host or address).strip("[]"), int(port) if port.isdigit() else default_port


def dependency_checks(settings: Settings) -> dict[str, dict[str, Any]]:
    """Whether each dependency accepts a connection now: every Kafka bootstrap server (any one
    answering is enough), Redis (PING) when the pipeline keeps state there, the PostgreSQL store."""
    out: dict[str, dict[str, Any]] = {}
    brokers = [_host_port(b, 9092) for b in settings.kafka.bootstrap_servers.split(",")]
    up = [f"{h}:{p}" for h, p in brokers if port_open(h, p)]
    out["kafka"] = {"ok": bool(up), "detail": f"reachable: {', '.join(up)}" if up else
                    f"broker unavailable: none of {settings.kafka.bootstrap_servers} accepts connections"}
    if settings.pipeline.dedup.mode == "near" or settings.pipeline.stories.enabled or settings.alerts.enabled:
        out["redis"] = _redis_check(settings.redis.url)
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


class HealthServer:
    """``/healthz`` and ``/readyz`` as JSON, and ``/metrics`` for Prometheus, on a small threaded HTTP
    server (stdlib)."""

    def __init__(self, supervisor: PipelineSupervisor, host: str, port: int) -> None:
        self.supervisor = supervisor
        sup = supervisor

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    alive = not sup.gave_up
                    self._answer(200 if alive else 503, {"alive": alive, "job": sup.state})
                elif self.path == "/readyz":
                    ready, details = sup.readiness()
                    self._answer(200 if ready else 503, details)
                elif self.path == "/metrics":
                    self._answer(200, *exposition(sup.registry))
                else:
                    self._answer(404, {"error": "not_found", "message": "GET /healthz, /readyz or /metrics"})

            def _answer(self, status: int, body: dict[str, Any] | bytes, content_type: str = "application/json"
                        ) -> None:
                data = body if isinstance(body, bytes) else orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="pipeline-health", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("pipeline health on http://%s:%d/readyz", self._server.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def supervise(settings: Settings, beam_args: Sequence[str] = ()) -> PipelineSupervisor:
    """Start the configured pipeline under a supervisor (what `newswire pipeline` and `up` run)."""
    def submit() -> JobHandle:
        reset_process_state()
        return run(list(beam_args), settings=settings)

    return PipelineSupervisor(settings, submit).start()
