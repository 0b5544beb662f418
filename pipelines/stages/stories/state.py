"""RedisStoryStore: story clustering and novelty with their state in Redis.

The same decisions as :class:`pipelines.stages.stories.clustering.StoryClusterer` and
:func:`pipelines.stages.stories.novelty.novelty_step` (it calls their pure parts: features, candidate keys,
scoring, choice, ``StoryState.add``, ``assess_novelty``), with the state kept in Redis instead of
one process, so that

* it survives a pipeline restart (Redis' append-only file; the embedded server and docker-compose
  both persist it), and
* several workers or pipeline instances share it: two outlets' articles about one event that land
  on different workers still meet, because routing keys come from content (quotes, rare entities).

Concurrency: each event is one optimistic transaction (``WATCH`` the routing keys and links it
reads and the candidate stories it scores, then ``MULTI``/``EXEC`` its writes; on a conflict it is
re-read and re-decided). Two events that could join each other always share a routing key, so
the second to commit sees the first's story, exactly as if they had run one after the other.

Idempotency: the event's result is stored under ``a:<event_id>``; re-processing an event (a Beam
retry, a restart that replays uncommitted Kafka offsets) returns its first result and changes
nothing, so counts never double.

Layout (``p`` = namespace + ``st:``; every key expires ``max_gap_s`` after its last write, which
is the story TTL: an idle story and everything pointing at it go together)::

    p a:<event_id>    string  the event's story fields (orjson)              idempotency
    p s:<story_id>    string  StoryState without quotes (orjson)              story summary/terms
    p q:<story_id>    set     quote-shingle hashes (capped: max_story_quotes) scoring
    p r:<route key>   zset    story_id -> last_seen (capped: max_index_entries) candidate lookup
    p l:<link key>    string  story_id (event id / source story_key)          re-posts, live blogs
    p nk:<story_id>   set     sentence-key hashes (capped: max_sentences)     novelty
    p nh:<story_id>   set     sentence shingle hashes (capped: max_shingles)   novelty
    p df:<day>        hash    term -> events that day; "" -> events           entity rarity (IDF)

Rarity is counted per UTC day and read over the days a story can span (``max_gap_s``), so it is a
sliding window without any decay job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from core.records import iso_from_millis
from core.settings import NoveltySettings, StorySettings
from pipelines.stages.dedup.logic import key_hash, sentences
from pipelines.stages.stories.clustering import (
    DEFAULT_STORY_SETTINGS,
    EntityRarity,
    StoryFeatures,
    StoryInput,
    StoryScore,
    StoryState,
    candidate_keys,
    pick_story,
    story_features,
    story_id_for,
)
from pipelines.stages.stories.novelty import (
    DEFAULT_NOVELTY_SETTINGS,
    CountedSentence,
    StoryMemory,
    assess_novelty,
    counted_sentences,
)

_DAY_S = 86400.0

# Candidate stories under the event's routing keys, still open at the event's time: the union of
# the zsets' members scored >= ARGV[1] (one command for all keys instead of one per key).
_CANDIDATES = """
local seen, out = {}, {}
for _, key in ipairs(KEYS) do
  for _, sid in ipairs(redis.call('ZRANGEBYSCORE', key, ARGV[1], '+inf')) do
    if not seen[sid] then seen[sid] = true; out[#out + 1] = sid end
  end
end
return out
"""

# The candidate stories, one command for all. KEYS: (s:, q:, nk:, nh:) per story. ARGV: how many
# quote hashes, how many sentence-key hashes, then the event's quote, sentence-key and shingle
# hashes. Per story: its state ('' when it has expired), then for each of its three sets the set's
# size and the (1-based) positions, within that section of ARGV, of the members it has.
_LOAD = """
local nq, nk = tonumber(ARGV[1]), tonumber(ARGV[2])
local sections = {{3, 2 + nq}, {3 + nq, 2 + nq + nk}, {3 + nq + nk, #ARGV}}
local out = {}
for i = 1, #KEYS, 4 do
  local state = redis.call('GET', KEYS[i]) or ''
  out[#out + 1] = state
  for s = 1, 3 do
    local key, first, last = KEYS[i + s], sections[s][1], sections[s][2]
    local n = redis.call('SCARD', key)
    local hits = {}
    if state ~= '' and n > 0 then
      -- in chunks: unpack() of more than ~8000 values fails (a long article has that many shingles)
      for from = first, last, 1000 do
        local to = math.min(from + 999, last)
        for j, flag in ipairs(redis.call('SMISMEMBER', key, unpack(ARGV, from, to))) do
          if flag == 1 then hits[#hits + 1] = from - first + j end
        end
      end
    end
    out[#out + 1] = n
    out[#out + 1] = hits
  end
end
return out
"""

# File the story under every routing key (KEYS[2..]) and count the event's terms in the day's
# rarity hash (KEYS[1]). ARGV: story id, event time, horizon, max entries per key, TTL ms, day
# hash TTL s, then the terms.
_FILE = """
local sid, ts, horizon = ARGV[1], ARGV[2], ARGV[3]
local keep, ttl = tonumber(ARGV[4]), ARGV[5]
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], ts, sid)
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. horizon)
  redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(keep + 1))
  redis.call('PEXPIRE', KEYS[i], ttl)
end
redis.call('HINCRBY', KEYS[1], '', 1)
for i = 7, #ARGV do redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 0
"""
_DOCS = ""  # the df hash field counting events


class StoryContention(RuntimeError):
    """An event lost its optimistic transaction too many times in a row (retry later, it is not bad input)."""


@dataclass(frozen=True)
class StoryDecision:
    """What an event learns from the story stage: its story, the story after it, its novelty."""

    story_id: str
    is_new: bool
    score: StoryScore | None
    story: dict[str, Any]
    new_sentences: tuple[str, ...]
    repeated: int
    novelty_ratio: float

    def to_fields(self) -> dict[str, Any]:
        """The ``story_id`` / ``story`` / ``novelty`` fields written on the event (JSON-ready)."""
        st = self.story
        return {
            "story_id": self.story_id,
            "story": {"is_new": self.is_new,
                      "score": round(self.score.score, 3) if self.score else None,
                      "event_count": st["event_count"], "source_count": st["source_count"],
                      "first_seen": st["first_seen"], "last_seen": st["last_seen"],
                      "top_entities": st["top_entities"], "top_places": st["top_places"]},
            "novelty": {"ratio": round(self.novelty_ratio, 3), "new_sentences": list(self.new_sentences),
                        "repeated": self.repeated},
        }


def link_keys(event: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(keys this event can follow to a known story, keys it files its own story under).

    Follow: the events it duplicates (``duplicate_of`` / ``near_duplicate_of``) and, when its source
    named a story (``story_key``, e.g. a live blog's id), that source's story. Own: its event id and
    that story key.
    """
    follow = [f"e:{event[f]}" for f in ("duplicate_of", "near_duplicate_of") if event.get(f)]
    own = [f"e:{event['event_id']}"]
    if event.get("story_key"):
        key = f"k:{event.get('source')}\x1f{event['story_key']}"
        follow.append(key)
        own.append(key)
    return follow, own


def small_hash(h: int) -> int:
    """A 64-bit hash cut to 31 bits: Redis keeps small sets of such integers as packed int32 arrays
    (intset, 4 bytes a member instead of ~60 for a string). Sets hold at most tens of thousands of
    members, so a false match stays under 1 in 30,000 lookups."""
    return h >> 33


@dataclass(frozen=True)
class _SentenceMarks:
    """An event's sentences as novelty memory sees them, with the small hashes stored in Redis."""

    counted: list[CountedSentence]
    keys: dict[str, int]       # sentence_key -> small hash
    shingles: dict[int, int]   # sampled shingle hash -> small hash


def _sentence_marks(text: str, settings: NoveltySettings) -> _SentenceMarks:
    counted = counted_sentences(text, settings)
    keys = {c.key: small_hash(int(key_hash(c.key), 16)) for c in counted}
    shingles = {h: small_hash(h) for c in counted for h in c.shingles}
    return _SentenceMarks(counted, keys, shingles)


class RedisStoryStore:
    """Assign events to stories and measure their novelty, with all state in Redis (see module doc)."""

    def __init__(self, client: redis.Redis, settings: StorySettings = DEFAULT_STORY_SETTINGS,
                 novelty: NoveltySettings = DEFAULT_NOVELTY_SETTINGS, *, namespace: str = "",
                 max_retries: int = 50) -> None:
        self.client, self.settings, self.novelty = client, settings, novelty
        self.prefix = f"{namespace}st:"
        self.max_retries = max_retries
        self._ttl_ms = max(1, round(settings.max_gap_s * 1000))
        self._days = math.ceil(settings.max_gap_s / _DAY_S) + 1
        self.conflicts = 0  # optimistic-transaction retries, for metrics and tests
        # Called on its own (EVALSHA, reloaded on NOSCRIPT). The scripts that run inside pipelines
        # go as EVAL with their source: EVALSHA there would make redis-py ask SCRIPT EXISTS first
        # (a round trip), and a NOSCRIPT inside MULTI (after a Redis restart) would fail that one
        # command while the rest of the transaction still ran.
        self._load_script = client.register_script(_LOAD)

    def _k(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    # ------------------------------------------------------------------ public

    def assign(self, event: Mapping[str, Any], ts: float) -> StoryDecision:
        """The event's story and novelty; stores both. Re-processing an event returns its first result."""
        event_id = str(event["event_id"])
        item = StoryInput.from_event(event, ts)
        features = story_features(item, self.settings)
        rarity = self._rarity(features.terms, ts)
        routes = candidate_keys(features, rarity, self.settings)
        follow, own = link_keys(event)
        marks = _sentence_marks(item.text, self.novelty)
        for _ in range(self.max_retries):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    decision = self._decide(pipe, event_id, item, features, rarity, routes, follow, own, marks)
                    return decision
                except redis.WatchError:
                    self.conflicts += 1
        raise StoryContention(f"stories: event {event_id} lost {self.max_retries} transaction races in a row; "
                           "is another writer looping on the same keys?")

    def story(self, story_id: str) -> dict[str, Any] | None:
        """A story's summary as stored now (None when unknown or expired)."""
        raw = self.client.get(self._k("s", story_id))
        return None if raw is None else StoryState.from_state({**orjson.loads(raw), "quotes": []}).summary(
            self.settings)

    # ------------------------------------------------------------------ internals

    def _day_keys(self, ts: float) -> list[str]:
        today = int(ts // _DAY_S)
        return [self._k("df", str(today - i)) for i in range(self._days)]

    def _rarity(self, terms: Mapping[str, float], ts: float) -> EntityRarity:
        """Document frequencies over the story window, counting this event (as StoryClusterer does)."""
        fields = [_DOCS, *terms]
        with self.client.pipeline(transaction=False) as pipe:
            for key in self._day_keys(ts):
                pipe.hmget(key, fields)
            rows = pipe.execute()
        totals = [sum(float(r[i] or 0) for r in rows) for i in range(len(fields))]
        df = {t: totals[i + 1] + 1 for i, t in enumerate(terms)}
        return EntityRarity(docs=totals[0] + 1, df=df)

    def _decide(self, pipe: Any, event_id: str, item: StoryInput, features: StoryFeatures,
                rarity: EntityRarity, routes: Sequence[str], follow: Sequence[str], own: Sequence[str],
                marks: _SentenceMarks) -> StoryDecision:
        """One optimistic transaction. WATCH sits on the transaction's connection; the reads after
        it go through a plain pipeline (another connection, one round trip per batch): a write to a
        watched key after the WATCH still aborts the EXEC, which is all the reads need."""
        s = self.settings
        done_key = self._k("a", event_id)
        route_keys = [self._k("r", r) for r in routes]
        link_keys_ = [self._k("l", f) for f in follow]
        pipe.watch(done_key, *route_keys, *link_keys_)
        with self.client.pipeline(transaction=False) as reads:
            reads.get(done_key)
            reads.mget(link_keys_ or [done_key])
            reads.eval(_CANDIDATES, len(route_keys), *route_keys, item.ts - s.max_gap_s)
            done, links, found = reads.execute()
        if done is not None:  # another worker has just done this event
            pipe.unwatch()
            return _decision_from_json(done, item.text)
        joined = [j.decode() for j in links if j is not None] if link_keys_ else []
        candidates = joined[:1] if joined else sorted(m.decode() for m in found)
        states, stored_quotes, memories = self._load(pipe, candidates, features, marks)
        best, story = pick_story(features, item.ts, states, rarity, s, linked=states[0] if joined and states else None)
        if story is None:
            best, story = None, StoryState(story_id_for(event_id), item.ts, item.ts)
        sid = story.story_id
        # Quotes live in their own set: keep only the event's new ones for the write, within the cap.
        shared = set(story.quotes)
        story.add(item, features, s)
        story.quotes = set(sorted(story.quotes - shared)[: max(0, s.max_story_quotes - stored_quotes.get(sid, 0))])
        memory, memory_full = memories.get(sid, (StoryMemory(), (False, False)))
        novelty = assess_novelty(item.text, memory, self.novelty, marks.counted)
        decision = StoryDecision(sid, best is None, best, _iso_summary(story, s),
                                 novelty.new_sentences, len(novelty.repeated_sentences), novelty.novelty_ratio)
        self._write(pipe, event_id, item, features, story, routes, own, marks, memory_full, decision)
        return decision

    def _load(self, pipe: Any, story_ids: Sequence[str], features: StoryFeatures, marks: _SentenceMarks
              ) -> tuple[list[StoryState], dict[str, int], dict[str, tuple[StoryMemory, tuple[bool, bool]]]]:
        """Watch and read the candidate stories (one script call for all): each story with only the
        quotes it shares with the event and how many it holds, and its novelty memory restricted to
        this event's sentences (all assess_novelty needs) with whether each of its sets is full."""
        if not story_ids:
            return [], {}, {}
        pipe.watch(*(self._k("s", sid) for sid in story_ids))
        quotes = sorted(features.quotes)
        key_marks, sh_marks = list(marks.keys.items()), list(marks.shingles.items())
        keys = [self._k(kind, sid) for sid in story_ids for kind in ("s", "q", "nk", "nh")]
        reply = self._load_script(keys=keys, args=[len(quotes), len(key_marks), *(small_hash(q) for q in quotes),
                                                   *(v for _, v in key_marks), *(v for _, v in sh_marks)])
        states, stored, memories = [], {}, {}
        for i, sid in enumerate(story_ids):
            raw, n_q, q_hits, n_k, k_hits, n_h, h_hits = reply[7 * i: 7 * i + 7]
            if not raw:
                continue  # expired between the routing read and now
            states.append(StoryState.from_state({**orjson.loads(raw), "quotes": {quotes[j - 1] for j in q_hits}}))
            stored[sid] = int(n_q)
            memory = StoryMemory({key_marks[j - 1][0]: None for j in k_hits}, {sh_marks[j - 1][0]: None for j in h_hits})
            memories[sid] = (memory, (int(n_k) >= self.novelty.max_sentences, int(n_h) >= self.novelty.max_shingles))
        return states, stored, memories

    def _write(self, pipe: Any, event_id: str, item: StoryInput, features: StoryFeatures, story: StoryState,
               routes: Sequence[str], own: Sequence[str], marks: _SentenceMarks,
               memory_full: tuple[bool, bool], decision: StoryDecision) -> None:
        s, ttl = self.settings, self._ttl_ms
        sid = story.story_id
        pipe.multi()
        pipe.set(self._k("a", event_id), _decision_to_json(decision, item.text), px=ttl)
        state = story.to_state()
        state["quotes"] = []
        pipe.set(self._k("s", sid), orjson.dumps(state), px=ttl)
        sets = ((self._k("q", sid), [small_hash(q) for q in story.quotes], False),
                (self._k("nk", sid), list(marks.keys.values()), memory_full[0]),
                (self._k("nh", sid), list(marks.shingles.values()), memory_full[1]))
        for key, members, full in sets:
            if members and not full:
                pipe.sadd(key, *members)
            pipe.pexpire(key, ttl)
        for link in own:
            pipe.set(self._k("l", link), sid, px=ttl)
        day = self._day_keys(item.ts)[0]
        keys = [day, *(self._k("r", r) for r in routes)]
        pipe.eval(_FILE, len(keys), *keys, sid, item.ts, item.ts - s.max_gap_s, s.max_index_entries, ttl,
                  int(self._days * _DAY_S), *features.terms)
        pipe.execute()

    def memory_usage(self, sample: int = 2000) -> dict[str, int]:
        """Bytes and keys per key kind (``MEMORY USAGE`` on up to ``sample`` keys of each), for the bench."""
        out: dict[str, int] = {}
        for kind in ("a", "s", "q", "r", "l", "nk", "nh", "df"):
            keys = list(self.client.scan_iter(match=f"{self.prefix}{kind}:*", count=1000))
            sizes = [self.client.memory_usage(k) or 0 for k in keys[:sample]]
            out[f"{kind}_keys"] = len(keys)
            out[f"{kind}_bytes"] = int(sum(sizes) * (len(keys) / max(1, len(sizes))))
        return out


def _iso_summary(story: StoryState, settings: StorySettings) -> dict[str, Any]:
    summary = story.summary(settings)
    summary["first_seen"] = iso_from_millis(int(story.first_seen * 1000))
    summary["last_seen"] = iso_from_millis(int(story.last_seen * 1000))
    return summary


def _decision_to_json(d: StoryDecision, text: str) -> bytes:
    """The event's result, compact: new sentences as their positions in the event's text."""
    index = {sent: i for i, sent in enumerate(sentences(text))}
    st = d.story
    return orjson.dumps([d.story_id, d.is_new, d.score.score if d.score else None,
                         [st[k] for k in _SUMMARY_KEYS], [index[x] for x in d.new_sentences],
                         d.repeated, d.novelty_ratio])


_SUMMARY_KEYS = ("event_count", "source_count", "first_seen", "last_seen", "top_entities", "top_places")


def _decision_from_json(raw: bytes, text: str) -> StoryDecision:
    sid, is_new, score, summary, new_idx, repeated, ratio = orjson.loads(raw)
    all_sentences = sentences(text)
    return StoryDecision(sid, is_new, None if score is None else StoryScore(sid, score, 0.0, 0.0, 0.0),
                         dict(zip(_SUMMARY_KEYS, summary, strict=True)),
                         tuple(all_sentences[i] for i in new_idx), repeated, ratio)
