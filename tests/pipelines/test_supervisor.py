"""Outages ridden out in place (core/outage.py) and a failed job resubmitted, then given up
on loudly (pipelines/supervisor.py). The real broker/Redis outages run in tests/test_chaos.py."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest
from redis import exceptions as redis_errors

from connectors.process import free_port
from core.outage import OUTAGES, OutageGaveUp, redis_unavailable, wait_out
from core.settings import load_settings
from pipelines.supervisor import PipelineSupervisor
from tests.harness import scrape, series


def _flaky(failures: int, error: Exception) -> Any:
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise error
        return "done"
    return call, calls


def test_wait_out_retries_an_outage_until_it_ends() -> None:
    call, calls = _flaky(4, redis_errors.ConnectionError("refused"))
    slept: list[float] = []
    assert wait_out(call, redis_unavailable, "redis-test", 60, sleep=slept.append) == "done"
    assert calls["n"] == 5 and len(slept) == 4 and slept == sorted(slept)  # backoff grows
    assert "redis-test" not in OUTAGES.current()  # recovered


def test_wait_out_raises_other_errors_at_once() -> None:
    call, calls = _flaky(1, redis_errors.ResponseError("WRONGTYPE"))
    with pytest.raises(redis_errors.ResponseError):
        wait_out(call, redis_unavailable, "redis-test", 60, sleep=lambda s: None)
    assert calls["n"] == 1


def test_wait_out_gives_up_after_the_allowed_wait() -> None:
    call, _ = _flaky(10**9, redis_errors.ConnectionError("refused"))
    with pytest.raises(OutageGaveUp, match="redis-test unavailable for 0.3s"):
        wait_out(call, redis_unavailable, "redis-test", 0.3, first_backoff_s=0.05, max_backoff_s=0.05)
    assert "redis-test" in OUTAGES.current()
    OUTAGES.recovered("redis-test")


class _Job:
    """A submitted job that fails after ``fail_after`` seconds (or runs until cancelled)."""

    def __init__(self, fail_after: float | None) -> None:
        self.fail_after = fail_after
        self.cancelled = threading.Event()

    def wait_until_finish(self) -> Any:
        if self.fail_after is None:
            self.cancelled.wait()
            return "CANCELLED"
        time.sleep(self.fail_after)
        raise RuntimeError("Pipeline job failed in state FAILED: redis down")

    def cancel(self) -> None:
        self.cancelled.set()


def _settings(**overrides: Any) -> Any:
    return load_settings(environ={}, overrides={"pipeline.health_port": None, **overrides})


def test_a_failed_job_is_resubmitted_and_keeps_running() -> None:
    jobs = [_Job(0.05), _Job(0.05), _Job(None)]
    submitted: list[_Job] = []

    def submit() -> _Job:
        submitted.append(jobs[len(submitted)])
        return submitted[-1]

    sup = PipelineSupervisor(_settings(**{"pipeline.job_restarts": 3}), submit, sleep=lambda s: False).start()
    deadline = time.monotonic() + 5
    while sup.restarts < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sup.restarts == 2 and sup.state == "running" and not sup.gave_up
    assert "redis down" in (sup.last_error or "")
    assert jobs[0].cancelled.is_set()  # a failed job's runner is stopped before the next submission
    sup.stop()
    assert jobs[2].cancelled.is_set()


def test_the_supervisor_gives_up_with_a_non_zero_exit() -> None:
    sup = PipelineSupervisor(_settings(**{"pipeline.job_restarts": 2}), lambda: _Job(0.01),
                             sleep=lambda s: False).start()
    stop = threading.Event()
    threading.Timer(10, stop.set).start()  # bound the test if it never gives up
    assert sup.wait(stop) == 1
    stop.set()
    assert sup.gave_up and sup.state == "failed" and len(sup.failures) == 3


class _JobWithoutMetrics(_Job):
    """A running job whose runner tells its state but whose metrics query fails."""

    def live_state(self, timeout_s: float) -> str:
        return "RUNNING"

    def live_metrics(self, timeout_s: float) -> Any:
        raise ConnectionError("GetJobMetrics: not served")


def test_readiness_reports_unreachable_dependencies() -> None:
    port = free_port()
    dead = f"127.0.0.1:{free_port()}"
    settings = _settings(**{"pipeline.health_port": port, "kafka.bootstrap_servers": dead,
                            "redis.url": f"redis://127.0.0.1:{free_port()}/0"})
    sup = PipelineSupervisor(settings, lambda: _JobWithoutMetrics(None)).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as alive:
            assert alive.status == 200
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
        body = orjson.loads(err.value.read())
        assert err.value.code == 503 and body["ready"] is False and body["job"] == "running"
        assert "broker unavailable" in body["dependencies"]["kafka"]["detail"]
        assert body["dependencies"]["redis"]["ok"] is False
        # /metrics still answers, saying which sources it could not read (and nothing made up for them)
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert series(samples, "newswire_pipeline_source_up", "source") == {
            ("job_service",): 1, ("beam_metrics",): 0, ("kafka",): 0}
        assert series(samples, "newswire_pipeline_job_state", "state")[("RUNNING",)] == 1
        assert series(samples, "newswire_pipeline_supervisor_state", "state")[("running",)] == 1
        assert series(samples, "newswire_pipeline_job_restarts_total") == {(): 0}
        assert not any(s.name.startswith(("newswire_pipeline_consumer_lag", "newswire_pipeline_counter",
                                          "newswire_pipeline_stage")) for s in samples)
    finally:
        sup.stop()
