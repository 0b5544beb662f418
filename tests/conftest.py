"""Shared fixtures: one real Apache Kafka broker (embedded, KRaft) for the whole test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka import KafkaBroker
from connectors.postgres import PostgresServer
from connectors.redis import RedisServer
from core.settings import load_settings
from tests.harness import SHARED, Stack, free_port, own_postgres_server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session, on a free port; tests keep apart by key namespace."""
    redis = RedisServer(tmp_path_factory.mktemp("redis"), port=free_port()).start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (initdb in a temp dir), on a free port."""
    with own_postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A database of this test's own on the session's server: its storage.url."""
    return postgres_server.create_database(f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
def redis_namespace() -> str:
    """A Redis key prefix of this test's own."""
    return f"t{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="session")
def broker_overrides(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
                     ) -> Iterator[dict[str, Any]]:
    """Start the broker on free ports; yields the settings overrides that point at it and at Redis.
    Each test's Stack gets its own topics, consumer group and Redis key namespace."""
    data = tmp_path_factory.mktemp("kafka")
    redis = redis_server
    overrides = {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}",
                 "kafka.embedded.controller_port": free_port(), "data_dir": str(data),
                 "redis.url": redis.url}
    settings = load_settings(overrides=overrides, environ={})
    broker = KafkaBroker(settings).start()
    try:
        yield overrides
    finally:
        broker.stop()


@pytest.fixture
def stack(broker_overrides: dict[str, Any], tmp_path: Path) -> Iterator[Stack]:
    s = Stack(broker_overrides, tmp_path)
    try:
        yield s
    finally:
        s.stop_all()


@pytest.fixture
def make_stack(broker_overrides: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    made: list[Stack] = []

    def make(**overrides: Any) -> Stack:
        s = Stack(broker_overrides, tmp_path, **overrides)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop_all()


@pytest.fixture(scope="session")
def samples() -> dict[str, str]:
    """The two real news texts in ../shared/samples (read from there, never copied into the repo)."""
    folder = SHARED / "samples"
    if not folder.is_dir():
        pytest.skip(f"shared samples not found at {folder}")
    return {p.stem: p.read_text(encoding="utf-8") for p in folder.glob("*.txt")}
