"""Connector health and the alert rules file's state on the console, from the status hash in a real
Redis (connectors/status.py), with hostile names and error messages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from connectors.redis import RedisServer
from connectors.status import ALERT_RULES, ConnectorStatus, StatusBoard, publish
from core.settings import Settings, load_settings
from newswire.console.app import Console
from tests.newswire import hostile
from tests.newswire.test_console import VIEWER, assert_inert, hostile_console, login


@pytest.fixture
def settings(tmp_path: Path, redis_server: RedisServer, redis_namespace: str) -> Settings:
    return load_settings(overrides={"storage.url": f"sqlite:///{tmp_path / 'store.db'}", "data_dir": str(tmp_path),
                                    "redis.url": redis_server.url, "redis.namespace": redis_namespace}, environ={})


@pytest.fixture
def console(settings: Settings) -> Iterator[Console]:
    made = hostile_console(settings)
    yield made
    made.store.close()


def write_status(settings: Settings, rules_ok: bool) -> None:
    """A failing feed with a hostile name, URL and error; a healthy inbox (through a StatusBoard,
    as the connectors write); and the alert rules' record."""
    feed = ConnectorStatus("rss", f"feed {hostile.SCRIPT}", hostile.JS_URL, counts={"items": 3, "failures_in_a_row": 2})
    feed.succeeded()
    feed.failed(f"ValueError: not a feed: {hostile.IMG} {hostile.RTL}")
    inbox = ConnectorStatus("inbox", "file:inbox", "/srv/inbox", counts={"files_done": 4})
    inbox.succeeded()
    board = StatusBoard(settings)
    board.report(feed)
    board.report(inbox)
    board.stop()  # writes what was reported
    client = redis.Redis.from_url(settings.redis.url)
    try:
        publish(client, settings.redis.namespace, ALERT_RULES, {
            "path": "config/alerts.yaml", "rules": 4, "ok": rules_ok, "checked_at": "2026-03-01T10:00:00Z",
            "error": None if rules_ok else f"config/alerts.yaml: rule '{hostile.SCRIPT}': 'window' must be a duration",
            "loaded_at": "2026-03-01T09:00:00Z", "reloads": 2, "failures": 0 if rules_ok else 1, "worker": "w:1"})
    finally:
        client.close()


def test_health_shows_each_connectors_last_success_and_error_as_text(console: Console, settings: Settings) -> None:
    write_status(settings, rules_ok=False)
    client = TestClient(console.app)
    login(client, VIEWER)
    html = assert_inert(client, "/health")
    rows = re.findall(r'<tr class="connector( failing)?" data-connector="([^"]+)">', html)
    assert rows == [("", "inbox:file:inbox"), (" failing", "rss:feed &lt;script&gt;window.__pwned = 1; alert(1)&lt;/script&gt;")]
    assert "not a feed: &lt;img src=x onerror=&#34;window.__pwned = 2&#34;&gt; invoice[U+202E]txt.exe" in html
    assert "files_done 4" in html and "failures_in_a_row 2, items 3" in html
    assert "javascript:window" in html and 'href="javascript' not in html  # a target is text, never a link
    # the rules file does not load: the health page and the alerts page say so, the error escaped
    assert "4 rules in force" in html and "2 reloads, 1 failed" in html
    assert "the file does not load, so the rules above stay in force: <bdi>config/alerts.yaml: rule &#39;&lt;script&gt;" in html
    alerts = assert_inert(client, "/alerts")
    assert re.search(r'<p class="error rules-error">alert rules: <bdi>config/alerts.yaml</bdi> does not load', alerts)


def test_a_good_rules_file_is_no_alarm_and_no_records_say_so(console: Console, settings: Settings) -> None:
    client = TestClient(console.app)
    login(client, VIEWER)
    html = client.get("/health").text
    assert "no connector has reported yet" in html and "no pipeline worker has reported its rules yet" in html
    write_status(settings, rules_ok=True)
    html = client.get("/health").text
    assert '<p class="alert-rules ok"><bdi>config/alerts.yaml</bdi>: 4 rules in force' in html
    assert "rules-error" not in html and "rules-error" not in client.get("/alerts").text
