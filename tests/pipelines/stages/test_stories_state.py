"""RedisStoryStore on a real redis-server: replays are idempotent, a new process continues the
stories, and workers racing on one story still agree."""

from __future__ import annotations

import json
import random
import struct
import threading
import zlib
from datetime import datetime
from typing import Any

import redis

from connectors.redis import RedisServer, make_redis
from pipelines.stages.stories.clustering import StoryClusterer, StoryInput
from pipelines.stages.stories.state import RedisStoryStore
from tests.paths import ARTICLES
from tests.pipelines.beam_events import make_event

T0 = 1_645_819_800.0


def store(server: RedisServer, namespace: str) -> RedisStoryStore:
    return RedisStoryStore(make_redis(server.url), namespace=namespace)


def fixture_events() -> list[tuple[dict[str, Any], float]]:
    """tests/fixtures/articles/events.json as enriched events, in arrival order."""
    out = []
    for i, spec in enumerate(json.loads((ARTICLES / "events.json").read_text(encoding="utf-8"))["events"]):
        ts = datetime.fromisoformat(spec["received_at"]).timestamp()
        out.append((make_event(spec["file"], ts, i, title=spec["file"], source=spec["source"],
                               entities=spec["entities"], places=spec["places"]), ts))
    return out


def test_same_decisions_as_the_single_process_clusterer(redis_server: RedisServer, redis_namespace: str) -> None:
    s, clusterer = store(redis_server, redis_namespace), StoryClusterer()
    for event, ts in fixture_events():
        item = StoryInput(event["event_id"], ts, event["source"], event["text"],
                          tuple(event["entities"]), tuple(event["places"]))
        want = clusterer.assign(item)
        got = s.assign(event, ts)
        assert (got.story_id, got.is_new) == (want.story_id, want.is_new), event["title"]
        assert got.story["event_count"] == want.story["event_count"]
        assert got.story["top_entities"] == want.story["top_entities"]


def test_replaying_an_event_returns_its_first_result_and_counts_once(
        redis_server: RedisServer, redis_namespace: str) -> None:
    s = store(redis_server, redis_namespace)
    events = fixture_events()
    first = [s.assign(e, ts) for e, ts in events]
    again = [s.assign(e, ts) for e, ts in events]
    assert [d.to_fields() for d in again] == [d.to_fields() for d in first]
    liveblog = next(d for (e, _), d in zip(events, first, strict=True) if e["title"].endswith("2-26.txt"))
    assert s.story(liveblog.story_id)["event_count"] == 2  # type: ignore[index]


def test_a_new_process_continues_the_stories_and_their_novelty(redis_server: RedisServer,
                                                               redis_namespace: str) -> None:
    a = store(redis_server, redis_namespace)
    blog = {"source": "yle-live", "story_key": "storm-2026"}  # a live blog names its story
    first = a.assign(make_event("liveblog-storm.update-1.txt", T0, 0, **blog), T0)
    a.client.close()
    b = store(redis_server, redis_namespace)  # "after a restart": only Redis remembers
    repeat = b.assign(make_event("liveblog-storm.update-2.txt", T0 + 600, 1, **blog), T0 + 600)
    update = b.assign(make_event("liveblog-storm.update-3.txt", T0 + 1200, 2, **blog), T0 + 1200)
    assert first.story_id == repeat.story_id == update.story_id
    assert (repeat.novelty_ratio, repeat.new_sentences) == (0.0, ())
    assert "Replacement buses will run where roads are open, the company said." in update.new_sentences
    assert update.story["event_count"] == 3


def test_workers_racing_on_one_story_agree_and_lose_no_counts(redis_server: RedisServer,
                                                              redis_namespace: str) -> None:
    """8 workers, each its own client, add 5 copies of the two outlets' articles at once: one story."""
    names = ["shared:russia-warns-finland-sweden.txt", "shared:liveblog-fragment-2-26.txt"]
    results: list[str] = []
    errors: list[BaseException] = []

    def work(w: int) -> None:
        s = store(redis_server, redis_namespace)
        try:
            for i in range(5):
                name = names[(w + i) % 2]
                ts = T0 + w * 7 + i
                results.append(s.assign(make_event(name, ts, w * 100 + i, source=f"outlet-{w}"), ts).story_id)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    story = store(redis_server, redis_namespace).story(results[0])
    assert story is not None and (story["event_count"], story["source_count"]) == (40, 8)


def test_state_expires_with_the_story(redis_server: RedisServer, redis_namespace: str) -> None:
    from core.settings import StorySettings

    s = RedisStoryStore(make_redis(redis_server.url), StorySettings(max_gap_s=3600), namespace=redis_namespace)
    s.assign(make_event("turku-port-fire.txt", T0, 0), T0)
    client: redis.Redis = s.client
    keys = list(client.scan_iter(match=f"{redis_namespace}st:*"))
    assert keys
    ttls = [client.pttl(k) for k in keys]
    assert all(0 < t <= 3600 * 1000 or k.startswith(f"{redis_namespace}st:df:".encode())
               for k, t in zip(keys, ttls, strict=True))


def test_a_very_long_article_is_scored_against_its_story(redis_server: RedisServer, redis_namespace: str) -> None:
    """Tens of thousands of shingles (past Lua's unpack limit) still go through the candidate script."""
    s = store(redis_server, redis_namespace)
    base = make_event("turku-port-fire.txt", T0, 0, story_key="k", source="wire")
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(5000)]
    long_text = "\n\n".join(" ".join(rng.choice(vocab) for _ in range(12)).capitalize() + "." for _ in range(2500))
    first = s.assign({**base, "text": long_text}, T0)
    again = s.assign({**base, "event_id": "f" * 32, "text": long_text + "\n\nOne more line about the harbour fire today."},
                     T0 + 60)
    assert again.story_id == first.story_id
    assert again.new_sentences == ("One more line about the harbour fire today.",)


def _commit_after(s: RedisStoryStore, meanwhile: Any) -> None:
    """Make ``s``'s next commit run ``meanwhile()`` first: another worker's write between its read
    and its commit."""
    commit, pending = s._commit, [meanwhile]

    def late_commit(*args: Any, **kwargs: Any) -> Any:
        while pending:
            pending.pop()()
        return commit(*args, **kwargs)

    s._commit = late_commit  # type: ignore[assignment]


def test_a_story_filed_between_read_and_commit_is_seen(redis_server: RedisServer, redis_namespace: str) -> None:
    """Worker 2 files the port-fire story while worker 1 decides the other outlet's report of it:
    worker 1's commit is refused (a posting key it read moved) and its retry joins worker 2's story."""
    one, two = store(redis_server, redis_namespace), store(redis_server, redis_namespace)
    theirs: list[str] = []
    _commit_after(one, lambda: theirs.append(two.assign(make_event("turku-port-fire.txt", T0, 1), T0).story_id))
    mine = one.assign(make_event("turku-port-fire.other-outlet.txt", T0 + 60, 2, source="other"), T0 + 60)
    assert one.conflicts == 1
    assert mine.story_id == theirs[0] and mine.story["event_count"] == 2


def test_an_unrelated_write_between_read_and_commit_costs_no_retry(redis_server: RedisServer,
                                                                   redis_namespace: str) -> None:
    """The commit checks the versions of the keys its decision read, not a global counter."""
    one, two = store(redis_server, redis_namespace), store(redis_server, redis_namespace)
    _commit_after(one, lambda: two.assign(make_event("stockholm-housing.txt", T0, 1, title="Housing"), T0))
    one.assign(make_event("turku-port-fire.txt", T0 + 60, 2, title="Fire"), T0 + 60)
    assert one.conflicts == 0


def test_replay_records_are_compact_and_older_ones_still_read(redis_server: RedisServer, redis_namespace: str) -> None:
    """The replay record keeps times as milliseconds and top names as [keys, rows]; a record stored
    in the earlier layout (ISO times, a dict per name) gives the same result."""
    import orjson

    from pipelines.stages.stories.state import _SUMMARY_KEYS

    s = store(redis_server, redis_namespace)
    event, ts = fixture_events()[0]
    first = s.assign(event, ts)
    key = f"{redis_namespace}st:a:{event['event_id']}"
    stored = s.client.get(key)
    head, packed = stored.split(b"\x1f", 1)
    assert head == b"Z" + first.story_id.encode()  # the story id readable (an event's link), the rest zlib'd
    record = orjson.loads(zlib.decompress(packed))
    assert len(stored) < len(orjson.dumps(record))
    assert isinstance(record[3][2], int) and isinstance(record[3][4][0], list)
    s.client.set(key, orjson.dumps(record))  # the record as the previous version stored it (plain JSON)
    assert s.assign(event, ts).to_fields() == first.to_fields()
    old = [*record[:3], [first.story[k] for k in _SUMMARY_KEYS], *record[4:]]
    s.client.set(key, orjson.dumps(old))  # ... and the one before (ISO times, a dict per name)
    assert len(orjson.dumps(old)) > len(orjson.dumps(record))
    assert s.assign(event, ts).to_fields() == first.to_fields()


def test_an_event_link_is_its_result_and_the_earlier_layout_still_reads(redis_server: RedisServer,
                                                                        redis_namespace: str) -> None:
    """A re-post follows the story of the event it duplicates through that event's result
    (``a:``; no ``l:e:`` key of its own any more), and a story state is a JSON list; links and
    states the earlier layout wrote (``l:e:<id>`` keys, JSON objects) are still read."""
    import zlib

    import orjson

    from pipelines.stages.stories.state import STATE_FIELDS, story_from_json

    s = store(redis_server, redis_namespace)
    (first, ts), (other, ts2) = fixture_events()[:2]
    d = s.assign(first, ts)
    p = f"{redis_namespace}st:"
    assert s.client.get(f"{p}l:e:{first['event_id']}") is None
    raw = s.client.get(f"{p}s:{d.story_id}")
    assert raw is not None and raw.startswith(b"Z") and len(orjson.loads(zlib.decompress(raw[1:]))) <= len(STATE_FIELDS)
    assert story_from_json(raw).story_id == d.story_id
    plain = zlib.decompress(raw[1:])  # the plain JSON list an earlier version stored reads the same
    assert story_from_json(plain).to_state() == story_from_json(raw).to_state()
    repost = {**other, "event_id": "e" * 32, "near_duplicate_of": first["event_id"]}
    assert s.assign(repost, ts2).story_id == d.story_id  # followed through a:<first>
    # the earlier layout: the state as an object, the link as its own key (no result to open), or a
    # result stored as plain JSON; the events following them are unrelated by content
    (third, _), (fourth, _) = fixture_events()[2:4]
    s.client.set(f"{p}s:{d.story_id}", orjson.dumps(story_from_json(s.client.get(f"{p}s:{d.story_id}")).to_state()))
    s.client.set(f"{p}l:e:{'9' * 32}", d.story_id)
    s.client.set(f"{p}a:{'8' * 32}", orjson.dumps([d.story_id, True, None, [], [], 0, 1.0]))
    assert s.assign({**third, "event_id": "7" * 32, "near_duplicate_of": "8" * 32}, ts2 + 30).story_id == d.story_id
    got = s.assign({**fourth, "event_id": "f" * 32, "near_duplicate_of": "9" * 32}, ts2 + 60)
    assert got.story_id == d.story_id and got.story["event_count"] == 4


def test_posting_lists_keep_what_a_sorted_set_keeps(redis_server: RedisServer, redis_namespace: str) -> None:
    """A posting list (a field of a day's hash) files, re-files and trims exactly as the sorted set
    it replaced (ZADD + ZREMRANGEBYRANK, ties by story id), and reads back as ZRANGEBYSCORE does
    (read unchecked, ``whole``, at a horizon before every entry, the same)."""
    from pipelines.stages.stories.state import _POSTINGS

    client = make_redis(redis_server.url)
    both = client.register_script(_POSTINGS + """
file_posting(KEYS[1], 'k', tonumber(ARGV[1]), ARGV[2], 5)
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]), ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -6)
local out = {}
local blob = redis.call('HGET', KEYS[1], 'k')
for _, h in ipairs({0, 1700000004.5, 1700000008}) do
  local a, b, order = {}, redis.call('ZRANGEBYSCORE', KEYS[2], h, '+inf'), {}
  tally_postings(blob, h, false, 1, {}, {}, order)
  for i, key in ipairs(order) do a[i] = story_id(key) end
  table.sort(a); table.sort(b)
  out[#out + 1] = table.concat(a, ',') .. '|' .. table.concat(b, ',')
end
local all, unchecked = {}, {}
tally_postings(blob, 0, false, 1, {}, {}, all)
tally_postings(blob, 0, true, 1, {}, {}, unchecked)
for i, key in ipairs(all) do assert(canonical(story_id(key)) == key and unchecked[i] == key) end
assert(#all == #unchecked)
return out
""")
    rng = random.Random(3)
    sids = [f"story:{rng.getrandbits(64):016x}" for _ in range(8)] + ["story:not-hex", "merged-x"]
    keys = [f"{redis_namespace}h", f"{redis_namespace}z"]
    for i in range(60):  # ties (equal times), re-filings and ids that are not story_id_for's
        for pair in both(keys=keys, args=[1_700_000_000 + rng.choice([i // 3, i / 7, 4.5]), rng.choice(sids)]):
            got, want = pair.decode().split("|")
            assert got == want
    assert client.object("encoding", keys[0]) == b"listpack" and len(client.hget(keys[0], "k")) < 5 * 30


def test_posting_lists_are_compact_and_the_earlier_zsets_still_read(redis_server: RedisServer,
                                                                     redis_namespace: str) -> None:
    """Posting lists are fields of a few listpack hashes a day; posting zsets the earlier layout
    wrote (``p:<day>:<key>``) are still found by a new process, until they expire."""
    events = fixture_events()
    probe = store(redis_server, redis_namespace + "probe:")
    decided = [probe.assign(e, ts) for e, ts in events]
    j = next(i for i, d in enumerate(decided) if not d.is_new)  # the first event that joined a story
    i = next(k for k, d in enumerate(decided) if d.story_id == decided[j].story_id)
    s = RedisStoryStore(make_redis(redis_server.url), namespace=redis_namespace, posting_shards=4)
    s.assign(*events[i])
    p, client = f"{redis_namespace}st:", s.client
    hashes = client.keys(f"{p}ph:*")
    assert 0 < len(hashes) <= 4 and {client.object("encoding", h) for h in hashes} == {b"listpack"}
    assert not client.keys(f"{p}p:*")
    for h in hashes:  # rewrite them as the earlier layout's zsets
        day = h.decode().split(":")[-2]
        for key, blob in client.hgetall(h).items():
            for n in range(0, len(blob), 17):
                ts, raw = struct.unpack(">d", blob[n:n + 8])[0], blob[n + 9:n + 17]
                client.zadd(f"{p}p:{day}:{key.decode()}", {f"story:{raw.hex()}": ts})
        client.delete(h)
    later = RedisStoryStore(make_redis(redis_server.url), namespace=redis_namespace, posting_shards=4)
    assert later.assign(*events[j]).story_id == decided[j].story_id
    assert client.pttl(f"{p}p-old") > 0


def test_cached_candidate_states_decide_as_a_store_without_the_cache(redis_server: RedisServer,
                                                                      redis_namespace: str) -> None:
    """Decoded candidate states are kept by their stored bytes (RedisStoryStore._decode), and so is
    the state each commit stores (RedisStoryStore._keep): the same results as a store that decodes
    every candidate afresh; every kept state is exactly what decoding its bytes gives (same values,
    same types), so no change the store makes to the story it joins reaches a kept state unstored."""
    from pipelines.stages.stories.state import story_from_json

    warm = store(redis_server, redis_namespace + "warm:")
    cold = RedisStoryStore(make_redis(redis_server.url), namespace=redis_namespace + "cold:", state_cache_size=0)
    client = make_redis(redis_server.url)
    for event, ts in fixture_events():
        decision = warm.assign(event, ts)
        assert decision.to_fields() == cold.assign(event, ts).to_fields(), event["title"]
        # the story just written is kept under the bytes now stored for it
        assert client.get(warm._k("s", decision.story_id)) in warm._states, event["title"]
    assert warm.state_cache_hits > 0 and cold.state_cache_hits == 0 and not cold._states
    for raw, state in warm._states.items():
        assert repr(state.to_state()) == repr(story_from_json(raw).to_state())


def test_a_linked_story_novelty_comes_with_the_read(redis_server: RedisServer, redis_namespace: str) -> None:
    """An event that joins its linked story (here: the story its source named) learns which of its
    sentences the story holds from the read script, with no round trip of its own, and they are
    what the single-process novelty memory finds."""
    from pipelines.stages.stories.novelty import StoryMemory, novelty_step

    s = store(redis_server, redis_namespace)
    blog = {"source": "yle-live", "story_key": "storm-2026"}
    memory, decided = StoryMemory(), []
    for i in range(1, 4):
        event = make_event(f"liveblog-storm.update-{i}.txt", T0 + 600 * i, i, **blog)
        decided.append(s.assign(event, T0 + 600 * i))
        want = novelty_step(StoryInput.from_event(event, T0).text, memory)
        assert (decided[-1].new_sentences, decided[-1].novelty_ratio) == (want.new_sentences, want.novelty_ratio)
        s._novelty_memory = None  # type: ignore[assignment, method-assign]  # from the 2nd event on: never called
    assert len({d.story_id for d in decided}) == 1 and decided[1].novelty_ratio < decided[2].novelty_ratio


def test_an_open_linked_story_decides_without_candidates_and_a_closed_one_reads_them(
        redis_server: RedisServer, redis_namespace: str) -> None:
    """The read leaves the candidates out while the event's linked story is kept (``partial``): an
    event whose linked story is open at its time joins it on that one read; one whose linked story
    is closed at its time (still kept in Redis, but ``max_gap_s`` behind in event time) is read again
    with the candidates and joins the open story it matches, as the single-process clusterer does."""
    s = store(redis_server, redis_namespace)
    reads: list[bool] = []
    read = s._read

    def counting(*, args: list[bytes]) -> Any:
        reply = read(args=args)
        reads.append(json.loads(reply[0]).get("partial", False))
        return reply

    s._read = counting  # type: ignore[method-assign]
    gap = s.settings.max_gap_s
    blog = {"source": "yle-live", "story_key": "turku-fire"}
    first = s.assign(make_event("turku-port-fire.txt", T0, 1, **blog), T0)
    reads.clear()
    update = s.assign(make_event("turku-port-fire.edited.txt", T0 + 600, 2, **blog), T0 + 600)
    assert update.story_id == first.story_id and reads == [True]  # one read, no candidates
    # days later another outlet reports it again: the blog's story is closed in event time
    later = T0 + gap + 3600
    other = s.assign(make_event("turku-port-fire.other-outlet.txt", later, 3, source="other-wire"), later)
    assert other.is_new and other.story_id != first.story_id
    reads.clear()
    again = s.assign(make_event("turku-port-fire.repost.txt", later + 60, 4, **blog), later + 60)
    assert reads == [True, False]  # the linked story was closed: read again with the candidates
    assert again.story_id == other.story_id and not again.is_new


def test_joining_an_open_linked_story_is_not_retried_for_a_story_filed_under_its_keys(
        redis_server: RedisServer, redis_namespace: str) -> None:
    """An open linked story decides alone, so a partial read versions only the links and that story:
    another worker filing a new story under the same index keys between the read and the commit
    costs no retry (it did before 2026-12-05: a third of the retries of four workers on the e2e
    bench's stream), while a change to the linked story itself still refuses the commit."""
    one, two = store(redis_server, redis_namespace), store(redis_server, redis_namespace)
    blog = {"source": "yle-live", "story_key": "turku-fire"}
    first = one.assign(make_event("turku-port-fire.txt", T0, 1, **blog), T0)
    later = T0 + one.settings.max_gap_s + 3600  # the blog's story is closed then: a new story, same keys
    theirs: list[Any] = []
    _commit_after(one, lambda: theirs.append(two.assign(
        make_event("turku-port-fire.other-outlet.txt", later, 3, source="other-wire"), later)))
    update = one.assign(make_event("turku-port-fire.edited.txt", T0 + 600, 2, **blog), T0 + 600)
    assert theirs[0].is_new and theirs[0].story_id != first.story_id
    assert update.story_id == first.story_id and one.conflicts == 0

    _commit_after(one, lambda: two.assign(make_event("turku-port-fire.repost.txt", T0 + 900, 4, **blog), T0 + 900))
    again = one.assign(make_event("turku-port-fire.excerpt-3-26.txt", T0 + 1200, 5, **blog), T0 + 1200)
    assert one.conflicts == 1  # the linked story moved: decided again, on its new state
    assert again.story_id == first.story_id and again.story["event_count"] == 4
