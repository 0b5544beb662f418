"""End to end over TCP against the real broker: raw topic -> pipeline on Prism -> enriched topic,
DLQ topic and SQLite; then a SIGKILL mid-stream and a restart."""

from __future__ import annotations

import itertools
import signal
import sqlite3
import time
from collections import Counter
from typing import Any

import orjson
import pytest

from connectors.kafka import make_producer
from connectors.sinks import open_store
from connectors.sources.base import fragment_key
from newswire.cli import DEMO_FRAGMENTS
from newswire.workers import PipelineWorkers
from tests.harness import Stack, free_port, has_sources, scrape, series

pytestmark = pytest.mark.e2e


def article(i: int, source: str = "test:wire") -> dict:
    return {"source": source, "id": f"a-{i}",
            "text": f"Item {i}: the harbour authority said on Tuesday that ferry services would resume "
                    f"after the storm, and that {i} vessels were waiting outside the port."}


def rows(stack: Stack) -> list[tuple]:
    conn = sqlite3.connect(stack.settings.sqlite_path)
    try:
        return conn.execute("SELECT event_id, source_id, language, duplicate_of, body FROM events").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def wait_rows(stack: Stack, n: int, timeout_s: float) -> list[tuple]:
    deadline = time.monotonic() + timeout_s
    found = rows(stack)
    while len(found) < n and time.monotonic() < deadline:
        time.sleep(0.5)
        found = rows(stack)
    return found


def test_samples_and_bad_input_flow_to_enriched_dlq_and_sqlite(make_stack: Any, samples: dict[str, str]) -> None:
    stack = make_stack(**{"pipeline.health_port": free_port()})  # and GET /metrics on it, at the end
    bad = [
        b"this is not json",
        b'{"source": "x", "text": "caf\xff invalid utf-8"}',
        orjson.dumps({"source": "x", "txt": "wrong field name"}),
        orjson.dumps({"source": "x", "text": "   \n  "}),
        orjson.dumps({"source": "x", "text": "y" * (stack.settings.pipeline.max_fragment_bytes + 10)}),
        orjson.dumps(["a", "list"]),
    ]
    good = [{"source": "sample:article", "id": "russia-warns", "text": samples["russia-warns-finland-sweden"]},
            {"source": "sample:liveblog", "id": "liveblog-2-26", "text": samples["liveblog-fragment-2-26"]}]
    stack.start_pipeline()
    stack.produce([*bad[:3], good[0], *bad[3:], good[1]])
    # Good input keeps flowing after bad input: a second batch after the DLQ records.
    stack.produce([article(i) for i in range(5)])

    enriched = stack.consume("enriched", lambda r: len(r) >= 7, timeout_s=90)
    dlq = stack.consume("dlq", lambda r: len(r) >= 6, timeout_s=90)
    assert len(enriched) == 7, stack.pipeline_log()
    reasons = sorted(d["reason"] for d in dlq)
    assert reasons == ["empty_text", "not_json", "not_utf8", "oversized", "schema", "schema"], reasons
    for d in dlq:
        assert d["error"] and d["stage"] in ("parse", "validate") and d["original_b64"]
    assert {d["error"].split(":")[0] for d in dlq if d["reason"] == "schema"} >= {"fragment"}

    by_id = {e["source_id"]: e for e in enriched}
    art, blog = by_id["russia-warns"], by_id["liveblog-2-26"]
    assert art["language"]["code"] == "en" and blog["language"]["code"] == "en"
    assert blog["marker"] == {"part": 2, "total": 26}
    assert not blog["text"].lstrip().startswith("2/26")
    assert "Read more at" not in art["text"]
    assert "@nato" in blog["text"].lower()
    assert "\u201c" not in art["text"] and "\u00a0" not in art["text"]
    # Each repeated photo caption appears once: no line equals the line before it.
    lines = [ln for ln in art["text"].split("\n") if ln.strip()]
    assert all(a != b for a, b in itertools.pairwise(lines))

    # Enrichment (issue: entities and geocoded places) on the real article.
    names = {e["name"] for e in art["entities"]}
    assert {"Vladimir Putin", "Maria Zakharova", "Joe Biden", "Jens Stoltenberg", "NATO", "Kremlin"} <= names, names
    kremlin = next(e for e in art["entities"] if e["name"] == "Kremlin")
    assert kremlin["type"] == "org"
    places = {p["name"]: p for p in art["places"]}
    for name in ("Finland", "Sweden", "Kyiv", "Kaliningrad", "Black Sea", "Brussels"):
        assert name in places, sorted(places)
        assert places[name]["id"] and -90 <= places[name]["lat"] <= 90
    assert "Vladimir" not in places
    for mention in (m for e in art["entities"] for m in e["mentions"]):
        assert art["text"][mention["start"]:mention["end"]] == mention["text"]

    # Stories (issue: dedup, stories, novelty): two outlets' versions of one event join one story.
    assert art["story_id"] == blog["story_id"]
    # They may sit on different partitions, so either can come first.
    first, second = sorted((art, blog), key=lambda e: e["story"]["event_count"])
    assert first["story"]["is_new"] and not second["story"]["is_new"]
    assert second["story"]["event_count"] == 2 and second["story"]["source_count"] == 2
    assert {e["story_id"] for e in enriched if e["source_id"].startswith("a-")}.isdisjoint({art["story_id"]})
    assert second["novelty"]["ratio"] > 0.5 and second["novelty"]["new_sentences"]

    stored = wait_rows(stack, 7, 30)
    assert len(stored) == 7
    assert {r[1] for r in stored} == {"russia-warns", "liveblog-2-26", *(f"a-{i}" for i in range(5))}
    body = orjson.loads(next(r[4] for r in stored if r[1] == "russia-warns"))
    assert body["event_id"] == art["event_id"] and body["text"] == art["text"]

    # /metrics of the running job (pipelines/metrics.py): Prism answers live, so the counts of the
    # records above show up while the job still runs, and the committed offsets catch up (lag 0).
    url = f"http://127.0.0.1:{stack.settings.pipeline.health_port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        m = scrape(url)
        lag = series(m, "newswire_pipeline_consumer_lag", "partition")
        written = series(m, "newswire_pipeline_counter_total", "stage", "name").get(("sinks", "events_written"), 0)
        if (written == 7 and lag and not any(lag.values())) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert series(m, "newswire_pipeline_source_up", "source") == {("job_service",): 1, ("beam_metrics",): 1,
                                                                  ("kafka",): 1}
    assert series(m, "newswire_pipeline_job_state", "state")[("RUNNING",)] == 1
    assert series(m, "newswire_pipeline_supervisor_state", "state")[("running",)] == 1
    assert written == 7 and len(lag) == 4 and sum(lag.values()) == 0, lag
    dead = series(m, "newswire_pipeline_dead_letters_total", "stage", "reason")
    assert dead == dict(Counter((d["stage"], d["reason"]) for d in dlq)), dead
    latency = series(m, "newswire_pipeline_stage_latency_seconds_count", "stage")
    assert latency[("normalise",)] == 7 and latency[("language",)] == 7, latency
    total = series(m, "newswire_pipeline_stage_latency_seconds_sum", "stage")[("language",)]
    fastest = series(m, "newswire_pipeline_stage_latency_min_seconds", "stage")[("language",)]
    slowest = series(m, "newswire_pipeline_stage_latency_max_seconds", "stage")[("language",)]
    assert 0 < fastest <= total / 7 <= slowest < 60


def test_exact_duplicates_point_at_the_first_copy(stack: Stack) -> None:
    stack.start_pipeline()
    original = {"source": "wire:a", "id": "1", "text": "Officials said the bridge will reopen on Friday after repairs."}
    stack.produce([original])
    first = stack.consume("enriched", lambda r: len(r) >= 1, timeout_s=60)
    # Same text, re-wrapped and re-quoted by another outlet; and a true re-delivery of the same item.
    copy = {"source": "wire:b", "id": "9", "text": "Officials  said the bridge\nwill reopen on Friday after repairs. "}
    stack.produce([copy, original])
    events = stack.consume("enriched", lambda r: len(r) >= 3, timeout_s=60)
    ids = {e["source_id"]: e for e in events}
    assert ids["9"]["duplicate_of"] == first[0]["event_id"]
    assert ids["1"]["duplicate_of"] is None
    stored = wait_rows(stack, 2, 20)
    assert len(stored) == 2  # the re-delivered original upserts onto its own row
    # The item republished with new sentences (a live blog's update): not a duplicate but an update
    # of it, in its story, with only the new sentences as its novelty (issue 15).
    added = ["Traffic will use the old ferry until then.", "The council will decide on tolls next month."]
    stack.produce([{**original, "text": " ".join([original["text"], *added])}], key=lambda i: fragment_key(original))
    # Found by its text: the enriched topic has several partitions, so arrival order is not produce order.
    got = stack.consume("enriched", lambda r: any(added[0] in e["text"] for e in r), timeout_s=60)
    update = next(e for e in got if added[0] in e["text"])
    assert (update["update_of"], update["duplicate_of"], update["dedup_kind"]) == (first[0]["event_id"], None, "update")
    assert update["story_id"] == first[0]["story_id"]
    assert update["novelty"]["new_sentences"] == added


STORY = ("Rescue teams reached the flooded villages north of the river on Thursday morning after the "
         "water level dropped by almost a metre overnight, regional officials said. About two hundred "
         "residents had spent the night on rooftops and in the upper floors of the school, which the "
         "army supplied with boats, blankets and drinking water. The regional governor said the dam "
         "upstream was holding and that no further evacuations were planned for the weekend. Farmers "
         "warned that the harvest in the valley had been largely destroyed by the floods.")


def test_near_duplicates_across_pipeline_restarts(stack: Stack) -> None:
    proc = stack.start_pipeline()
    stack.produce([{"source": "wire:a", "id": "flood-1", "text": STORY}])
    first = stack.consume("enriched", lambda r: len(r) >= 1, timeout_s=90)[0]
    stack.kill(proc)
    # The index is in Redis, so a restarted pipeline still knows the first article.
    stack.start_pipeline()
    edited = STORY.replace("about two hundred", "about three hundred").replace("About two", "About three")
    excerpt = "2/5\n" + " ".join(STORY.split(". ")[1:4]) + "."
    stack.produce([{"source": "site:b", "id": "b-77", "text": edited},
                   {"source": "blog:c", "id": "c-2", "text": excerpt}])
    events = {e["source_id"]: e for e in stack.consume("enriched", has_sources("b-77", "c-2"), timeout_s=90)}
    assert events["b-77"]["near_duplicate_of"] == first["event_id"], events["b-77"]
    assert events["b-77"]["dedup_kind"] == "near_duplicate" and events["b-77"]["similarity"] > 0.6
    assert events["c-2"]["near_duplicate_of"] == first["event_id"], events["c-2"]
    # Half the article: similar enough to count as a near-duplicate, or else contained in it.
    assert events["c-2"]["dedup_kind"] in ("contained", "near_duplicate")
    assert events["c-2"]["similarity"] >= 0.45 or events["c-2"]["containment"] >= 0.6
    assert first["near_duplicate_of"] is None and first["duplicate_of"] is None


def stored_source_ids(url: str) -> list[str]:
    """source_id of every row in the store at ``url`` (SQLite or PostgreSQL), read through the store."""
    store = open_store(url)
    try:
        return [e["source_id"] for e in store.events()]
    finally:
        store.close()


# One run, on PostgreSQL with SIGTERM (how a deployment stops it: `docker stop`, systemd, Ctrl-C);
# SIGKILL on the SQLite store is tests/test_chaos.py's SIGKILL test (suite time).
@pytest.mark.parametrize(("store", "sig"), [pytest.param("postgresql", signal.SIGTERM, id="postgresql-sigterm")])
def test_stop_mid_stream_then_restart_keeps_every_fragment_exactly_once(
        make_stack: Any, store: str, sig: int, request: pytest.FixtureRequest) -> None:
    overrides = {"storage.url": request.getfixturevalue("postgres_url")} if store == "postgresql" else {}
    stack = make_stack(**overrides)
    url = stack.settings.storage_url
    total = 1200  # ~15 s of the shipped pipeline's throughput here: the stop lands mid-stream
    proc = stack.start_pipeline()
    stack.produce([article(i) for i in range(total // 2)], key=lambda i: str(i).encode())
    # Stop once part of the stream is stored, while the rest is still being produced and processed.
    deadline = time.monotonic() + 120
    while len(stored_source_ids(url)) < 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    stack.produce([article(i) for i in range(total // 2, total)], key=lambda i: str(i).encode())
    stack.kill(proc, sig)  # waits up to 30 s for the process group, then SIGKILLs it
    if sig == signal.SIGTERM:  # a clean stop: the job cancelled, the process exits 0 by itself
        assert proc.returncode == 0, f"exit status {proc.returncode}\n{stack.pipeline_log()}"
    stored_at_stop = len(stored_source_ids(url))
    assert 0 < stored_at_stop < total, f"the stop should land mid-stream\n{stack.pipeline_log()}"

    stack.start_pipeline()
    deadline = time.monotonic() + 180
    ids = stored_source_ids(url)
    while len(ids) < total and time.monotonic() < deadline:
        time.sleep(0.5)
        ids = stored_source_ids(url)
    assert len(ids) == total, f"{len(ids)} rows after restart, want {total}\n{stack.pipeline_log()}"
    assert len(set(ids)) == total
    assert set(ids) == {f"a-{i}" for i in range(total)}
    # Nothing more arrives later: the pipeline resumed from committed offsets, no runaway replays.
    time.sleep(2)
    assert len(stored_source_ids(url)) == total


def test_two_pipeline_workers_splitting_the_partitions_share_dedup_and_stories(make_stack: Any) -> None:
    """`newswire up --workers 2`'s two jobs (newswire/workers.py): worker 0 reads partitions 0 and 2,
    worker 1 reads 1 and 3. A copy that lands on the other worker is still a duplicate, and joins the
    original's story, because both use one Redis."""
    a = make_stack()
    pool = PipelineWorkers(a.config_path, 4, 2, a.tmp / "workers").start()
    logs = lambda: "\n".join(path.read_text(errors="replace")[-3000:]
                             for path in (pool.launcher_log, pool.log_path(0), pool.log_path(1)) if path.exists())
    try:
        producer = make_producer(a.settings)
        edited = STORY.replace("about two hundred", "about three hundred").replace("About two", "About three")
        producer.send(a.settings.kafka.topics.fragments.name, partition=0,
                      value=orjson.dumps({"source": "wire:a", "id": "on-a", "text": STORY}))
        producer.flush()
        first = a.consume("enriched", lambda r: len(r) >= 1, timeout_s=90)
        assert first, logs()
        producer.send(a.settings.kafka.topics.fragments.name, partition=3,
                      value=orjson.dumps({"source": "site:b", "id": "on-b", "text": edited}))
        producer.flush()
        producer.close()
        events = {e["source_id"]: e for e in a.consume("enriched", lambda r: len(r) >= 2, timeout_s=90)}
        assert set(events) == {"on-a", "on-b"}, logs()
        assert events["on-a"]["origin"]["partition"] == 0 and events["on-b"]["origin"]["partition"] == 3
        assert events["on-b"]["near_duplicate_of"] == events["on-a"]["event_id"]
        assert events["on-b"]["story_id"] == events["on-a"]["story_id"]
        assert events["on-b"]["story"]["event_count"] == 2
        assert not pool.failed, logs()
    finally:
        pool.stop()


def test_the_demo_storm_reports_in_three_languages_are_one_story(stack: Stack) -> None:
    """Issue 15: what `newswire up --demo` ingests; its English, German and French storm reports
    (three sources) come out with one story id."""
    demo = [orjson.loads(line) for line in DEMO_FRAGMENTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    stack.start_pipeline()
    stack.produce(demo)
    wanted = ("wa-001", "ag-5512", "af-9001")
    events = {e["source_id"]: e for e in stack.consume("enriched", has_sources(*wanted, "wa-002"), timeout_s=120)}
    storm = [events[k] for k in wanted]
    assert [e["language"]["code"] for e in storm] == ["en", "de", "fr"], stack.pipeline_log()
    assert len({e["story_id"] for e in storm}) == 1, [(e["source_id"], e["story"]) for e in storm]
    assert {e["source"] for e in storm} == {"demo:wire-a", "demo:agentur", "demo:agence"}
    assert events["wa-002"]["story_id"] != storm[0]["story_id"]  # the energy bill is another story
