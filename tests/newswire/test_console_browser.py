"""The console in a real browser (Debian's chromium driven by Playwright) on the real stack: the
embedded Kafka broker, a SQLite store, the console's server. One browser for the module.

An alert produced to the alerts topic shows on the open alerts page within 2 s, hostile records
render inert on every page (no script runs, no javascript: link), and login, roles and CSRF hold.
And once on the whole stack with the pipeline running: the two shared sample texts, produced to the
raw topic, fire an alert that arrives live and show as one story with their places on the map.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from connectors.kafka import make_consumer, make_producer
from connectors.sinks import open_store
from newswire.console.app import Console
from newswire.console.auth import Credentials
from tests.harness import NATO_FINLAND_RULES, Stack
from tests.newswire import hostile

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.e2e

VIEWER, OPERATOR = "viewer-" + uuid.uuid4().hex, "operator-" + uuid.uuid4().hex


def chromium_path() -> str:
    """Debian's chromium binary (the /usr/bin/chromium wrapper script only adds start-up time)."""
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("Debian's chromium is not installed (make system-deps installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        # As root (containers, CI) chromium starts only without its sandbox.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def console(broker_overrides: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A console on a free port over its own topics and a SQLite store holding hostile events and alerts."""
    stack = Stack(broker_overrides, tmp_path_factory.mktemp("console"))
    store = open_store(stack.settings.storage_url)
    store.add_many([hostile.event(0), hostile.event(1)])
    store.add_alerts([hostile.alert("b" * 32)])
    store.flush()
    store.close()
    served = Console(stack.settings, port=0, credentials=Credentials(VIEWER, OPERATOR))
    served.start()
    deadline = time.monotonic() + 30
    while served.feed.error is not None:  # until the feed is assigned the alerts and dlq topics
        assert time.monotonic() < deadline, served.feed.error
        time.sleep(0.05)
    try:
        yield served
    finally:
        served.stop()


def produce(console: Console, role: str, doc: dict[str, Any]) -> None:
    producer = make_producer(console.settings)
    try:
        producer.send(getattr(console.settings.kafka.topics, role).name, orjson.dumps(doc)).get(10)
    finally:
        producer.close()


def logged_in(browser: Any, console: Console, token: str) -> tuple[Any, Any, list[str]]:
    """A fresh browser context logged in with `token`: its context, page, and the dialogs any script opened."""
    context = browser.new_context(base_url=console.url)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/alerts")
    assert page.url.endswith("/login")  # not logged in yet
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/alerts")
    return context, page, dialogs


def assert_inert(page: Any, dialogs: list[str]) -> None:
    """No hostile script ran and no link leads to a script URL."""
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    assert page.locator("a[href^='javascript:' i], [onerror], [onclick], img").count() == 0


def test_an_alert_shows_on_the_open_page_within_2s_and_renders_inert(browser: Any, console: Console) -> None:
    context, page, dialogs = logged_in(browser, console, OPERATOR)
    try:
        page.wait_for_selector("#live[data-state='live']", timeout=10_000)
        alert_id = uuid.uuid4().hex
        topic = console.settings.kafka.topics.alerts.name
        producer = make_producer(console.settings)  # connected first: the 2 s start at the send
        producer.partitions_for(topic)
        try:
            produced = time.monotonic()
            producer.send(topic, orjson.dumps(hostile.alert(alert_id))).get(10)
            card = page.wait_for_selector(f"article[data-alert-id='{alert_id}']", timeout=2_000)
            shown_s = time.monotonic() - produced
        finally:
            producer.close()
        assert shown_s < 2.0
        assert card is not None
        text = card.inner_text()
        assert "<script>" in text and "invoice[U+202E]txt.exe" in text  # shown as text, not run
        assert card.query_selector("span.unsafe-url") is not None  # the javascript: evidence URL
        assert card.query_selector("a[href='https://example.org/a/1']") is not None
        assert card.query_selector("form.ack") is not None  # an operator may acknowledge
        assert_inert(page, dialogs)
    finally:
        context.close()


def test_hostile_records_render_inert_on_every_page(browser: Any, console: Console) -> None:
    produce(console, "dlq", hostile.dead_letter())
    context, page, dialogs = logged_in(browser, console, VIEWER)
    try:
        for path in ("/alerts", "/stories", f"/stories/{hostile.STORY_ID}", f"/events/{0:032x}", f"/events/{1:032x}",
                     "/events?entity=ltenberg", "/health"):
            reply = page.goto(path)
            assert reply is not None and reply.status == 200, path
            assert_inert(page, dialogs)
        # the health page's figures come from the real broker, Redis and store: 3 fragments on
        # partition 0, the pipeline's group committed 1 of them
        fragments = TopicPartition(console.settings.kafka.topics.fragments.name, 0)
        producer = make_producer(console.settings)
        for n in range(3):
            producer.send(fragments.topic, b"{}", partition=0)
        producer.close()
        group = make_consumer(console.settings, group_id=console.settings.kafka.consumer_group)
        group.commit({fragments: OffsetAndMetadata(1, "", -1)})
        group.close()
        assert page.goto("/health") is not None and page.locator("table.lag tbody tr").count() == 4
        assert page.locator("table.lag tbody tr").first.inner_text().split() == ["0", "3", "1", "2"]
        assert "used" in page.inner_text(".redis-memory") and "on disk" in page.inner_text(".store-size")
        timeline = page.goto(f"/stories/{hostile.STORY_ID}")
        assert timeline is not None and "script-src 'self'" in timeline.headers["content-security-policy"]
        assert page.locator("mark", has_text=hostile.NEW_SENTENCE).count() == 2
        deadline = time.monotonic() + 10
        page.goto("/dead-letters")
        while page.locator("article.dead-letter").count() == 0:
            assert time.monotonic() < deadline, "the dead letter never showed"
            time.sleep(0.2)
            page.goto("/dead-letters")
        page.click("details summary")
        assert "<script>" in page.inner_text("pre.payload")
        assert_inert(page, dialogs)
    finally:
        context.close()


def test_login_roles_and_csrf_are_enforced(browser: Any, console: Console) -> None:
    context = browser.new_context(base_url=console.url)
    page = context.new_page()
    try:
        page.goto("/login")
        page.fill("#token", "not-a-token")
        page.click("button[type=submit]")
        assert "not valid" in page.inner_text("main")
    finally:
        context.close()

    context, page, _ = logged_in(browser, console, VIEWER)
    try:
        assert page.locator("form.ack").count() == 0  # a viewer cannot acknowledge
        status = page.evaluate("""async () => {
            const csrf = document.querySelector('[data-csrf]').dataset.csrf;
            const reply = await fetch('/alerts/' + 'b'.repeat(32) + '/ack', {method: 'POST', body: new URLSearchParams({csrf})});
            return reply.status; }""")
        assert status == 403
    finally:
        context.close()

    context, page, _ = logged_in(browser, console, OPERATOR)
    try:
        without_token = page.evaluate("""async () => (await fetch('/alerts/' + 'b'.repeat(32) + '/ack',
            {method: 'POST', body: new URLSearchParams({csrf: 'forged'})})).status""")
        assert without_token == 403
        # A page elsewhere posting to the console: the session cookie (SameSite=Strict) stays home.
        context.route("http://attacker.invalid/", lambda route: route.fulfill(content_type="text/html", body=(
            f'<form method="post" action="{console.url}/alerts/{"b" * 32}/ack">'
            '<input type="hidden" name="csrf" value="guessed"><button id="go">win a prize</button></form>')))
        page.goto("http://attacker.invalid/")
        page.click("#go")
        page.wait_for_load_state()
        page.goto("/alerts")
        card = page.locator(f"article[data-alert-id='{'b' * 32}']")
        assert card.count() == 1 and card.locator(".acked").count() == 0  # still logged in; not acknowledged
        card.locator("form.ack button").click()
        page.wait_for_url("**/alerts")
        assert "acknowledged by operator" in page.locator(f"article[data-alert-id='{'b' * 32}']").inner_text()
        # snoozing the rule mutes its alerts, the stored ones and the next one that arrives live
        page.locator(f"article[data-alert-id='{'b' * 32}'] form.snooze button").first.click()
        page.wait_for_url("**/alerts")
        assert page.locator(f"article.snoozed[data-alert-id='{'b' * 32}']").count() == 1
        page.wait_for_selector("#live[data-state='live']")
        alert_id = uuid.uuid4().hex
        produce(console, "alerts", hostile.alert(alert_id))
        live = page.wait_for_selector(f"article[data-alert-id='{alert_id}']", timeout=5_000)
        assert live is not None and "snoozed" in (live.get_attribute("class") or "")
        assert live.query_selector("form.snooze") is None and live.query_selector("form.ack") is not None
    finally:
        context.close()


def test_an_operator_resubmits_a_dead_letter_to_the_raw_topic(browser: Any, console: Console) -> None:
    raw = console.settings.kafka.topics.fragments.name
    letter = hostile.dead_letter(raw)
    produce(console, "dlq", letter)
    context, page, dialogs = logged_in(browser, console, OPERATOR)
    try:
        deadline = time.monotonic() + 10
        page.goto("/dead-letters")
        while page.locator("form.resubmit").count() == 0:
            assert time.monotonic() < deadline, "no re-submittable dead letter showed"
            time.sleep(0.2)
            page.goto("/dead-letters")
        page.locator("form.resubmit button").first.click()
        page.wait_for_url("**/dead-letters")
        assert "re-submitted at" in page.inner_text("main")
        assert_inert(page, dialogs)
    finally:
        context.close()
    original = base64.b64decode(letter["original_b64"])
    consumer = make_consumer(console.settings, group_id=None)
    partitions = [TopicPartition(raw, p) for p in sorted(consumer.partitions_for_topic(raw) or ())]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    values: list[bytes] = []
    deadline = time.monotonic() + 10
    try:
        while original not in values and time.monotonic() < deadline:
            values += [r.value for records in consumer.poll(timeout_ms=200).values() for r in records]
    finally:
        consumer.close()
    assert original in values


def test_the_pipeline_turns_the_two_samples_into_one_story_with_its_places_on_the_map(
        browser: Any, make_stack: Any, samples: dict[str, str]) -> None:
    """The real stack end to end: raw topic -> pipeline (Prism) -> store and alerts topic -> console
    -> chromium. The alert arrives on the open page without a reload; the story page shows both
    texts in one story and their places as markers on the offline map, with no CSP violation."""
    stack = make_stack(**{"alerts.rules_path": str(NATO_FINLAND_RULES)})
    console = Console(stack.settings, port=0, credentials=Credentials(VIEWER, OPERATOR))
    console.start()
    context = None
    try:
        stack.start_pipeline()
        context, page, dialogs = logged_in(browser, console, VIEWER)
        violations: list[str] = []
        page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text else None)
        map_replies: list[Any] = []
        page.on("response", lambda reply: map_replies.append(reply) if reply.url.endswith("/map/world.svg") else None)
        page.wait_for_selector("#live[data-state='live']", timeout=30_000)
        stack.produce([{"source": "outlet:a", "id": "a1", "text": samples["russia-warns-finland-sweden"]},
                       {"source": "outlet:b", "id": "b1", "text": samples["liveblog-fragment-2-26"]}])
        # the second source fires nato-finland: it reaches the open page live (Prism's start-up included)
        card = page.wait_for_selector("article[data-alert-id]", timeout=180_000)
        assert card is not None and "nato-finland" in card.inner_text(), stack.pipeline_log()
        store = open_store(stack.settings.storage_url)
        try:
            deadline = time.monotonic() + 60
            while len(rows := list(store.events())) < 2:
                assert time.monotonic() < deadline, stack.pipeline_log()
                time.sleep(0.5)
        finally:
            store.close()
        assert {r["source_id"] for r in rows} == {"a1", "b1"}
        (story_id,) = {r["story_id"] for r in rows}  # one story
        page.goto("/stories")
        link = page.locator(f"a[href='/stories/{story_id.replace(':', '%3A')}']").first
        link.click()
        page.wait_for_url("**/stories/**")
        assert page.locator("ol.timeline > li").count() == 2
        assert "2 sources" in page.inner_text("p.meta")
        places = page.inner_text("figcaption.places")
        assert "Finland" in places and "Sweden" in places, places
        markers = page.locator("svg.world g.marker")
        assert markers.count() >= 4  # Finland, Sweden, Russia, Ukraine, Kyiv...
        finland = page.locator("svg.world g.marker", has=page.locator("title", has_text="Finland:")).first
        assert finland.locator("circle").count() == 1 and (finland.locator("title").text_content() or "").startswith("Finland: 2 events")
        # the outlines came from the console itself, as an image, and nothing broke the CSP
        page.wait_for_load_state("networkidle")
        assert [r.status for r in map_replies] == [200] and map_replies[0].headers["content-type"] == "image/svg+xml"
        assert page.evaluate("document.querySelector('svg.world').getBoundingClientRect().width") > 300
        assert violations == []
        assert_inert(page, dialogs)
    finally:
        if context is not None:
            context.close()
        console.stop()
