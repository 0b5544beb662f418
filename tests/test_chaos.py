"""Chaos in CI: a small subset of bench/chaos.py, with the same code (ChaosRun). Fragments flow
throughout (half straight to the raw topic, half over HTTP ingest); each test injects one kind of
fault and then checks, for every fragment the broker or the endpoint acknowledged: stored exactly
once, no dead letters, and the pipeline recovered without a hand (never exited during an outage,
its job never failed). The full run, with the acceptance's counts and durations, is the bench."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.chaos import ChaosRun, Fault, Report, restart_in_place
from connectors.kafka import KafkaBroker
from connectors.postgres import PostgresServer
from connectors.redis import RedisServer
from core.settings import load_settings
from tests.harness import Stack, free_port, own_postgres_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

OUTAGE_S = 10
RATE = 12  # fragments/s, half over HTTP: enough to have records in flight at every fault, light on 2 cores


def explain(run: ChaosRun, report: Report) -> str:
    return f"\n{report.table()}\n{report.summary()}\n--- pipeline log (tail) ---\n{run.stack.pipeline_log()[-6000:]}"


def assert_nothing_lost_or_doubled(run: ChaosRun, report: Report) -> None:
    print(f"\n{report.table()}\n{report.summary()}")
    assert report.accepted > 0
    assert report.lost == 0, explain(run, report)
    assert report.duplicate_rows == 0, explain(run, report)
    assert not report.unknown_stored, explain(run, report)
    assert sum(o.dead_letters for o in report.outcomes) == 0, explain(run, report)


def assert_rode_it_out(run: ChaosRun, report: Report) -> None:
    """The pipeline process stayed up through the outage, its job never failed, and it stored new
    rows afterwards: no restart, no hand."""
    fault = report.outcomes[-1].fault
    assert not fault.exits, explain(run, report)
    assert fault.job_failures == 0 and report.other_job_failures == 0, explain(run, report)
    assert not fault.manual and fault.recoveries_s, explain(run, report)
    assert report.alive_at_end and run.pipeline_starts == 1, explain(run, report)


@pytest.fixture
def chaos_stack(make_stack: Any) -> Stack:
    """A stack on the session's broker and Redis with /readyz on a free port."""
    return make_stack(**{"pipeline.health_port": free_port()})  # type: ignore[no-any-return]


def test_sigkill_and_restart_loses_nothing_and_stores_nothing_twice(chaos_stack: Stack) -> None:
    with ChaosRun(chaos_stack, rate=RATE) as run:
        run.start()
        run.steady(2)
        fault = run.sigkill_cycles(2, random.Random(11), min_up_s=1.0, max_up_s=3.0)
        run.steady(2)
        report = run.finish(catch_up_timeout_s=120)
    assert_nothing_lost_or_doubled(run, report)
    assert len(fault.recoveries_s) == 2 and not fault.manual and report.alive_at_end, explain(run, report)
    assert fault.job_failures == 0, explain(run, report)
    print(f"SIGKILL: first new row after each restart: {', '.join(f'{s:.1f} s' for s in fault.recoveries_s)}")


def ride_out(stack: Stack, server: Any, what: str) -> tuple[ChaosRun, Fault, Report]:
    """Fragments flowing; ``server`` stopped for OUTAGE_S and started again in place, the pipeline
    left alone; then the accounting, and the checks every outage shares."""
    with ChaosRun(stack, rate=RATE) as run:
        run.start()
        run.steady(2)
        fault = run.outage(f"{what} outage {OUTAGE_S} s", server.stop, restart_in_place(server), OUTAGE_S)
        run.steady(2)
        report = run.finish(catch_up_timeout_s=120)
    assert_nothing_lost_or_doubled(run, report)
    assert_rode_it_out(run, report)
    # Not ready while a dependency is away, ready again once it is back.
    assert fault.ready_during[503] > 0 and fault.ready_after_s is not None, explain(run, report)
    return run, fault, report


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own (the session's is shared by every test), to stop and start again."""
    redis = RedisServer(tmp_path / "own-redis", port=free_port()).start()
    try:
        yield redis
    finally:
        redis.stop()


def test_redis_outage_is_ridden_out_by_the_running_pipeline(make_stack: Any, own_redis: RedisServer) -> None:
    ride_out(make_stack(**{"redis.url": own_redis.url, "pipeline.health_port": free_port()}), own_redis, "Redis")


@pytest.fixture
def own_broker(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[KafkaBroker, Stack]]:
    """A broker of this test's own (the session's is shared by every test) and a stack on it (with
    the session's Redis and /readyz on a free port)."""
    base = {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}", "kafka.embedded.controller_port": free_port(),
            "data_dir": str(tmp_path / "broker"), "redis.url": redis_server.url}
    broker = KafkaBroker(load_settings(overrides=base, environ={}), data_dir=tmp_path / "broker" / "kafka").start()
    (tmp_path / "stack").mkdir()
    stack = Stack(base, tmp_path / "stack", **{"pipeline.health_port": free_port()})
    try:
        yield broker, stack
    finally:
        stack.stop_all()
        broker.stop()


def test_broker_outage_is_ridden_out_and_readyz_says_so(own_broker: tuple[KafkaBroker, Stack]) -> None:
    broker, stack = own_broker
    run, fault, report = ride_out(stack, broker, "broker")
    assert set(fault.ready_during) == {503}, explain(run, report)  # every probe while the broker was away


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, to stop and start again."""
    with own_postgres_server("newswire-chaos-pg-") as pg:
        yield pg


def test_postgres_outage_is_ridden_out_by_the_running_pipeline(make_stack: Any, own_postgres: PostgresServer) -> None:
    stack = make_stack(**{"storage.url": own_postgres.create_database("chaos"), "pipeline.health_port": free_port()})
    ride_out(stack, own_postgres, "PostgreSQL")
