"""Console figures: page load time over a large store, and alert-to-screen latency in a browser.

Starts its own Kafka broker and Redis, fills a SQLite store with ``--events`` enriched events in
stories of ``--per-story`` events (received over the last 24 h) and some alerts, starts the console
and opens it in Debian's chromium (Playwright). Reports, per page, the median and worst of
``--loads`` loads (navigation to the load event), and the alert-to-screen latency: from just
before an alert is produced to the alerts topic to the moment its card is in the open page's DOM
(a MutationObserver's Date.now(); the same machine's clock), p50/p99/max over ``--alerts`` alerts.
``--screenshots DIR`` also saves PNGs of the main pages (docs/console/).

    python bench/console_load.py [--events 100000] [--alerts 50] [--screenshots docs/console]
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from bench.e2e_throughput import percentile
from connectors.kafka import KafkaBroker, make_consumer, make_producer
from connectors.redis import RedisServer, make_redis
from connectors.sinks import open_store
from connectors.status import ALERT_RULES, ConnectorStatus, StatusBoard, publish
from core.settings import load_settings
from newswire.console.app import Console
from newswire.console.auth import Credentials
from tests.harness import Stack, free_port

#: (title, lead, new detail, entities, places) of the synthetic stories' events.
TOPICS = [
    ("Finland and Sweden hold talks with NATO on membership", "Officials from Helsinki and Stockholm met in Brussels.",
     "Jens Stoltenberg said the door remained open.", ["NATO", "Jens Stoltenberg"], ["Finland", "Sweden", "Brussels"]),
    ("Flooding closes roads across northern Italy", "Heavy rain caused rivers to burst their banks overnight.",
     "Civil protection said 3,000 people had been evacuated.", ["Civil Protection"], ["Emilia-Romagna", "Bologna"]),
    ("Central bank holds rates, signals cuts later this year", "The bank kept its main rate unchanged at 4 percent.",
     "Christine Lagarde said inflation was easing faster than expected.", ["ECB", "Christine Lagarde"], ["Frankfurt"]),
    ("Wildfire forces evacuations near Athens", "Firefighters battled strong winds on the slopes of Mount Parnitha.",
     "Water-dropping aircraft from Cyprus joined the effort.", ["Hellenic Fire Service"], ["Athens", "Attica"]),
    ("Port strike halts container traffic in Rotterdam", "Dock workers walked out after pay talks collapsed.",
     "The union said the strike would last 48 hours.", ["FNV"], ["Rotterdam", "Netherlands"]),
    ("Earthquake of magnitude 6.1 strikes off Hokkaido", "No tsunami warning was issued after the quake.",
     "Power was cut to 12,000 homes in Kushiro.", ["JMA"], ["Hokkaido", "Kushiro", "Japan"]),
]
#: Where the synthetic places are (lat, lon, feature): the story page draws them on its map.
PLACES = {"Finland": (64.0, 26.0, "country"), "Sweden": (62.0, 15.0, "country"), "Brussels": (50.85, 4.35, "city"),
          "Emilia-Romagna": (44.5, 11.0, "admin1"), "Bologna": (44.49, 11.34, "city"), "Frankfurt": (50.11, 8.68, "city"),
          "Athens": (37.98, 23.73, "city"), "Attica": (38.1, 23.8, "admin1"), "Rotterdam": (51.92, 4.48, "city"),
          "Netherlands": (52.25, 5.75, "country"), "Hokkaido": (43.5, 142.5, "admin1"), "Kushiro": (42.98, 144.38, "city"),
          "Japan": (36.0, 138.0, "country")}
SOURCES = ["wire:reuters", "wire:ap", "rss:yle", "rss:bbc-world", "rss:ansa", "http:desk"]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def synthetic_events(count: int, per_story: int, now: datetime) -> list[dict[str, Any]]:
    """`count` EnrichedEvents in stories of `per_story`, received over the 24 h before `now`."""
    rng = random.Random(14)
    events = []
    for story_n in range(max(1, count // per_story)):
        title, lead, detail, entities, places = TOPICS[story_n % len(TOPICS)]
        start = now - timedelta(seconds=rng.uniform(600, 86_000))
        story_id = f"story:{story_n:016x}"
        for k in range(per_story):
            seen = min(now, start + timedelta(seconds=k * rng.uniform(5, 60)))
            text = f"{lead} {detail} Update {k} from the desk." if k else f"{lead} {detail}"
            events.append({
                "schema": "enriched-event/1", "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "source": SOURCES[(story_n + k) % len(SOURCES)], "source_id": f"{story_n}-{k}",
                "url": f"https://news.example/{story_n}/{k}", "title": title if k == 0 else f"{title} (update {k})",
                "published_at": None, "received_at": iso(seen), "processed_at": iso(seen), "text": text,
                "content_hash": uuid.UUID(int=rng.getrandbits(128)).hex, "language": {"code": "en", "confidence": 0.99},
                "duplicate_of": None, "story_key": None, "story_id": story_id,
                "story": {"is_new": k == 0, "score": None if k == 0 else 0.9, "event_count": k + 1,
                          "source_count": min(k + 1, len(SOURCES)), "first_seen": iso(start), "last_seen": iso(seen),
                          "top_entities": [{"id": f"org:{e}", "name": e, "events": k + 1} for e in entities],
                          "top_places": [{"id": f"place:{p}", "name": p, "events": k + 1} for p in places]},
                "novelty": {"ratio": 1.0 if k == 0 else 0.3, "repeated": 0 if k == 0 else 2,
                            "new_sentences": [lead, detail] if k == 0 else [f"Update {k} from the desk."]},
                "entities": [{"id": f"org:{e}", "name": e, "type": "organisation", "mentions": []} for e in entities],
                "places": [{"id": f"place:{p}", "name": p, "country_code": None, "feature": PLACES[p][2],
                            "lat": PLACES[p][0], "lon": PLACES[p][1], "mentions": []} for p in places],
                "origin": {"topic": "news.fragments", "partition": 0, "offset": len(events), "timestamp_ms": 0},
            })
    return events[:count]


def alert(n: int, now: datetime, events: list[dict[str, Any]]) -> dict[str, Any]:
    evidence = [{"event_id": e["event_id"], "title": e["title"], "source": e["source"], "url": e["url"],
                 "received_at": e["received_at"]} for e in events[:3]]
    rule, severity = [("nordics-nato", "critical"), ("europe-floods", "warning"), ("markets", "info")][n % 3]
    return {"schema": "alert/1", "alert_id": uuid.uuid4().hex, "rule": rule, "kind": "threshold", "severity": severity,
            "window": {"start": iso(now - timedelta(minutes=10)), "end": iso(now)}, "fired_at": iso(now),
            "summary": f"{rule}: {len(evidence)} events from {len(evidence)} sources in 10m", "baseline": None,
            "counts": {"events": len(evidence), "stories": 1, "sources": len(evidence)},
            "story_ids": [events[0]["story_id"]], "evidence": evidence, "event_ids": [evidence[0]["event_id"]],
            "destinations": [], "matched": {}}


def dead_letter(n: int) -> dict[str, Any]:
    original = b'{"source": "rss:feed", "text": ' if n % 2 else b"\xff\xfeNot UTF-8 at all"
    return {"schema": "dead-letter/1", "stage": "parse", "reason": "not_json" if n % 2 else "not_utf8",
            "error": "the record is not JSON: unexpected end of data" if n % 2 else "the record is not UTF-8",
            "original_b64": base64.b64encode(original).decode(), "original_size": len(original),
            "origin": {"topic": "news.fragments", "partition": 0, "offset": 100 + n, "timestamp_ms": None},
            "failed_at": iso(datetime.now(UTC))}


def report_status(settings: Any) -> None:
    """What running connectors and the alerts stage would have written to the status hash, for the
    health page: two feeds (one failing), the inbox, HTTP ingest, and the alert rules."""
    board = StatusBoard(settings)
    yle = ConnectorStatus("rss", "yle", "https://feeds.example/yle/world.rss", counts={"items": 412, "failures_in_a_row": 0})
    yle.succeeded()
    bbc = ConnectorStatus("rss", "bbc-world", "https://feeds.example/bbc/world.rss", counts={"items": 97, "failures_in_a_row": 3})
    bbc.failed("HTTPStatusError: Server error '503 Service Unavailable' for url 'https://feeds.example/bbc/world.rss'")
    inbox = ConnectorStatus("inbox", "file:inbox", "var/inbox", counts={"files_done": 18, "files_failed": 1, "fragments": 64})
    inbox.failed("notes.docx -> failed/: unsupported file type .docx: use .txt, .html, .json, .jsonl or .ndjson")
    inbox.last_error_at = iso(datetime.now(UTC) - timedelta(minutes=40))  # an earlier file; good ones since
    inbox.succeeded()
    http = ConnectorStatus("http", "http:ingest", "http://127.0.0.1:8080/fragments",
                           counts={"accepted_posts": 233, "fragments": 1480, "refused_4xx": 2})
    http.succeeded()
    for status in (yle, bbc, inbox, http):
        board.report(status)
    board.stop()
    client = make_redis(settings.redis.url)
    publish(client, settings.redis.namespace, ALERT_RULES, {
        "path": "config/alerts.yaml", "rules": 4, "ok": True, "error": None, "checked_at": iso(datetime.now(UTC)),
        "loaded_at": iso(datetime.now(UTC) - timedelta(hours=2)), "reloads": 1, "failures": 0, "worker": "pipeline:1"})
    client.close()


def chromium() -> str:
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    sys.exit("Debian's chromium is not installed (make system-deps)")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--per-story", type=int, default=20)
    ap.add_argument("--loads", type=int, default=5, help="loads per page")
    ap.add_argument("--alerts", type=int, default=50, help="alerts produced for the latency figure")
    ap.add_argument("--screenshots", type=Path, default=None, help="save PNGs of the main pages here")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="newswire-console-bench-"))
    redis = RedisServer(tmp / "redis", port=free_port()).start()
    base = {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}", "kafka.embedded.controller_port": free_port(),
            "data_dir": str(tmp), "redis.url": redis.url}
    now = datetime.now(UTC)
    with KafkaBroker(load_settings(overrides=base, environ={})):
        stack = Stack(base, tmp)
        events = synthetic_events(args.events, args.per_story, now)
        t = time.monotonic()
        store = open_store(stack.settings.storage_url)
        for i in range(0, len(events), 2000):
            store.add_many(events[i:i + 2000])
            store.flush()
        store.add_alerts([alert(n, now - timedelta(minutes=5 * n), events[n * args.per_story:]) for n in range(12)])
        store.flush()
        store.close()
        print(f"store: {len(events)} events in {len(events) // args.per_story} stories, "
              f"written in {time.monotonic() - t:.1f} s")
        producer = make_producer(stack.settings)
        for n in range(3):
            producer.send(stack.settings.kafka.topics.dlq.name, orjson.dumps(dead_letter(n)))
        # The pipeline's fragment counts of the last ten minutes, for the health page's throughput.
        minute = now.replace(second=0, microsecond=0)
        for m in range(10, 0, -1):
            for k, source in enumerate(SOURCES):
                producer.send(stack.settings.kafka.topics.stats.name, orjson.dumps({
                    "schema": "fragment-count/1", "source": source, "fragments": 40 + 7 * k + m,
                    "window_start": iso(minute - timedelta(minutes=m)), "window_end": iso(minute - timedelta(minutes=m - 1))}))
        # Fragments on the raw topic and a commit by the pipeline's group, so the health page has lag to show.
        raw = stack.settings.kafka.topics.fragments
        for n in range(40):
            producer.send(raw.name, b"{}", partition=n % raw.partitions)
        producer.flush()
        group = make_consumer(stack.settings, group_id=stack.settings.kafka.consumer_group)
        group.commit({TopicPartition(raw.name, p): OffsetAndMetadata(10 - 3 * p, "", -1) for p in range(raw.partitions)})
        group.close()
        report_status(stack.settings)
        console = Console(stack.settings, port=0, credentials=Credentials("viewer", "operator"))
        console.start()
        while console.feed.error is not None:
            time.sleep(0.05)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium(),
                                                     args=["--no-sandbox"] if os.geteuid() == 0 else [])
                page = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 860}).new_page()
                page.goto("/login")
                page.fill("#token", "operator")
                page.click("button[type=submit]")
                page.wait_for_url("**/alerts")
                biggest = max(events, key=lambda e: e["story"]["event_count"])["story_id"]
                pages = {"alerts": "/alerts", "stories": "/stories", "story": f"/stories/{biggest}",
                         "dead-letters": "/dead-letters", "health": "/health"}
                print(f"page load over {args.loads} loads (navigation start -> load event):")
                for name, path in pages.items():
                    times = []
                    for _ in range(args.loads):
                        t = time.monotonic()
                        page.goto(path)
                        times.append((time.monotonic() - t) * 1000)
                    print(f"  {name:<13} {path:<40} median {percentile(times, .5):6.0f} ms, max {max(times):6.0f} ms")
                    if args.screenshots:
                        args.screenshots.mkdir(parents=True, exist_ok=True)
                        if name == "dead-letters":
                            page.click("details summary")
                        # the health page in full: connectors and alert rules sit below the fold
                        page.screenshot(path=str(args.screenshots / f"{name}.png"), full_page=name == "health")
                page.goto("/alerts")
                page.wait_for_selector("#live[data-state='live']")
                page.evaluate("""() => { window.__seen = {};
                    new MutationObserver(() => { for (const a of document.querySelectorAll('article.alert'))
                        if (!(a.dataset.alertId in window.__seen)) window.__seen[a.dataset.alertId] = Date.now(); })
                    .observe(document.getElementById('alerts'), {childList: true}); }""")
                latencies = []
                for n in range(args.alerts):
                    doc = alert(n, datetime.now(UTC), events[(n % 50) * args.per_story:])
                    sent_ms = time.time() * 1000
                    producer.send(stack.settings.kafka.topics.alerts.name, orjson.dumps(doc)).get(10)
                    page.wait_for_selector(f"article[data-alert-id='{doc['alert_id']}']", timeout=10_000)
                    latencies.append(page.evaluate(f"window.__seen['{doc['alert_id']}']") - sent_ms)
                    time.sleep(0.1)
                print(f"alert to screen over {len(latencies)} alerts (produce -> card in the open page's DOM): "
                      f"p50 {percentile(latencies, .5):.0f} ms, p99 {percentile(latencies, .99):.0f} ms, "
                      f"max {max(latencies):.0f} ms")
                browser.close()
        finally:
            producer.close()
            console.stop()
    redis.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
