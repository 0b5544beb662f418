"""Near-duplicate detection with its state in a real redis-server: RedisDedupStore and DeduplicateWithRedis."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
import redis
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from connectors.redis import RedisServer, make_redis
from core.settings import DedupSettings
from pipelines.stages.dedup.logic import (
    BucketEntry,
    DedupIndex,
    fingerprint,
    key_kind,
    kind_entry_size,
    source_tag,
)
from pipelines.stages.dedup.state import (
    RedisDedupStore,
    _decode_any,
    decode_entries,
    encode_entry,
    event_handle,
    key_slot,
)
from pipelines.stages.dedup.transform import (
    DEDUP_FIELDS,
    DeduplicateWithRedis,
    _JudgeWithRedis,
    event_fingerprint,
)
from tests.harness import REPO, free_port, pids_with
from tests.paths import ARTICLES
from tests.pipelines.beam_events import EventsOf, by_title, make_event

RECORD_KEYS = ("_start", "_value", "_key")  # what the raw record gives every in-flight event

T0 = 1_646_118_000.0  # 2022-03-01T07:00Z


# ------------------------------------------------------------------ fixtures: a real redis-server

@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = make_redis(redis_server.url)
    yield c
    c.close()


def ev(name: str, minutes: float, offset: int, title: str | None = None, **fields: Any) -> dict[str, Any]:
    return make_event(name, T0 + minutes * 60, offset, title=title or name, **fields)


def worker(redis_server: RedisServer, redis_namespace: str, settings: DedupSettings | None = None) -> _JudgeWithRedis:
    """The DoFn as a worker runs it: its own instance and client (setup() as Beam calls it)."""
    fn = _JudgeWithRedis(redis_server.url, settings or DedupSettings(), True, True, redis_namespace)
    fn.setup()
    return fn


def judged(fn: _JudgeWithRedis, event: dict[str, Any]) -> dict[str, Any]:
    (out,) = list(fn.process(event))
    return out


def redis_pids(port: int) -> list[int]:
    return pids_with(b"redis-server", f":{port}".encode())


# ------------------------------------------------------------------ same verdicts as DedupIndex

def event_stream(seed: int) -> list[tuple[str, str, float, dict[str, str]]]:
    """(event_id, text, ts, fingerprint kw): every fixture article, the shared samples, random word
    edits, first halves (excerpts) and same-URL posts, shuffled, one minute apart."""
    rng = random.Random(seed)
    names = sorted(p.name for p in ARTICLES.glob("*.txt")) + ["shared:russia-warns-finland-sweden.txt",
                                                               "shared:liveblog-fragment-2-26.txt"]
    texts = [make_event(n, 0, 0)["text"] for n in names]
    out: list[tuple[str, dict[str, str]]] = [(t, {}) for t in texts]
    for t in texts:
        toks = t.split(" ")
        for _ in range(2):
            edited = list(toks)
            for _ in range(rng.randrange(1, 4)):
                edited[rng.randrange(len(edited))] = rng.choice(["harbour", "ministry", "said", "Tuesday"])
            out.append((" ".join(edited), {}))
        paras = t.split("\n\n")
        if len(paras) > 2:
            out.append(("\n\n".join(paras[: len(paras) // 2]), {}))
    # one page: versions from its source (an update, nothing new), another source's copy of the URL
    out.append((texts[0] + " Updated.", {"url": "https://example.test/a/?utm_source=x", "source": "daily"}))
    out.append((texts[1] + " Corrected.", {"url": "https://www.example.test/a", "source": "daily"}))
    out.append((texts[1] + " Checked.", {"url": "https://example.test/a#top", "source": "daily"}))
    out.append((texts[2] + " Copied.", {"url": "https://example.test/a", "source": "aggregator"}))
    rng.shuffle(out)
    return [(f"{i:032x}", text, T0 + 60 * i, kw) for i, (text, kw) in enumerate(out)]


@pytest.mark.parametrize("settings", [DedupSettings(), DedupSettings(max_bucket_entries=2, ttl_s=20 * 60)],
                         ids=["defaults", "small-buckets-short-horizon"])
def test_same_verdicts_as_dedup_index(client: redis.Redis, redis_namespace: str, settings: DedupSettings) -> None:
    """The small-buckets case exercises full buckets and the event-time horizon (events are 1 min apart)."""
    index, store = DedupIndex(settings), RedisDedupStore(client, settings, redis_namespace.encode())
    stream = event_stream(seed=3)
    kinds = set()
    for eid, text, ts, kw in stream:
        fp = fingerprint(text, settings=settings, **kw)
        want, got = index.observe(eid, fp, ts).match, store.observe(eid, fp, ts).match
        assert got == want, (eid, text[:60])
        kinds.add(want.kind if want else None)
    assert {None, "exact", "near_duplicate", "contained"} <= kinds
    assert {"same_url", "update"} <= kinds or settings.ttl_s < 3600  # the URL posts are far apart in the stream


def test_replay_gets_its_first_verdict_and_never_matches_itself(client: redis.Redis, redis_namespace: str) -> None:
    store = RedisDedupStore(client, namespace=redis_namespace.encode())
    article = ev("turku-port-fire.txt", 0, 0)
    stream = [article, ev("turku-port-fire.repost.txt", 1, 1), ev("turku-port-fire.edited.txt", 2, 2),
              ev("turku-port-fire.excerpt-3-26.txt", 3, 3)]

    def observe(e: dict[str, Any]) -> Any:
        return store.observe(e["event_id"], event_fingerprint(e, store.settings, True, True),
                             e["origin"]["timestamp_ms"] / 1000).match

    first = [observe(e) for e in stream]
    assert first[0] is None and first[1].event_id == article["event_id"]
    # replayed in reverse, after later copies were stored (DedupIndex would now match the
    # original to its own re-post: see pipelines/stages/dedup/transform.py)
    assert [observe(e) for e in reversed(stream)] == list(reversed(first))


# ------------------------------------------------------------------ the DoFn: field contract, workers

def test_repost_edit_excerpt_and_shared_samples(redis_server: RedisServer, redis_namespace: str) -> None:
    fn = worker(redis_server, redis_namespace)
    article = ev("turku-port-fire.txt", 1, 1)
    for e in (ev("helsinki-tram-line.txt", 0, 0), article, ev("tallinn-ferry-strike.txt", 2, 2)):
        assert judged(fn, e)["dedup_kind"] is None
    repost = judged(fn, ev("turku-port-fire.repost.txt", 10, 3))
    assert (repost["duplicate_of"], repost["near_duplicate_of"], repost["dedup_kind"]) == (
        article["event_id"], None, "exact")
    edited = judged(fn, ev("turku-port-fire.edited.txt", 11, 4))
    assert (edited["duplicate_of"], edited["near_duplicate_of"]) == (None, article["event_id"])
    assert edited["dedup_kind"] == "near_duplicate" and edited["similarity"] > 0.85
    excerpt = judged(fn, ev("turku-port-fire.excerpt-3-26.txt", 12, 5))
    assert (excerpt["near_duplicate_of"], excerpt["dedup_kind"]) == (article["event_id"], "contained")
    assert excerpt["containment"] >= 0.8 and excerpt["similarity"] < 0.45
    other = judged(fn, ev("turku-port-fire.other-outlet.txt", 13, 6))
    assert all(other[f] is None for f in DEDUP_FIELDS)
    # the two real samples: the same event from two outlets, not duplicates of each other
    for i, name in enumerate(("shared:russia-warns-finland-sweden.txt", "shared:liveblog-fragment-2-26.txt")):
        out = judged(fn, make_event(name, T0 + 3600 * (i + 1), 10 + i, title=name))
        assert all(out[f] is None for f in DEDUP_FIELDS), name
    assert all(k in repost for k in RECORD_KEYS) and repost["_value"] == b"raw"
    fn.teardown()


def test_two_workers_sharing_one_redis_catch_a_duplicate_across_them(redis_server: RedisServer,
                                                                     redis_namespace: str) -> None:
    a, b = worker(redis_server, redis_namespace), worker(redis_server, redis_namespace)
    article = ev("turku-port-fire.txt", 0, 0, url="https://turku-daily.example/news/port-fire/")
    assert judged(a, article)["dedup_kind"] is None
    assert judged(b, ev("turku-port-fire.repost.txt", 1, 1))["duplicate_of"] == article["event_id"]
    same_url = judged(b, ev("helsinki-tram-line.txt", 2, 2, url="https://www.turku-daily.example/news/port-fire",
                            source="aggregator"))  # another source's event with its URL
    assert (same_url["dedup_kind"], same_url["duplicate_of"]) == ("same_url", article["event_id"])
    assert judged(a, ev("turku-port-fire.edited.txt", 3, 3))["near_duplicate_of"] == article["event_id"]
    a.teardown()
    b.teardown()


def test_runs_in_a_beam_pipeline_and_state_outlives_it(redis_server: RedisServer, redis_namespace: str) -> None:
    """Two pipeline runs on the default runner: the second finds the first run's events."""
    transform = EventsOf(DeduplicateWithRedis(redis_server.url, namespace=redis_namespace))
    originals = [ev("helsinki-tram-line.txt", 0, 0), ev("turku-port-fire.txt", 1, 1)]
    with TestPipeline() as p:
        out = p | beam.Create(originals) | transform
        assert_that(out, lambda got: assert_no_duplicates(list(got), 2))
    article_id = originals[1]["event_id"]
    later = [ev("turku-port-fire.repost.txt", 10, 2), ev("turku-port-fire.edited.txt", 11, 3),
             ev("turku-port-fire.excerpt-3-26.txt", 12, 4), ev("tallinn-ferry-strike.txt", 13, 5)]

    def check(got: list[dict[str, Any]]) -> None:
        by = by_title(list(got))
        assert by["turku-port-fire.repost.txt"]["duplicate_of"] == article_id
        assert by["turku-port-fire.edited.txt"]["near_duplicate_of"] == article_id
        assert by["turku-port-fire.excerpt-3-26.txt"]["dedup_kind"] == "contained"
        assert by["tallinn-ferry-strike.txt"]["dedup_kind"] is None
        assert all(set(DEDUP_FIELDS) <= set(e) for e in got)

    with TestPipeline() as p:
        assert_that(p | "Later" >> beam.Create(later) | transform, check)


def assert_no_duplicates(got: list[dict[str, Any]], n: int) -> None:
    assert len(got) == n and all(e["dedup_kind"] is None for e in got)


# ------------------------------------------------------------------ durability, expiry, failures

def test_state_survives_a_redis_restart(tmp_path: Path) -> None:
    port = free_port()
    server = RedisServer(tmp_path / "redis", port=port).start()
    c = make_redis(server.url)
    try:
        store = RedisDedupStore(c)
        article = ev("turku-port-fire.txt", 0, 0)
        store.add(article["event_id"], article["text"], T0)
        server.stop()
        assert redis_pids(port) == []
        server = RedisServer(tmp_path / "redis", port=port).start()
        # the same client: it reconnects by itself
        repost = ev("turku-port-fire.repost.txt", 5, 1)
        match = store.add(repost["event_id"], repost["text"], T0 + 300).match
        assert match is not None and (match.event_id, match.kind) == (article["event_id"], "exact")
    finally:
        c.close()
        server.stop()
    assert redis_pids(port) == []


def test_keys_expire_after_the_ttl(client: redis.Redis, redis_namespace: str) -> None:
    store = RedisDedupStore(client, DedupSettings(ttl_s=1.0), redis_namespace.encode())
    text = ev("turku-port-fire.txt", 0, 0)["text"]
    now = time.time()
    assert store.add("a" * 32, text, now).match is None
    assert store.add("b" * 32, text, now + 0.1).match.kind == "exact"  # type: ignore[union-attr]
    assert client.keys(redis_namespace.encode() + b"*")
    time.sleep(2.3)  # a period (ttl_s long) expires ttl_s after it ends: at most 2 x ttl_s after a write
    assert client.keys(redis_namespace.encode() + b"*") == []  # Redis dropped the keys: state stays bounded
    assert store.add("c" * 32, text, time.time()).match is None


def test_redis_errors_are_retried_then_raised(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    store = RedisDedupStore(make_redis(url, retries=2))
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        store.add("a" * 32, "Some text that would be deduplicated here.", T0)
    assert time.monotonic() - started >= 0.1 + 0.2  # two backoffs before giving up


def test_killed_parent_takes_its_redis_down(tmp_path: Path) -> None:
    port = free_port()
    script = ("import time\nfrom pathlib import Path\nfrom connectors.redis import RedisServer\n"
              f"RedisServer(Path({str(tmp_path / 'redis')!r}), port={port}).start()\n"
              "print('ready', flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == b"ready"
    assert redis_pids(port), "redis-server should be running"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while redis_pids(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_pids(port) == [], "redis-server outlived its killed parent"


def test_missing_redis_server_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="make setup"):
        RedisServer(tmp_path / "redis", port=free_port()).start()


def test_entries_and_keys_encode_compactly_and_round_trip() -> None:
    entries = [BucketEntry("0123456789abcdef" * 2, T0 + 0.125, 57), BucketEntry("evt-7", T0, 3)]
    blobs = [encode_entry(e) for e in entries]
    assert len(blobs[0]) == 25
    assert decode_entries(b"".join(blobs)) == entries
    slots = [key_slot(k, 1024) for k in ("s:0123456789abcdef", "u:0123456789abcdef", "x:y", "h:" + "ab" * 16)]
    assert len(set(slots)) == 4 and all(len(s) == 9 and int.from_bytes(s[:3], "big") < 1024 for s in slots)
    assert key_slot("b07:0123456789abcdef", 1024) == key_slot("b07:0123456789abcdef", 1024)


def test_hit_decoding_takes_the_fixed_size_path_only_when_every_entry_has_a_hex_id() -> None:
    hex_ids = [BucketEntry(f"{i:032x}", T0 + i / 8, i) for i in range(5)]  # ts needs all 48 bits
    others = [BucketEntry("x" * 16, T0, 9), BucketEntry("evt-7", T0 + 1, 3), BucketEntry("é" * 8, T0, 1)]
    assert decode_entries(b"".join(encode_entry(e) for e in hex_ids)) == hex_ids
    for order in itertools.permutations([*hex_ids[:2], *others]):
        blob = b"".join(encode_entry(e) for e in order)
        assert decode_entries(blob) == list(order) == _decode_any(blob)


def test_hits_decoded_with_a_memo_are_the_same_entries() -> None:
    """A reply's keys share one memo of decoded entries (an earlier event comes back under many keys)."""
    hex_ids = [BucketEntry(f"{i:032x}", T0 + i / 8, i) for i in range(4)]
    memo: dict[bytes, BucketEntry] = {}
    for blob in (b"".join(encode_entry(e) for e in hex_ids), b"".join(encode_entry(e) for e in hex_ids[::-2]),
                 encode_entry(BucketEntry("evt-7", T0, 3)) + encode_entry(hex_ids[0])):
        assert decode_entries(blob, memo) == decode_entries(blob) == _decode_any(blob)
    assert set(memo.values()) == set(hex_ids)  # the fixed-size path fills it, the other path does not need it


def test_index_stays_compact_in_redis(client: redis.Redis, redis_namespace: str) -> None:
    """Buckets are fields of a few listpack-encoded hashes, not a Redis key each (~5x the memory)."""
    store = RedisDedupStore(client, DedupSettings(index_shards=64), redis_namespace.encode())
    texts = [ev(n, 0, 0)["text"] for n in sorted(p.name for p in ARTICLES.glob("*.txt"))]
    for i, text in enumerate(texts * 3):  # every text three times: buckets of three entries
        store.add(f"{i:032x}", text, T0 + i)
    keys = client.keys(redis_namespace.encode() + b"*")
    assert 0 < len(keys) <= 64 + 64 // 32  # bucket hashes + record hashes
    assert {client.object("encoding", k) for k in keys} == {b"listpack"}
    buckets = [v for k in keys if k.startswith(redis_namespace.encode() + b"y") for v in client.hvals(k)]
    assert buckets and all(len(v) % 7 == 0 and 0 < len(v) <= 8 * 7 for v in buckets)  # a 7-byte handle an event
    records = [v for k in keys if k.startswith(redis_namespace.encode() + b"r") for v in client.hvals(k)]
    assert len(records) == len(texts) * 3 and {len(v) for v in records} == {12 + 17}  # one record an event
    # Every hash expires, the same ms: a hash gets its expiry from the write that created it (a
    # write to a field already there, like the second and third copies here, does not set it again).
    assert len({client.pexpiretime(k) for k in keys}) == 1 and client.pttl(keys[0]) > 0


def test_reads_the_earlier_layout_until_it_expires(client: redis.Redis, redis_namespace: str) -> None:
    """Buckets the earlier layout wrote (25-byte entries under ``x`` hashes) are still matched after
    an upgrade, and an event they hold is a replay, not a duplicate of itself."""
    settings, ns = DedupSettings(), redis_namespace.encode()
    now = time.time()
    period = (int(now * 1000) // round(settings.ttl_s * 1000)).to_bytes(4, "big")
    text = ev("turku-port-fire.txt", 0, 0)["text"]
    fp = fingerprint(text)
    for key in fp.keys:  # what the earlier store wrote for this event under each of its keys
        slot = key_slot(key, settings.index_shards)
        entry = encode_entry(BucketEntry("a" * 32, T0, kind_entry_size(key_kind(key), fp)))
        client.hset(ns + b"x" + period + slot[:3], slot[3:], entry)
    store = RedisDedupStore(client, settings, ns, clock=lambda: now)
    replay = store.observe("a" * 32, fp, T0)
    assert replay.match is None and client.pttl(ns + b"old") > 0  # its own old entries: a replay
    assert not client.keys(ns + b"y*")  # ... that stores nothing again
    copy = store.add("b" * 32, text, T0 + 60)
    assert copy.match is not None and (copy.match.kind, copy.match.event_id) == ("exact", "a" * 32)
    edited = store.add("c" * 32, text.replace(" the ", " a ", 3), T0 + 120)
    assert edited.match is not None and edited.match.event_id == "a" * 32
    client.delete(ns + b"old", *client.keys(ns + b"x*"))  # what expiry does within 2 x ttl_s
    later = RedisDedupStore(client, settings, ns, clock=lambda: now).add("d" * 32, text, T0 + 180).match
    assert later is not None and later.event_id in ("b" * 32, "c" * 32)  # the old layout is no longer read


def test_a_page_key_keeps_each_version_once_and_no_exact_copy(client: redis.Redis, redis_namespace: str) -> None:
    """A live blog's versions go into its URL's bucket (so an update finds the one it supersedes),
    tagged with their source; an exact copy does not, so a page costs 7 bytes per distinct version."""
    settings = DedupSettings()
    now = time.time()  # the wall clock picks the period hash (a past one would expire at once)
    store = RedisDedupStore(client, settings, redis_namespace.encode(), clock=lambda: now)
    url = "https://daily.example/live/storm"
    blog = [ev(f"liveblog-storm.update-{n}.txt", m, m, url=url, source="daily") for n, m in (("1", 0), ("3", 1), ("2", 2))]
    copy = ev("liveblog-storm.update-3.txt", 3, 3, url=url, source="aggregator")
    verdicts = [store.observe(e["event_id"], event_fingerprint(e, settings, True, True), T0 + i).match
                for i, e in enumerate([*blog, copy])]
    assert [(m.kind, m.event_id) if m else None for m in verdicts] == [
        None, ("update", blog[0]["event_id"]), ("exact", blog[0]["event_id"]), ("exact", blog[1]["event_id"])]
    slot = key_slot(event_fingerprint(blog[0], settings, True, True).exact_keys[1], settings.index_shards)
    period = int(now * 1000) // round(settings.ttl_s * 1000)
    bucket = client.hget(redis_namespace.encode() + b"y" + period.to_bytes(4, "big") + slot[:3], slot[3:8])
    assert bucket == event_handle(blog[0]["event_id"]) + event_handle(blog[1]["event_id"])  # 7 bytes a version
    hits = store.probe(event_fingerprint(blog[0], settings, True, True), "f" * 32, T0 + 10)
    page_hits = [h for h in hits if h.key.startswith(("u:", "g:"))]
    assert page_hits and {e.event_id for h in page_hits for e in h.hits} == {blog[0]["event_id"], blog[1]["event_id"]}
    assert {e.size for h in page_hits for e in h.hits} == {source_tag("daily")}
