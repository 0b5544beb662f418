"""``redis.stage_urls``: a stage's state on a Redis server of its own. One Redis runs every script
on one thread, so it bounds all jobs together; splitting the stages over servers is how a deployment
with many cores lifts that bound (docs/deploy.md). Real servers, the real pipeline on Prism."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from connectors.redis import RedisServer
from core.settings import ConfigError, load_settings
from tests.harness import NATO_FINLAND_RULES, free_port, has_sources, wait_for


def test_every_stage_uses_redis_url_unless_given_its_own() -> None:
    r = load_settings(environ={}).redis
    assert {r.url_for(stage) for stage in ("dedup", "stories", "alerts")} == {r.url}
    assert r.server_stages() == {r.url: ["dedup", "stories", "alerts"]}
    split = load_settings(environ={}, overrides={"redis.stage_urls.stories": "redis://127.0.0.1:6391/0"}).redis
    assert split.url_for("stories") == "redis://127.0.0.1:6391/0"
    assert split.url_for("dedup") == split.url_for("alerts") == split.url
    assert split.server_stages() == {split.url: ["dedup", "alerts"], "redis://127.0.0.1:6391/0": ["stories"]}
    # stories off: not a server of this config
    assert split.server_stages(["dedup", "alerts"]) == {split.url: ["dedup", "alerts"]}
    # another database on redis.url's host and port is the same server, whatever the host's case
    same = load_settings(environ={}, overrides={"redis.url": "redis://Redis.example:6379/0",
                                                 "redis.stage_urls.stories": "redis://redis.example:6379/2",
                                                 "redis.stage_urls.alerts": "redis://redis.example:6380/0"}).redis
    assert same.server_stages() == {"redis://Redis.example:6379/0": ["dedup", "stories"],
                                    "redis://redis.example:6380/0": ["alerts"]}


@pytest.mark.parametrize(("key", "value", "named"), [
    ("redis.stage_urls.story", "redis://127.0.0.1:6391/0", "redis.stage_urls: Additional properties"),
    ("redis.stage_urls.stories", "127.0.0.1:6391", "redis.stage_urls.stories:"),
])
def test_a_bad_stage_url_is_refused_at_start_up_naming_the_key(key: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, overrides={key: value})
    assert named in str(err.value)


@pytest.fixture
def stage_servers(tmp_path: Path) -> Iterator[dict[str, RedisServer]]:
    servers = {stage: RedisServer(tmp_path / f"redis-{stage}", port=free_port()).start()
               for stage in ("stories", "alerts")}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def keys(url: str, namespace: str) -> set[str]:
    client = redis.Redis.from_url(url)
    try:
        return {k.decode("latin-1") for k in client.scan_iter(match=f"{namespace}*", count=1000)}
    finally:
        client.close()


@pytest.mark.e2e
def test_each_stage_keeps_its_state_on_its_own_server(make_stack: Any, samples: dict[str, str],
                                                      stage_servers: dict[str, RedisServer]) -> None:
    health = free_port()
    stack = make_stack(**{"alerts.rules_path": str(NATO_FINLAND_RULES), "pipeline.health_port": health,
                          "redis.stage_urls.stories": stage_servers["stories"].url,
                          "redis.stage_urls.alerts": stage_servers["alerts"].url})
    stack.start_pipeline()
    stack.produce([{"source": "outlet:a", "id": "a1", "text": samples["russia-warns-finland-sweden"]},
                   {"source": "outlet:b", "id": "b1", "text": samples["liveblog-fragment-2-26"]}])
    events = stack.consume("enriched", has_sources("a1", "b1"), timeout_s=120)
    assert all(e["story_id"] for e in events), stack.pipeline_log()
    alerts = stack.consume("alerts", lambda r: len(r) >= 1, timeout_s=60)
    assert [a["rule"] for a in alerts] == ["nato-finland"], stack.pipeline_log()

    ns, main = stack.settings.redis.namespace, stack.settings.redis.url
    on_main, on_stories, on_alerts = keys(main, ns), keys(stage_servers["stories"].url, ns), \
        keys(stage_servers["alerts"].url, ns)
    assert any(k.startswith(f"{ns}st:") for k in on_stories), on_stories
    assert any(k.startswith(f"{ns}al:") for k in on_alerts), on_alerts
    assert any(k.startswith(f"{ns}y") for k in on_main), on_main  # dedup stays on redis.url
    assert not any(k.startswith((f"{ns}st:", f"{ns}al:")) for k in on_main), on_main
    assert not any(k.startswith((f"{ns}y", f"{ns}al:")) for k in on_stories), on_stories
    assert not any(k.startswith((f"{ns}y", f"{ns}st:")) for k in on_alerts), on_alerts
    # The status board stays on redis.url, where the console reads it: the alert rules record too.
    assert f"{ns}status" in on_main and f"{ns}status" not in on_alerts
    # The console's memory figure is the three servers' together
    from newswire.console.health import redis_memory

    memory = redis_memory(stack.settings)
    used = [redis.Redis.from_url(url).info("memory")["used_memory"] for url in
            (main, stage_servers["stories"].url, stage_servers["alerts"].url)]
    assert memory["servers"] == 3 and memory["used"] >= sum(used) * 0.9, (memory, used)

    def ready() -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=5) as resp:
                return json.loads(resp.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:  # 503 until every dependency answers
            return json.loads(exc.read())  # type: ignore[no-any-return]

    wait_for(lambda: {"redis", "redis-stories", "redis-alerts"} <= set(ready().get("dependencies", {})), 30)
    stage_servers["alerts"].stop()  # the alerts' server down: not ready, and the check says which
    wait_for(lambda: not ready()["dependencies"]["redis-alerts"]["ok"], 30)
    assert ready()["dependencies"]["redis-stories"]["ok"] and ready()["dependencies"]["redis"]["ok"]


def test_up_runs_an_embedded_server_for_each_stage_url_on_this_machine(tmp_path: Path) -> None:
    from connectors.redis import resolve_maxmemory
    from newswire.cli import start_embedded_redis, stop_all

    main, stories = free_port(), free_port()
    settings = load_settings(environ={}, overrides={
        "data_dir": str(tmp_path), "redis.url": f"redis://127.0.0.1:{main}/0",
        "redis.stage_urls.stories": f"redis://127.0.0.1:{stories}/0",
        "redis.stage_urls.alerts": f"redis://127.0.0.1:{main}/1",  # another database of the main server
        "redis.stage_urls.dedup": "redis://redis-dedup.example:6390/0"})  # not this machine's: the operator's
    servers = start_embedded_redis(settings)
    try:
        assert [(s.port, s.dir.name) for s in servers] == [(main, "redis"), (stories, f"redis-{stories}")]
        half = int(resolve_maxmemory("auto")[:-2])  # type: ignore[index]
        assert [s.maxmemory for s in servers] == [f"{half // 2}mb"] * 2  # "auto" shared out: half in all
        for server in servers:
            assert redis.Redis.from_url(server.url).ping()
    finally:
        stop_all(servers)
