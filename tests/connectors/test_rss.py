"""RssSource against the real broker, with real RSS 2.0 and Atom files served over HTTP on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.sources.rss import RssSource, entry_fragment
from core.settings import RssFeed
from tests.harness import Stack, scrape, series, status_records, wait_for

pytestmark = pytest.mark.e2e

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"


class FeedServer:
    """Serves feed files with ETag / Last-Modified and answers conditional GETs with 304."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, dict[str, str], int]] = []
        self.conditional = True
        self.fail_with: int | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = server.files.get(self.path)
                etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
                if server.fail_with:
                    status = server.fail_with
                elif body is None:
                    status = 404
                elif server.conditional and self.headers.get("If-None-Match") == etag:
                    status = 304
                else:
                    status = 200
                server.requests.append((self.path, dict(self.headers), status))
                self.send_response(status)
                if status == 200 and body is not None:
                    kind = "application/atom+xml" if self.path.endswith(".atom") else "application/rss+xml"
                    self.send_header("Content-Type", kind)
                    self.send_header("ETag", etag)
                    self.send_header("Last-Modified", formatdate(1749528000, usegmt=True))
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    server.files["/world.rss"] = (FEEDS / "world.rss.xml").read_bytes()
    server.files["/live.atom"] = (FEEDS / "live.atom.xml").read_bytes()
    yield server
    server.close()


def feeds(server: FeedServer) -> tuple[RssFeed, ...]:
    return (RssFeed("world", f"{server.url}/world.rss", 60), RssFeed("nordic", f"{server.url}/live.atom", 60))


def poll_once(stack: Stack, server: FeedServer) -> dict[str, int]:
    source = RssSource(stack.settings, feeds(server)).open()
    try:
        return {f.name: source.poll(f) for f in source.feeds}
    finally:
        source.stop()


def test_rss_and_atom_items_are_produced_exactly_once_across_restarts(stack: Stack, feed_server: FeedServer) -> None:
    assert poll_once(stack, feed_server) == {"world": 3, "nordic": 3}
    # Restart with validators honoured: conditional GET, 304, nothing new.
    assert poll_once(stack, feed_server) == {"world": 0, "nordic": 0}
    conditional = [r for r in feed_server.requests if r[2] == 304]
    assert len(conditional) == 2 and all(r[1].get("If-None-Match") for r in conditional)
    # Restart against a server that ignores validators: the GUID memory alone keeps items out.
    feed_server.conditional = False
    assert poll_once(stack, feed_server) == {"world": 0, "nordic": 0}

    records = stack.consume("fragments", lambda rs: len(rs) >= 6, timeout_s=20)
    assert Counter((r["source"], r["id"]) for r in records) == {
        ("rss:world", "gazette-1001"): 1, ("rss:world", "https://gazette.example/world/cafes"): 1,
        ("rss:world", "https://gazette.example/world/power"): 1, ("rss:nordic", "urn:nordic:live:post-1"): 1,
        ("rss:nordic", "urn:nordic:live:post-2"): 1, ("rss:nordic", "urn:nordic:news:ministers"): 1}
    by_id = {r["id"]: r for r in records}
    cafes = by_id["https://gazette.example/world/cafes"]
    assert cafes["text"] == ("Owners of the seafront caf\u00e9s said the damage ran to thousands of euros.\n\n"
                             "Insurers were sending assessors on Wednesday.")
    assert cafes["title"] == "Caf\u00e9 owners count the cost" and cafes["encoding"] == "iso-8859-1"
    assert cafes["published_at"] == "2025-06-09T23:30:00Z"  # "Mon, 09 Jun 2025 18:30:00 EST"
    assert by_id["https://gazette.example/world/power"]["published_at"] == "2025-06-09T19:15:00Z"
    ferries = by_id["gazette-1001"]
    assert ferries["author"] == "Ann Reporter" and ferries["url"] == "https://gazette.example/world/ferries"
    assert ferries["language"] == "en-gb" and ferries["content_type"] == "text/html"
    post2 = by_id["urn:nordic:live:post-2"]
    assert (post2["part"], post2["parts"]) == (2, 2)
    assert post2["published_at"] == "2025-06-10T06:30:00Z"
    assert post2["story_key"] == by_id["urn:nordic:live:post-1"]["story_key"] == "rss:nordic|https://nordic.example/live/summit"
    assert by_id["urn:nordic:news:ministers"].get("story_key") is None


def test_a_corrected_item_is_produced_again(stack: Stack, feed_server: FeedServer) -> None:
    assert poll_once(stack, feed_server)["world"] == 3
    feed_server.files["/world.rss"] = feed_server.files["/world.rss"].replace(
        b"Twelve vessels were waiting", b"Fourteen vessels were waiting")
    assert poll_once(stack, feed_server)["world"] == 1
    records = stack.consume("fragments", lambda rs: len(rs) >= 7, timeout_s=20)
    texts = [r["text"] for r in records if r["id"] == "gazette-1001"]
    assert len(texts) == 2 and "Fourteen vessels" in texts[1]


def test_failures_back_off_and_show_in_health(stack: Stack, feed_server: FeedServer) -> None:
    feed_server.fail_with = 500
    feed = RssFeed("world", f"{feed_server.url}/world.rss", 10)
    source = RssSource(stack.settings, (feed,)).open()
    try:
        assert source.poll(feed) == -1
        first = source.health()[0]
        assert first.consecutive_failures == 1 and "500" in (first.last_error or "")
        source._board.flush()  # type: ignore[union-attr]  # what the board's thread does every 2 s
        status = status_records(stack.settings)["connector:rss:world"]
        assert status["kind"] == "rss" and status["target"] == feed.url and status["last_success"] is None
        assert "500" in status["last_error"] and status["counts"] == {"items": 0, "failures_in_a_row": 1}
        assert 15 < first.next_poll_in_s <= 20  # interval 10 s doubled
        assert source.poll(feed) == -1
        assert 35 < source.health()[0].next_poll_in_s <= 40
        assert source.poll_due() == {}  # not due yet: backing off
        feed_server.fail_with = None
        assert source.poll(feed) == 3
        healthy = source.health()[0]
        assert healthy.consecutive_failures == 0 and healthy.last_success and healthy.items_emitted == 3
    finally:
        source.stop()  # writes the board's last records
    status = status_records(stack.settings)["connector:rss:world"]
    assert status["last_success"] == healthy.last_success and status["counts"]["items"] == 3
    assert "500" in status["last_error"]  # the last error stays, with its time, after a success
    assert (stack.tmp / "connectors" / "rss.sqlite").is_file()


def test_the_background_poller_publishes_without_help(stack: Stack, feed_server: FeedServer) -> None:
    source = RssSource(stack.settings, feeds(feed_server))
    source.start()
    try:
        records = stack.consume("fragments", lambda rs: len(rs) >= 6, timeout_s=20)
    finally:
        source.stop()
    assert len(records) == 6


def test_the_poller_serves_its_metrics_and_readiness(stack: Stack, feed_server: FeedServer) -> None:
    """/metrics counts each feed's fragments and polls; /readyz goes 503 once every feed has failed
    for longer than unready_after_s, and 200 again when one succeeds."""
    c = stack.settings.connectors
    served = replace(c.rss, health_port=0, unready_after_s=0.3)
    source = RssSource(replace(stack.settings, connectors=replace(c, rss=served)), feeds(feed_server))
    source.start()
    try:
        assert source.metrics_server is not None and source.metrics_server.url in source.describe()
        url = source.metrics_server.url
        base = url.removesuffix("/metrics")
        accepted = lambda: series(scrape(url), "newswire_source_fragments_total", "name", "outcome")
        wait_for(lambda: accepted()[("world", "accepted")] == 3 and accepted()[("nordic", "accepted")] == 3)
        m = scrape(url)
        assert series(m, "newswire_source_polls_total", "name", "outcome") == {
            ("world", "ok"): 1, ("world", "failed"): 0, ("nordic", "ok"): 1, ("nordic", "failed"): 0}
        assert all(v > 1.7e9 for v in series(m, "newswire_source_last_success_timestamp_seconds", "name").values())
        assert httpx.get(f"{base}/healthz").json() == {"alive": True, "connector": "rss"}
        assert httpx.get(f"{base}/readyz").status_code == 200
        feed_server.fail_with = 500
        assert [source.poll(f) for f in source.feeds] == [-1, -1]  # the thread waits 60 s: the test polls
        failures = series(scrape(url), "newswire_source_failures_in_a_row", "name")
        assert failures == {("world",): 1, ("nordic",): 1}
        time.sleep(0.4)
        down = httpx.get(f"{base}/readyz")
        assert down.status_code == 503 and "every rss poll has failed" in down.json()["reason"]
        assert "500" in down.json()["failing"]["world"]["error"]
        feed_server.fail_with = None
        assert source.poll(source.feeds[0]) == 0  # unchanged feed, but a successful poll
        up = httpx.get(f"{base}/readyz").json()
        assert up["ready"] is True and list(up["failing"]) == ["nordic"] and up["dependencies"]["kafka"]["ok"]
    finally:
        source.stop()


@pytest.mark.parametrize("pub, published_at, precision", [
    ("Tue, 10 Jun 2025", "2025-06-10T00:00:00Z", "day"),
    ("Tue, 10 Jun 2025 00:00:00 GMT", "2025-06-10T00:00:00Z", None),
])
def test_an_item_dated_without_a_time_is_marked_as_a_whole_day(pub: str, published_at: str, precision: str | None) -> None:
    import feedparser

    parsed = feedparser.parse(f"<rss version='2.0'><channel><title>t</title><item><title>A</title><guid>g</guid>"
                              f"<description>Body.</description><pubDate>{pub}</pubDate></item></channel></rss>")
    _, fragment = entry_fragment(RssFeed("t", "https://feeds.example/t.xml"), parsed, parsed.entries[0])
    assert fragment["published_at"] == published_at
    assert fragment.get("published_precision") == precision
