"""The embedded redis-server: loopback by default, a password beyond loopback, and the commands that
would hand a client more than the data switched off."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import redis

from connectors.process import listening_sockets
from connectors.redis import DISABLED_COMMANDS, RedisServer, make_redis
from tests.harness import free_port


def test_dangerous_commands_are_refused_and_the_project_s_own_work(redis_server: RedisServer,
                                                                    redis_namespace: str) -> None:
    client = make_redis(redis_server.url)
    for command in ("FLUSHALL", "FLUSHDB", "CONFIG SET dir /tmp", "CONFIG GET dir", "DEBUG SLEEP 0", "SHUTDOWN NOSAVE",
                    "MODULE LOAD /tmp/x.so", "REPLICAOF 127.0.0.1 1", "SLAVEOF NO ONE", "MIGRATE 127.0.0.1 1 k 0 1",
                    "ACL SETUSER x on", "FUNCTION LIST"):
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.execute_command(*command.split())
    # Nor from a script: a renamed command does not exist under its old name there either.
    with pytest.raises(redis.ResponseError, match="(?i)unknown"):
        client.eval("return redis.call('CONFIG', 'GET', 'dir')", 0)
    key = f"{redis_namespace}k"
    assert client.set(key, b"v") and client.get(key) == b"v"
    assert client.eval("return redis.call('GET', KEYS[1])", 1, key) == b"v"
    assert client.script_flush() and client.info("memory")["used_memory"] > 0
    assert client.delete(key) == 1
    # Loopback only, protected mode on.
    assert redis_server.proc is not None
    assert [str(ip) for ip, _ in listening_sockets(redis_server.proc.pid)] == ["127.0.0.1"]
    assert "rename-command CONFIG" in redis_server.config_file.read_text()


def test_beyond_loopback_a_password_is_required(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="without a password"):
        RedisServer(tmp_path / "open", port=free_port(), host="0.0.0.0").start()
    assert not (tmp_path / "open" / "redis.pid").exists()


def test_a_password_is_enforced_and_kept_off_the_command_line(tmp_path: Path) -> None:
    secret = 'pw with "quotes", \\ and : é'
    with RedisServer(tmp_path / "redis", port=free_port(), password=secret, enable_commands=["FLUSHALL"]) as server:
        assert make_redis(server.url).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=server.host, port=server.port, password="wrong").ping()
        with pytest.raises(redis.RedisError, match="(?i)auth"):
            redis.Redis(host=server.host, port=server.port).set("k", "v")
        assert server.proc is not None
        assert secret.encode() not in Path(f"/proc/{server.proc.pid}/cmdline").read_bytes()
        assert stat.S_IMODE(server.config_file.stat().st_mode) == 0o600
        assert make_redis(server.url).flushall()  # kept on request (a bench's)
    assert set(DISABLED_COMMANDS) >= {"CONFIG", "MODULE", "REPLICAOF", "SLAVEOF", "DEBUG", "MIGRATE"}


def test_maxmemory_auto_is_half_the_machine_and_settings_refuse_nonsense() -> None:
    import os

    from connectors.redis import resolve_maxmemory
    from core.settings import load_settings

    half_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2 // 2**20
    assert resolve_maxmemory("auto") == f"{half_mib}mb"
    assert resolve_maxmemory("3gb") == "3gb" and resolve_maxmemory(None) is None
    assert load_settings(environ={}).redis.maxmemory == "auto"  # the shipped default is bounded
    with pytest.raises(ValueError, match="maxmemory"):
        load_settings(environ={}, overrides={"redis.maxmemory": "lots"})


def test_a_full_redis_refuses_writes_loudly_and_readyz_says_why(tmp_path: Path) -> None:
    from pipelines.supervisor import _redis_check

    server = RedisServer(tmp_path / "r", port=free_port(), maxmemory="4mb").start()
    try:
        client = make_redis(server.url)
        assert _redis_check(server.url)["ok"]
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for i in range(10_000):  # ~10 MB of values against a 4 MB bound: nothing is evicted
                client.set(f"k{i}", b"x" * 1000)
        assert client.get("k0") == b"x" * 1000
        check = _redis_check(server.url)
        assert not check["ok"] and check["detail"].startswith("Redis full:") and "maxmemory" in check["detail"]
        client.close()
    finally:
        server.stop()


def test_a_story_s_full_novelty_set_stays_packed(redis_server: RedisServer, redis_namespace: str) -> None:
    """A story's shingle set grows to NoveltySettings.max_shingles members (a long live blog): the
    embedded server keeps it an integer set (4 bytes a member), not a hash table (~12x the memory)."""
    from core.settings import NoveltySettings
    from pipelines.stages.stories.clustering import small_hash

    client = make_redis(redis_server.url)
    key = f"{redis_namespace}nh:live-blog"
    cap = NoveltySettings().max_shingles
    members = [small_hash((i * 0x9E3779B97F4A7C15) % (1 << 64)) for i in range(cap)]
    for start in range(0, cap, 4096):
        client.sadd(key, *members[start:start + 4096])
    assert client.scard(key) == len(set(members))
    assert client.object("encoding", key) == b"intset"
    assert client.memory_usage(key) < 6 * cap  # a hash table: ~48 bytes a member
    client.delete(key)
