"""Both stores (SQLite and a real PostgreSQL) against one set of expectations: idempotent event
upserts, stories that never move backwards, alerts, migrations that rerun and upgrade, replay reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors.sinks import EventQuery, EventStore, open_store
from connectors.sinks.postgres import MIGRATIONS as POSTGRES_MIGRATIONS
from connectors.sinks.rows import parse_time
from connectors.sinks.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from connectors.sinks.sqlite import SQLiteSink


def event(i: int, **extra: Any) -> dict[str, Any]:
    """A minimal EnrichedEvent with one entity and one place."""
    return {
        "schema": "enriched-event/1", "event_id": f"{i:032x}", "source": "wire:a", "source_id": f"a-{i}",
        "url": None, "title": f"Item {i}", "published_at": None,
        "received_at": f"2026-03-01T10:{i % 60:02d}:00.000Z", "processed_at": "2026-03-01T11:00:00.000Z",
        "text": f"Item {i} text.", "content_hash": f"{i:032x}", "language": {"code": "en", "confidence": 0.99},
        "duplicate_of": None, "story_key": None,
        "entities": [{"id": "person:jens-stoltenberg", "name": "Jens Stoltenberg", "type": "person",
                      "mentions": [{"start": 0, "end": 4, "text": "Jens"}]}],
        "places": [{"id": "geonames:660013", "name": "Finland", "country_code": "FI", "lat": 64.0, "lon": 26.0,
                    "feature": "country", "mentions": [{"start": 5, "end": 12, "text": "Finland"}]}],
        "origin": {"topic": "news.fragments", "partition": 0, "offset": i, "timestamp_ms": 1_772_359_200_000},
        **extra,
    }


def story(count: int, first: str, last: str, top: str) -> dict[str, Any]:
    return {"is_new": count == 1, "score": 0.8, "event_count": count, "source_count": count,
            "first_seen": first, "last_seen": last, "top_entities": [{"id": top, "name": top, "events": count}],
            "top_places": []}


def alert(alert_id: str, summary: str) -> dict[str, Any]:
    return {"alert_id": alert_id, "rule": "nordics", "kind": "burst", "severity": "high",
            "window": {"start": "2026-03-01T10:00:00Z", "end": "2026-03-01T10:10:00Z"},
            "fired_at": "2026-03-01T10:10:05.120Z", "summary": summary, "story_ids": ["s1", "s2"],
            "event_ids": ["e1"], "counts": {"events": 12, "stories": 2, "sources": 3}, "baseline": None,
            "destinations": []}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    s = open_store(store_url)
    yield s
    s.close()


def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one read query on either store (placeholders: ? for both; translated for PostgreSQL)."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()
    with psycopg.connect(url) as pg:
        return pg.execute(sql.replace("?", "%s"), args).fetchall()  # type: ignore[arg-type]


def test_events_upsert_by_id_in_one_batch_and_across_flushes(store: EventStore, store_url: str) -> None:
    store.add_many([event(1), event(2), event(1)])
    assert store.flush() == 3
    store.add(event(2, language={"code": "fi", "confidence": 0.9}, story_id="s9"))
    store.flush()
    rows = query(store_url, "SELECT event_id, language, story_id FROM events ORDER BY event_id")
    assert rows == [(f"{1:032x}", "en", None), (f"{2:032x}", "fi", "s9")]
    assert store.flush() == 0  # nothing buffered, nothing written


def test_entities_and_places_are_compact_json_columns(store: EventStore, store_url: str) -> None:
    store.add(event(1))
    store.flush()
    if store_url.startswith("postgresql://"):
        # The query the GIN (jsonb_path_ops) indexes serve.
        hits = query(store_url, "SELECT event_id FROM events WHERE entities @> ?::jsonb AND places @> ?::jsonb",
                     '[{"id": "person:jens-stoltenberg"}]', '[{"id": "geonames:660013"}]')
        assert hits == [(f"{1:032x}",)]
        entities = query(store_url, "SELECT entities FROM events")[0][0]
    else:
        import orjson

        entities = orjson.loads(query(store_url, "SELECT entities FROM events")[0][0])
    assert entities == [{"id": "person:jens-stoltenberg", "name": "Jens Stoltenberg", "type": "person"}]


def test_story_upserts_never_move_backwards(store: EventStore, store_url: str) -> None:
    newer = event(3, story_id="s1", story=story(3, "2026-03-01T10:00:00.000Z", "2026-03-01T12:00:00.000Z", "new"))
    store.add(newer)
    store.flush()
    # A replay of the story's first event: an older, smaller view of the same story.
    older = event(1, story_id="s1", story=story(1, "2026-03-01T09:30:00Z", "2026-03-01T10:00:00Z", "old"))
    store.add(older)
    store.flush()
    (first, last, count, sources, top), = query(
        store_url, "SELECT first_seen, last_seen, event_count, source_count, top_entities FROM stories")
    assert parse_time(first) == parse_time("2026-03-01T09:30:00Z")  # the earliest first_seen wins
    assert parse_time(last) == parse_time("2026-03-01T12:00:00Z")
    assert (count, sources) == (3, 3)
    assert "new" in str(top) and "old" not in str(top)
    assert query(store_url, "SELECT count(*) FROM events WHERE story_id = 's1'") == [(2,)]


def test_stories_merge_within_one_batch(store: EventStore, store_url: str) -> None:
    store.add_many([event(1, story_id="s1", story=story(1, "2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z", "a")),
                    event(2, story_id="s1", story=story(2, "2026-03-01T10:00:00Z", "2026-03-01T10:05:00Z", "b")),
                    event(3)])  # no story: no stories row
    store.flush()
    assert query(store_url, "SELECT story_id, event_count FROM stories") == [("s1", 2)]


def test_alerts_upsert_by_alert_id(store: EventStore, store_url: str) -> None:
    store.add_alerts([alert("a1", "first"), alert("a2", "other")])
    store.flush()
    store.add_alerts([alert("a1", "rewritten")])
    store.flush()
    rows = query(store_url, "SELECT alert_id, rule, kind, summary FROM alerts ORDER BY alert_id")
    assert rows == [("a1", "nordics", "burst", "rewritten"), ("a2", "nordics", "burst", "other")]
    (start, fired), = query(store_url, "SELECT window_start, fired_at FROM alerts WHERE alert_id = 'a1'")
    assert parse_time(start) == parse_time("2026-03-01T10:00:00Z")
    assert parse_time(fired) == parse_time("2026-03-01T10:10:05.120Z")


def test_ops_queries_list_alerts_since_and_top_stories(store: EventStore) -> None:
    older = {**alert("a0", "older"), "fired_at": "2026-03-01T09:00:00Z"}
    store.add_alerts([older, alert("a1", "first"), {**alert("a2", "other"), "rule": "kyiv"}])
    store.add_many([event(1, story_id="story:aaaaaaaaaaaaaaaa",
                          story=story(1, "2026-03-01T10:01:00.000Z", "2026-03-01T10:01:00.000Z", "org:nato")),
                    event(2, story_id="story:bbbbbbbbbbbbbbbb",
                          story=story(3, "2026-03-01T09:00:00.000Z", "2026-03-01T10:02:00.000Z", "org:eu")),
                    event(3, story_id="story:cccccccccccccccc",
                          story=story(5, "2026-03-01T08:00:00.000Z", "2026-03-01T08:30:00.000Z", "org:un"))])
    store.flush()
    assert [a["alert_id"] for a in store.alerts(since="2026-03-01T10:00:00Z")] == ["a1", "a2"]
    assert [a["alert_id"] for a in store.alerts(since="2026-03-01T10:00:00Z", rule="kyiv")] == ["a2"]
    assert len(store.alerts()) == 3
    top = store.top_stories(since="2026-03-01T10:00:00Z")
    assert [(t["story_id"], t["source_count"]) for t in top] == [("story:bbbbbbbbbbbbbbbb", 3),
                                                               ("story:aaaaaaaaaaaaaaaa", 1)]
    assert top[0]["top_entities"][0]["id"] == "org:eu"
    assert parse_time(top[0]["last_seen"]) == parse_time("2026-03-01T10:02:00Z")
    assert [t["story_id"] for t in store.top_stories(limit=1)] == ["story:cccccccccccccccc"]


def test_console_queries_stories_a_story_its_events_and_size(store: EventStore) -> None:
    a, b, c = "story:aaaaaaaaaaaaaaaa", "story:bbbbbbbbbbbbbbbb", "story:cccccccccccccccc"
    # event(i) is received at 10:<i>; story a has 3 events from 10:05 on, story b 5 events, 2 of them
    # since 10:05; story c's one event arrived at 10:09 but was published (story time) a month before
    store.add_many([event(i, story_id=a, story=story(n, "2026-03-01T10:05:00Z", f"2026-03-01T10:{i:02d}:00Z", "org:a"))
                    for n, i in enumerate((5, 6, 7), start=1)]
                   + [event(i, story_id=b, story=story(n, "2026-03-01T10:00:00Z", f"2026-03-01T10:{i:02d}:00Z", "org:b"))
                      for n, i in enumerate((1, 2, 3, 8, 9), start=1)]
                   + [event(69, story_id=c, story=story(1, "2026-02-01T10:00:00Z", "2026-02-01T10:00:00Z", "org:c"))])
    store.flush()
    growing = store.growing_stories("2026-03-01T10:05:00Z")
    assert [(g["story_id"], g["recent_events"], g["event_count"]) for g in growing] == [(a, 3, 3), (b, 2, 5), (c, 1, 1)]
    assert growing[0]["top_entities"][0]["id"] == "org:a"
    assert [g["story_id"] for g in store.growing_stories("2026-03-01T10:05:00+01:00")] == [b, a, c]  # 09:05 UTC
    assert [g["story_id"] for g in store.growing_stories("2026-03-01T10:05:00Z", limit=1)] == [a]
    assert store.growing_stories("2026-03-01T11:00:00Z") == []
    # biggest: every story written since (updated_at is the time of the write), most sources first
    written = datetime.now(UTC) - timedelta(minutes=1)
    assert [g["story_id"] for g in store.biggest_stories(written.isoformat())] == [b, a, c]
    assert store.biggest_stories((written + timedelta(hours=1)).isoformat()) == []
    # events per 5-minute period from 10:00, three periods: b has 10:01-10:03, 10:08, 10:09; c 10:09
    volume = store.story_volume([b, c, "story:none"], "2026-03-01T10:00:00Z", 300, 3)
    assert volume == {b: [3, 2, 0], c: [0, 1, 0], "story:none": [0, 0, 0]}
    assert store.story_volume([b], "2026-03-01T10:00:00Z", 300, 1) == {b: [5]}  # later periods fold into the last
    assert store.story_volume([], "2026-03-01T10:00:00Z", 300, 3) == {}
    assert store.story(b) is not None and store.story(b)["event_count"] == 5  # type: ignore[index]
    assert store.story("story:none") is None
    assert [e["source_id"] for e in store.story_events(b)] == ["a-1", "a-2", "a-3", "a-8", "a-9"]
    assert [e["source_id"] for e in store.story_events(b, limit=2)] == ["a-1", "a-2"]
    assert store.event(f"{7:032x}")["story_id"] == a  # type: ignore[index]
    assert store.event("nope") is None
    assert store.size_bytes() > 0


def test_late_merge_folds_the_absorbed_story_into_the_survivor(store: EventStore, store_url: str) -> None:
    a, b, c = "story:aaaaaaaaaaaaaaaa", "story:bbbbbbbbbbbbbbbb", "story:cccccccccccccccc"
    # a: events 1-2 from 09:00 on; b: events 3-5; event 6 joins b and merges a into it (its summary
    # already adds the two up, as the stories stage writes it)
    a_events = [event(i, story_id=a, story=story(i, "2026-03-01T09:00:00Z", f"2026-03-01T10:{i:02d}:00Z", "org:a"))
                for i in (1, 2)]
    b_events = [event(i, story_id=b, story=story(i - 2, "2026-03-01T10:03:00Z", f"2026-03-01T10:{i:02d}:00Z", "org:b"))
                for i in (3, 4, 5)]
    merging = event(6, story_id=b, story={**story(6, "2026-03-01T10:03:00Z", "2026-03-01T10:06:00Z", "org:b"),
                                          "merged_from": [a]})
    for batch in (a_events, b_events, [merging]):
        store.add_many(batch)
        store.flush()

    def check(survivor: str, absorbed: list[str], count: int) -> None:
        assert [s["story_id"] for s in store.top_stories()] == [survivor]
        assert [s["story_id"] for s in store.biggest_stories("2000-01-01T00:00:00Z")] == [survivor]
        assert [(g["story_id"], g["recent_events"]) for g in store.growing_stories("2026-03-01T10:00:00Z")] == [
            (survivor, count)]
        assert store.story_volume([survivor], "2026-03-01T10:00:00Z", 3600, 1) == {survivor: [count]}
        for sid in (survivor, *absorbed):
            got = store.story(sid)
            assert got is not None
            assert (got["story_id"], got["merged_from"], got["event_count"]) == (survivor, absorbed, count)
            assert got["first_seen"].startswith("2026-03-01T09:00:00")  # the absorbed story's start
            assert [e["source_id"] for e in store.story_events(sid)] == [f"a-{i}" for i in range(1, count + 1)]

    check(b, [a], 6)
    # at-least-once: the merging event and an old event of the absorbed story again, in one batch
    store.add_many([merging, a_events[0]])
    store.flush()
    check(b, [a], 6)
    # b is merged into c later (c's events list both ids); then an old event of b that names a is replayed
    store.add(event(7, story_id=c, story={**story(7, "2026-03-01T09:00:00Z", "2026-03-01T10:07:00Z", "org:c"),
                                          "merged_from": [a, b]}))
    store.flush()
    store.add(merging)
    store.flush()
    check(c, [a, b], 7)
    assert query(store_url, "SELECT story_id, merged_into FROM story_merges ORDER BY story_id") == [(a, c), (b, c)]


def test_a_merge_recorded_before_its_chain_is_kept_one_hop_deep(store: EventStore, store_url: str) -> None:
    a, b, c = "story:aaaaaaaaaaaaaaaa", "story:bbbbbbbbbbbbbbbb", "story:cccccccccccccccc"
    # b absorbed a, then c absorbed b, but c's event listed only b (merged_from keeps at most 16 ids)
    store.add(event(1, story_id=b, story={**story(2, "2026-03-01T10:00:00Z", "2026-03-01T10:01:00Z", "b"),
                                          "merged_from": [a]}))
    store.flush()
    store.add(event(2, story_id=c, story={**story(3, "2026-03-01T10:00:00Z", "2026-03-01T10:02:00Z", "c"),
                                          "merged_from": [b]}))
    store.flush()
    assert query(store_url, "SELECT story_id, merged_into FROM story_merges ORDER BY story_id") == [(a, c), (b, c)]
    assert store.story(a)["story_id"] == c  # type: ignore[index]
    assert [s["story_id"] for s in store.top_stories()] == [c]


def test_alert_acknowledgements_keep_the_first(store: EventStore) -> None:
    store.add_alerts([alert("a1", "one"), alert("a2", "two")])
    store.flush()
    assert store.alert_acks(["a1", "a2"]) == {}
    store.acknowledge_alert("a1", "operator")
    store.acknowledge_alert("a1", "someone else")
    acks = store.alert_acks(["a1", "a2", "a3"])
    assert list(acks) == ["a1"] and acks["a1"]["by"] == "operator"
    assert parse_time(acks["a1"]["at"]) is not None
    assert store.alert_acks([]) == {}


def test_search_events_by_entity_place_country_language_source_and_time(store: EventStore) -> None:
    sweden = [{"id": "geonames:2661886", "name": "Sweden", "country_code": "SE", "lat": 62.0, "lon": 15.0,
               "feature": "country", "mentions": []}]
    store.add_many([event(1), event(2, source="wire:b"), event(3, language={"code": "fi", "confidence": 0.9}),
                    event(4, entities=[], places=sweden)])
    store.flush()

    def ids(**filters: str) -> list[int]:
        return [int(e["event_id"], 16) for e in store.search_events(EventQuery(**filters))]
    assert ids() == [4, 3, 2, 1]  # newest received first
    assert ids(entity="person:jens-stoltenberg") == ids(entity="STOLTEN") == [3, 2, 1]
    assert ids(place="swed") == ids(country="se") == [4]
    assert ids(place="geonames:660013", language="fi") == [3]
    assert ids(source="wire:b") == [2]
    assert ids(since="2026-03-01T10:02:00Z", until="2026-03-01T10:04:00Z") == [3, 2]
    assert ids(entity="%") == [] and ids(entity="nobody") == []  # no wildcards: a name is a substring
    assert len(store.search_events(EventQuery(), limit=2)) == 2


def test_rule_snoozes_last_until_their_time_and_the_latest_wins(store: EventStore) -> None:
    store.snooze_rule("nordics", "2026-03-01T11:00:00Z", "operator")
    store.snooze_rule("kyiv", "2026-03-01T10:30:00+01:00", "operator")  # 09:30 UTC
    snoozes = store.rule_snoozes("2026-03-01T10:00:00Z")
    assert list(snoozes) == ["nordics"] and parse_time(snoozes["nordics"]["until"]) == parse_time("2026-03-01T11:00:00Z")
    store.snooze_rule("nordics", "2026-03-01T10:00:00Z", "operator")  # ended
    assert store.rule_snoozes("2026-03-01T10:00:00Z") == {}
    assert list(store.rule_snoozes("2026-03-01T09:00:00Z")) == ["kyiv", "nordics"]  # both still on at 09:00


def test_events_read_back_for_replay(store: EventStore) -> None:
    store.add_many([event(i) for i in range(5)] + [event(9, source="wire:b")])
    store.flush()
    assert [e["source_id"] for e in store.events()] == ["a-0", "a-1", "a-2", "a-3", "a-4", "a-9"]
    assert [e["source_id"] for e in store.events(source="wire:b")] == ["a-9"]
    since = [e["source_id"] for e in store.events(since="2026-03-01T10:02:00Z", until="2026-03-01T10:04:00Z")]
    assert since == ["a-2", "a-3"]
    assert len(list(store.events(limit=2))) == 2


def test_migrations_rerun_without_change(store_url: str) -> None:
    for _ in range(3):
        s = open_store(store_url)
        s.add(event(1))
        s.flush()
        s.close()
    if store_url.startswith("postgresql://"):
        assert query(store_url, "SELECT version FROM schema_migrations ORDER BY version") == [
            (n,) for n in range(1, len(POSTGRES_MIGRATIONS) + 1)]
    else:
        assert query(store_url, "PRAGMA user_version") == [(len(SQLITE_MIGRATIONS),)]
    assert query(store_url, "SELECT count(*) FROM events") == [(1,)]


def test_sqlite_store_of_the_first_schema_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SQLITE_MIGRATIONS[0])
    conn.execute("PRAGMA user_version=1")
    conn.execute("INSERT INTO events (event_id, source, received_at, processed_at, language, content_hash, "
                 "kafka_topic, kafka_partition, kafka_offset, body) VALUES ('old', 's', 't', 't', 'en', 'h', "
                 "'news.fragments', 0, 0, '{}')")
    conn.close()
    sink = SQLiteSink(path)
    sink.add(event(1, story_id="s1", story=story(1, "2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z", "a")))
    sink.flush()
    sink.close()
    url = f"sqlite:///{path}"
    assert query(url, "SELECT event_id, story_id FROM events ORDER BY event_id") == [
        (f"{1:032x}", "s1"), ("old", None)]
    assert query(url, "SELECT count(*) FROM stories") == [(1,)]


def test_open_store_names_the_key_for_an_unknown_scheme() -> None:
    with pytest.raises(ValueError, match=r"storage\.url"):
        open_store("mysql://localhost/db")


def test_a_row_the_store_refuses_costs_only_itself(postgres_url: str) -> None:
    """PostgreSQL cannot hold NUL in text or JSONB (Parse replaces it, but a store must not fail a
    whole batch on one row): the batch is written row by row and the bad one is listed in refused."""
    store = open_store(postgres_url)
    try:
        bad = event(2, title="nul\x00here")
        store.add_many([event(1), bad, event(3)])
        store.add_alerts([alert("a1", "fine")])
        assert store.flush() == 3
        assert set(store.refused) == {bad["event_id"]}
        assert "0x00" in store.refused[bad["event_id"]] or "\\u0000" in store.refused[bad["event_id"]]
        assert {r[0] for r in query(postgres_url, "SELECT event_id FROM events")} == {event(1)["event_id"],
                                                                                     event(3)["event_id"]}
        assert store.flush() == 0 and store.refused == {}  # nothing left buffered
    finally:
        store.close()


def test_an_unreachable_store_keeps_its_buffer_for_the_next_flush(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    store.add(event(1))
    real = store._write
    calls = {"n": 0}

    def locked(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database is locked")
        real(*args)
    store._write = locked  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError) as err:
        store.flush()
    assert store.unavailable(err.value)
    assert store.flush() == 1 and store.refused == {}
    store.close()
