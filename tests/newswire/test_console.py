"""The console without a browser: login, roles, CSRF, security headers and escaping of hostile
records (Starlette's TestClient against a real SQLite store), and the pure view helpers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from connectors.sinks import open_store
from core.settings import ConfigError, Settings, load_settings
from newswire.console import views
from newswire.console.app import CONTENT_SECURITY_POLICY, Console
from newswire.console.auth import COOKIE, Credentials, SessionSigner
from tests.harness import REPO, write_config
from tests.newswire import hostile

VIEWER, OPERATOR = "viewer-token-1", "operator-token-2"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(overrides={"storage.url": f"sqlite:///{tmp_path / 'store.db'}", "data_dir": str(tmp_path)},
                         environ={})


def hostile_console(settings: Settings) -> Console:
    """A console (not started) over a store holding the hostile events and alert, and a hostile dead letter."""
    store = open_store(settings.storage_url)
    store.add_many([hostile.event(0), hostile.event(1), hostile.event(2, duplicate_of=f"{0:032x}")])
    store.add_alerts([hostile.alert()])
    store.flush()
    store.close()
    made = Console(settings, credentials=Credentials(VIEWER, OPERATOR))
    made.feed.take("dlq", orjson.dumps(hostile.dead_letter()), 0, 0)
    return made


@pytest.fixture
def console(settings: Settings) -> Iterator[Console]:
    made = hostile_console(settings)
    yield made
    made.store.close()


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


def login(client: TestClient, token: str) -> None:
    page = client.get("/login")
    reply = client.post("/login", data={"csrf": csrf_of(page.text), "token": token}, follow_redirects=False)
    assert reply.status_code == 303, reply.text


def test_pages_need_a_login_and_the_stream_says_401(console: Console) -> None:
    client = TestClient(console.app)
    for path in ("/alerts", "/stories", "/dead-letters", "/health", f"/stories/{hostile.STORY_ID}"):
        reply = client.get(path, follow_redirects=False)
        assert (reply.status_code, reply.headers["location"]) == (303, "/login"), path
    assert client.get("/alerts/stream", headers={"accept": "text/event-stream"}).status_code == 401


def test_a_wrong_token_is_refused_and_a_forged_cookie_is_no_session(console: Console) -> None:
    client = TestClient(console.app)
    page = client.get("/login")
    reply = client.post("/login", data={"csrf": csrf_of(page.text), "token": "guess"}, follow_redirects=False)
    assert reply.status_code == 401
    other = SessionSigner(3600)  # another key: what an attacker can sign
    client.cookies.set(COOKIE, other.dump(other.new("operator")))
    assert client.get("/alerts", follow_redirects=False).status_code == 303


def test_login_without_the_csrf_token_is_refused(console: Console) -> None:
    client = TestClient(console.app)
    client.get("/login")
    assert client.post("/login", data={"token": OPERATOR}, follow_redirects=False).status_code == 403
    assert client.get("/alerts", follow_redirects=False).status_code == 303  # still not logged in


def test_viewer_sees_pages_but_may_not_acknowledge(console: Console) -> None:
    client = TestClient(console.app)
    login(client, VIEWER)
    page = client.get("/alerts")
    assert page.status_code == 200 and "Acknowledge" not in page.text
    reply = client.post(f"/alerts/{'a' * 32}/ack", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert reply.status_code == 403
    assert 'class="acked"' not in client.get("/alerts").text


def test_operator_acknowledges_only_with_the_csrf_token_from_this_origin(console: Console) -> None:
    client = TestClient(console.app)
    login(client, OPERATOR)
    page = client.get("/alerts")
    token = csrf_of(page.text)
    ack = f"/alerts/{'a' * 32}/ack"
    assert client.post(ack, data={}, follow_redirects=False).status_code == 403
    assert client.post(ack, data={"csrf": "x" + token}, follow_redirects=False).status_code == 403
    assert client.post(ack, data={"csrf": token}, headers={"origin": "https://evil.example"},
                       follow_redirects=False).status_code == 403
    assert 'class="acked"' not in client.get("/alerts").text
    assert client.post(ack, data={"csrf": token}, follow_redirects=False).status_code == 303
    assert "acknowledged by operator" in client.get("/alerts").text


def test_session_cookies_are_httponly_lax_and_secure_over_https(console: Console) -> None:
    for base, secure in (("http://testserver", False), ("https://testserver", True)):
        cookie = TestClient(console.app, base_url=base).get("/login").headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and ("Secure" in cookie) is secure


def test_resubmitting_a_dead_letter_needs_an_operator_and_a_whole_raw_record(console: Console) -> None:
    """What is refused before anything is produced (the produce itself: test_console_browser.py)."""
    alerts_topic = console.settings.kafka.topics.alerts.name
    console.feed.take("dlq", orjson.dumps(hostile.dead_letter(alerts_topic)), 0, 1)
    console.feed.take("dlq", orjson.dumps({**hostile.dead_letter(), "original_truncated": True}), 0, 2)
    viewer, operator = TestClient(console.app), TestClient(console.app)
    login(viewer, VIEWER)
    login(operator, OPERATOR)
    assert "Re-submit" not in viewer.get("/dead-letters").text
    page = operator.get("/dead-letters").text
    assert page.count("Re-submit to the raw topic") == 1  # the whole raw record (offset 0), not the other two
    assert page.count("not re-submittable") == 2
    token = csrf_of(page)
    viewer_token = csrf_of(viewer.get("/dead-letters").text)
    assert viewer.post("/dead-letters/0/0/resubmit", data={"csrf": viewer_token},
                       follow_redirects=False).status_code == 403
    assert operator.post("/dead-letters/0/0/resubmit", data={}, follow_redirects=False).status_code == 403
    for offset, status in ((1, 409), (2, 409), (99, 404)):
        reply = operator.post(f"/dead-letters/0/{offset}/resubmit", data={"csrf": token}, follow_redirects=False)
        assert reply.status_code == status, offset


def test_operator_snoozes_a_rule_and_ends_the_snooze(console: Console) -> None:
    rule = hostile.alert()["rule"]  # markup in the rule's name, too
    viewer, operator = TestClient(console.app), TestClient(console.app)
    login(viewer, VIEWER)
    login(operator, OPERATOR)
    page = operator.get("/alerts").text
    assert 'class="inline snooze"' in page and 'value="nordics &lt;script&gt;' in page
    token, viewer_token = csrf_of(page), csrf_of(viewer.get("/alerts").text)
    assert viewer.post("/alerts/snooze", data={"csrf": viewer_token, "rule": rule, "minutes": "60"},
                       follow_redirects=False).status_code == 403
    assert operator.post("/alerts/snooze", data={"rule": rule, "minutes": "60"}, follow_redirects=False).status_code == 403
    assert operator.post("/alerts/snooze", data={"csrf": token, "rule": rule, "minutes": "7"},
                         follow_redirects=False).status_code == 400
    assert operator.post("/alerts/snooze", data={"csrf": token, "rule": rule, "minutes": "60"},
                         follow_redirects=False).status_code == 303
    page = operator.get("/alerts").text
    assert 'class="alert severity-critical snoozed"' in page and "rule snoozed until" in page
    assert '<ul class="snoozes">' in page and "&lt;script&gt;" in page and 'class="inline snooze"' not in page
    assert "rule snoozed until" in viewer.get("/alerts").text  # everyone sees it muted
    assert operator.post("/alerts/snooze", data={"csrf": token, "rule": rule, "minutes": "0"},
                         follow_redirects=False).status_code == 303
    assert "snoozed" not in operator.get("/alerts").text.split("<main>")[1]


def test_logout_ends_the_session(console: Console) -> None:
    client = TestClient(console.app)
    login(client, VIEWER)
    token = csrf_of(client.get("/alerts").text)
    assert client.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert client.get("/alerts", follow_redirects=False).status_code == 303


def test_every_response_has_the_strict_security_headers(console: Console) -> None:
    client = TestClient(console.app)
    login(client, VIEWER)
    for path in ("/login", "/alerts", "/static/console.js", "/static/console.css", "/no-such-page"):
        headers = client.get(path).headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY


PAGES = ["/alerts", "/stories", f"/stories/{hostile.STORY_ID}", f"/events/{0:032x}", f"/events/{1:032x}",
         "/dead-letters", "/health", "/events?entity=ltenberg&since=1h"]


@pytest.mark.parametrize("path", PAGES)
def test_hostile_text_is_escaped_and_links_are_http_only(console: Console, path: str) -> None:
    client = TestClient(console.app)
    login(client, OPERATOR)
    assert_inert(client, path)


def test_every_page_renders_from_postgresql(postgres_url: str, tmp_path: Path) -> None:
    settings = load_settings(overrides={"storage.url": postgres_url, "data_dir": str(tmp_path)}, environ={})
    console = hostile_console(settings)
    try:
        client = TestClient(console.app)
        login(client, OPERATOR)
        for path in PAGES:
            assert_inert(client, path)
        assert f"<mark>{hostile.NEW_SENTENCE}</mark>" in client.get(f"/stories/{hostile.STORY_ID}").text
        assert client.get("/stories").text.count(f'href="/stories/{hostile.STORY_ID.replace(":", "%3A")}"') == 2
        token = csrf_of(client.get("/alerts").text)
        assert client.post(f"/alerts/{'a' * 32}/ack", data={"csrf": token}, follow_redirects=False).status_code == 303
        assert "acknowledged by operator" in client.get("/alerts").text
    finally:
        console.store.close()


def assert_inert(client: TestClient, path: str) -> str:
    """The page at `path` renders (200) with every hostile value escaped and no script URL linked."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    html = page.text
    # the only <script> is the console's own file; no event handler or script URL got through
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/console.js" defer>']
    assert "<img" not in html and "onerror=" not in html.replace("onerror=&#34;", "")
    assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", html, re.IGNORECASE)
    assert not re.search(r"\sstyle=", html)  # the CSP would block inline styles anyway
    assert "\u202e" not in html and "\u200b" not in html
    assert "&lt;script&gt;" in html or path == "/health", path
    return html


def test_stories_page_lists_the_story_as_growing_and_biggest(console: Console) -> None:
    client = TestClient(console.app)
    login(client, VIEWER)
    html = client.get("/stories").text
    assert html.count(f'href="/stories/{hostile.STORY_ID.replace(":", "%3A")}"') == 2
    assert "invoice[U+202E]txt.exe" in html
    # its volume: 3 events in the hour before now (the 24th point, at the top), none before
    points = re.findall(r'<polyline points="([^"]*)"/>', html)
    assert len(points) == 2 and points[0].split()[-1] == "120.0,1.0" and points[0].split()[0] == "0.0,23.0"


def test_health_shows_throughput_from_the_pipelines_window_counts(console: Console) -> None:
    def count(start: str, end: str, source: str, fragments: int) -> bytes:
        return orjson.dumps({"schema": "fragment-count/1", "source": source, "fragments": fragments,
                             "window_start": start, "window_end": end})
    for n, (source, fragments) in enumerate([("wire:a", 90), (hostile.RTL, 30), ("wire:a", 120)]):
        console.feed.take("stats", count("2026-03-01T10:00:00.000Z", "2026-03-01T10:01:00.000Z", source, fragments), 0, n)
    console.feed.take("stats", count("2026-03-01T10:01:00.000Z", "2026-03-01T10:02:00.000Z", "wire:b", 6), 0, 9)
    client = TestClient(console.app)
    login(client, VIEWER)
    html = client.get("/health").text
    rows = re.findall(r'<td class="num">(\d+)</td>\s*<td class="num">([\d.]+)</td>', html)
    assert rows == [("6", "0.10"), ("150", "2.50")]  # newest first; a refired window replaced, not added
    assert "<bdi>wire:a</bdi> 120, <bdi>invoice[U+202E]txt.exe</bdi> 30" in html


def test_health_adds_up_the_window_counts_of_several_pipeline_jobs(console: Console) -> None:
    """`up --workers 2`: each job counts its own partitions' fragments of one source and window."""
    def count(partitions: list[int], fragments: int) -> bytes:
        return orjson.dumps({"schema": "fragment-count/1", "source": "wire:a", "fragments": fragments,
                             "window_start": "2026-03-01T10:00:00.000Z", "window_end": "2026-03-01T10:01:00.000Z",
                             "partitions": partitions})
    for n, (share, fragments) in enumerate([([0, 2], 40), ([1, 3], 50), ([0, 2], 70)]):  # job 0 refires
        console.feed.take("stats", count(share, fragments), 0, n)
    client = TestClient(console.app)
    login(client, VIEWER)
    html = client.get("/health").text
    assert re.findall(r'<td class="num">(\d+)</td>\s*<td class="num">([\d.]+)</td>', html) == [("120", "2.00")]


def test_search_finds_events_by_entity_and_source_and_refuses_a_bad_duration(console: Console) -> None:
    client = TestClient(console.app)
    login(client, VIEWER)
    assert "<ol" not in client.get("/events").text  # the form alone
    found = re.findall(r'<li class="event" data-event-id="(\w+)">', client.get("/events?entity=person:x&since=1h").text)
    assert found == [f"{n:032x}" for n in (0, 1, 2)]  # one received_at: by event id
    html = client.get("/events", params={"source": f"wire:{hostile.IMG}", "language": "en"}).text
    assert len(re.findall(r'<li class="event"', html)) == 3 and 'value="wire:&lt;img' in html
    assert "no stored event matches" in client.get("/events?entity=nobody").text
    bad = client.get("/events?since=yesterday")
    assert bad.status_code == 400 and "must be a duration" in bad.text


def console_over(url: str, tmp_path: Path, *batches: list[dict[str, Any]]) -> Console:
    """A console (not started) over the store at `url` holding `batches` of events, written in order."""
    store = open_store(url)
    for batch in batches:
        store.add_many(batch)
        store.flush()
    store.close()
    settings = load_settings(overrides={"storage.url": url, "data_dir": str(tmp_path)}, environ={})
    return Console(settings, credentials=Credentials(VIEWER, OPERATOR))


@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql"])
def test_search_by_an_explicit_time_range_on_both_stores(store_kind: str, tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'range.db'}" if store_kind == "sqlite" else request.getfixturevalue("postgres_url")
    console = console_over(url, tmp_path, [hostile.event(n, received_at=at) for n, at in enumerate(
        ["2026-03-01T10:00:00Z", "2026-03-01T12:05:00.250+02:00", "2026-03-01T10:10:00Z", "2026-03-02T00:00:00Z"])])
    try:
        client = TestClient(console.app)
        login(client, VIEWER)

        def found(**params: str) -> list[int]:
            page = client.get("/events", params=params)
            assert page.status_code == 200, page.text
            return [int(i, 16) for i in re.findall(r'<li class="event" data-event-id="(\w+)">', page.text)]
        # 12:05+02:00 is 10:05Z; "to" is exclusive; a date alone is midnight UTC
        assert found(**{"from": "2026-03-01T10:05Z", "to": "2026-03-01T10:10:00Z"}) == [1]
        assert found(**{"from": "2026-03-01T10:00:00.001Z"}) == [3, 2, 1]
        assert found(to="2026-03-02") == [2, 1, 0]
        assert found(**{"from": "2026-03-01 09:00", "to": "2026-03-01T11:01+01:00"}) == [0]
        assert found(**{"from": "2026-03-01", "since": "1h"}) == []  # the later lower bound holds
        bad = client.get("/events", params={"from": "<script>alert(1)</script>"})
        assert bad.status_code == 400 and "from: must be an ISO-8601 date-time" in bad.text
        assert "<script>alert" not in bad.text and 'value="&lt;script&gt;' in bad.text
        backwards = client.get("/events", params={"from": "2026-03-02", "to": "2026-03-01"})
        assert backwards.status_code == 400 and "to: 2026-03-01T00:00:00.000Z is not after" in backwards.text
        far = client.get("/events", params={"to": "9999-12-31T23:59:59-01:00", "since": "99999999999d"})
        assert far.status_code == 400
    finally:
        console.store.close()


@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql"])
def test_a_merged_story_redirects_to_its_survivor_and_is_not_listed(store_kind: str, tmp_path: Path,
                                                                    request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'merge.db'}" if store_kind == "sqlite" else request.getfixturevalue("postgres_url")
    absorbed = "story:<script>merged"  # a stored id is untrusted text too
    console = console_over(url, tmp_path, [hostile.event(0), hostile.event(10, story_id=absorbed),
                                           hostile.event(11, story_id=absorbed)],
                           [hostile.merging_event(1, absorbed, event_count=4)])
    try:
        client = TestClient(console.app)
        login(client, VIEWER)
        survivor_href = f'/stories/{hostile.STORY_ID.replace(":", "%3A")}'
        moved = client.get(f"/stories/{absorbed}", follow_redirects=False)
        assert moved.status_code == 303
        assert moved.headers["location"] == f"{survivor_href}?merged=story%3A%3Cscript%3Emerged"
        html = assert_inert(client, moved.headers["location"])
        assert "was merged into this one" in html and "story:&lt;script&gt;merged" in html
        assert re.findall(r'data-event-id="0*(\w+)"', html) == ["0", "1", "a", "b"]  # both stories' events
        assert "was merged into this one" not in client.get(f"{survivor_href}?merged=story%3Aother").text
        stories = client.get("/stories").text
        assert stories.count(f'href="{survivor_href}"') == 2 and "merged" not in stories
    finally:
        console.store.close()


def test_sparkline_spans_the_box() -> None:
    assert views.sparkline([0, 2, 1], width=10, height=12) == "0.0,11.0 5.0,1.0 10.0,6.0"
    assert views.sparkline([]) == "" and views.sparkline([0]) == "0.0,23.0"


def test_story_page_marks_new_sentences_and_shows_hidden_characters(console: Console) -> None:
    client = TestClient(console.app)
    login(client, VIEWER)
    html = client.get(f"/stories/{hostile.STORY_ID}").text
    assert f"<mark>{hostile.NEW_SENTENCE}</mark>" in html
    assert "invoice[U+202E]txt.exe" in html and "Sto[U+200B]ltenberg" in html
    assert 'href="https://example.org/a/1?q=&#34;&gt;&lt;script&gt;"' in html
    assert 'class="unsafe-url"' in html  # the javascript: URL, as text
    folded = re.findall(r'<li class="event duplicate" data-event-id="(\w+)"><details><summary>duplicate from', html)
    assert folded == [f"{2:032x}"]


def test_event_page_shows_the_countries_named_by_demonyms_apart_from_places(console: Console) -> None:
    client = TestClient(console.app)
    login(client, VIEWER)
    html = client.get(f"/events/{0:032x}").text
    shown = re.findall(r'<span class="nationality" title="named by its demonym"><bdi>([^<]*)</bdi></span>', html)
    assert shown == ["invoice[U+202E]txt.exe &lt;script&gt;window.__pwned = 1; alert(1)&lt;/script&gt;"]


def test_an_open_console_serves_loopback_only(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="without a login token"):
        Console(settings, host="0.0.0.0", credentials=Credentials(None, None)).start()


def test_an_open_console_makes_everyone_on_loopback_an_operator(console: Console, settings: Settings) -> None:
    client = TestClient(Console(settings, credentials=Credentials(None, None)).app)
    assert "Acknowledge" in client.get("/alerts").text


def test_one_variable_for_both_tokens_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must differ"):
        load_settings(overrides={"console.viewer_token_env": "X", "console.operator_token_env": "X"}, environ={})


@pytest.mark.parametrize("url, href", [
    ("https://example.org/a?b=1", "https://example.org/a?b=1"), ("http://example.org", "http://example.org"),
    ("javascript:alert(1)", None), ("JaVaScRiPt:alert(1)", None), (" javascript:alert(1)", None),
    ("java\tscript:alert(1)", None), ("data:text/html,<script>", None), ("//evil.example/x", None),
    ("/relative", None), ("https://exa\u202emple.org", None), ("https:alert(1)", None), (None, None), (42, None),
])
def test_safe_href_allows_only_absolute_http_urls(url: object, href: str | None) -> None:
    assert views.safe_href(url) == href


def test_highlight_marks_each_new_sentence_once() -> None:
    text = "One. Two is new. Three. Two is new."
    assert views.highlight(text, ["Two is new.", "missing"]) == [
        ("One. ", False), ("Two is new.", True), (" Three. Two is new.", False)]


def test_payload_preview_decodes_without_trusting() -> None:
    preview = views.payload_preview(hostile.dead_letter())
    assert preview["not_utf8"] and "[U+202E]" in preview["text"] and "<script>" in preview["text"]
    assert views.payload_preview({"original_b64": "@@"})["invalid"]


def test_newswire_console_serves_until_sigterm(tmp_path: Path) -> None:
    """The command alone: prints its URL, serves the login page, stops on SIGTERM with status 0."""
    config = write_config(tmp_path / "newswire.yaml", {"storage.url": f"sqlite:///{tmp_path / 'store.db'}",
                                                        "data_dir": str(tmp_path), "console.port": 0})
    proc = subprocess.Popen([sys.executable, "-m", "newswire.cli", "--config", str(config), "console"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith("NEWSWIRE")})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"console: (http://127\.0\.0\.1:\d+)/ \(no login: loopback only\)", line)
        assert match, line
        reply = httpx.get(match.group(1) + "/login", follow_redirects=False)
        # an open console: everyone on loopback is an operator, so the login page sends them on
        assert (reply.status_code, reply.headers["location"]) == (303, "/alerts")
        assert reply.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_metrics_count_pages_logins_and_actions_without_visitor_text(console: Console) -> None:
    client = TestClient(console.app)
    page = client.get("/login")
    client.post("/login", data={"csrf": csrf_of(page.text), "token": "guess"}, follow_redirects=False)
    login(client, OPERATOR)
    client.get("/alerts")
    client.get("/%3Cscript%3Ealert(1)%3C/script%3E")  # a visitor's path is never a label value
    body = client.get("/metrics").text  # no login: counts only
    assert 'newswire_console_logins_total{outcome="invalid"} 1.0' in body
    assert 'newswire_console_logins_total{outcome="ok"} 1.0' in body
    assert 'newswire_console_requests_total{page="alerts",status="200"} 1.0' in body
    assert 'newswire_console_requests_total{page="other",status="404"} 1.0' in body
    assert "script" not in body and "newswire_console_live_streams 0.0" in body
    csrf = csrf_of(client.get("/alerts").text)
    client.post("/alerts/snooze", data={"csrf": csrf, "rule": "nato-finland", "minutes": "60"}, follow_redirects=False)
    assert 'newswire_console_actions_total{action="snooze"} 1.0' in client.get("/metrics").text


def test_readyz_names_what_is_not_ready_and_healthz_needs_no_login(console: Console) -> None:
    client = TestClient(console.app)
    assert client.get("/healthz").json() == {"alive": True}
    reply = client.get("/readyz")  # the feed was never started here: not connected
    assert reply.status_code == 503
    assert reply.json()["checks"]["store"]["ok"] and not reply.json()["checks"]["feed"]["ok"]
