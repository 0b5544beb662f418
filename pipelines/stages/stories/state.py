"""RedisStoryStore: story clustering and novelty with their state in Redis, two or three round trips an event.

The same decisions as :class:`pipelines.stages.stories.clustering.StoryClusterer` and
:func:`pipelines.stages.stories.novelty.novelty_step` (it calls their pure parts: features, index
keys, scoring, choice, ``StoryState.add``, ``assess_novelty``), with the state kept in Redis, so it
survives a pipeline restart and several workers or pipeline instances share it: two outlets'
articles on different workers still meet, because index keys come from content.

Per event:

1. **read** (:data:`_READ`, one script): the event's earlier result if it has one; the story its
   links point to; candidate stories from the inverted index (the event's index keys over the day
   buckets a story can span, each story counted once per key with that key's weight, the
   ``max_candidates`` best) and their states; the event's terms' document counts over those days;
   and the **versions** of everything that decision rests on (see below). While the linked story
   is kept, the read returns it without looking up candidates (``partial``): an open linked story
   decides alone (:func:`choose_story`), so candidates are read, in a second call, only when it is
   closed at the event's time (a replay of old data, a link older than ``max_gap_s``).
2. **novelty read** (one pipelined round trip, only when the event joins a story other than its
   linked one): which of the event's sentence keys and shingle hashes the chosen story (and any
   story it absorbs) holds. For the linked story (the one the event joins whenever it is open) the
   read script returns this already (``nov``), so an event with a link takes two round trips.
3. **commit** (:data:`_COMMIT`, one script): if the event has meanwhile got a result, returns it; if
   any version it was given moved, returns ``retry`` and the event is decided again; otherwise
   writes the result, the story, its novelty sets, links, postings and counts at once, bumps the
   versions of what it wrote, and, on a late merge, turns each absorbed story into a redirect to
   the survivor.

Versions: a hash ``p v:`` of :data:`STRIPES` counters. A commit bumps the counter ("stripe") of each
index key it files under (all day buckets of a key share one), each link key it sets and each story
it writes (the story it joins or starts, the stories it absorbs). The read returns the counters of
its index keys, its link keys and its candidate stories (a ``partial`` read: its link keys and the
linked story only, the whole of what an open linked story's decision rests on); the commit compares
them in one ``HMGET``. So a commit is refused exactly when another worker filed a story under one of
the event's keys (unless an open linked story decided), set one of its links or changed a candidate
since the read (or, rarely, when an unrelated key shares a stripe: a needless retry), as the earlier
check did by re-running the whole candidate retrieval (and as the ``WATCH``/``MULTI`` transaction
before it): concurrent workers decide as if one after another. What no commit writes is not versioned: a story expiring between read and commit is
decided as if the commit ran just before it expired, and the document counts (IDF) may have grown
by other events, as before. The novelty sets change only together with their story's state, so the
novelty read needs no lock of its own. Idempotency: the result under ``a:<event_id>`` is returned
to any re-processing of the event, and counts never double.

Client side, the candidates' states are decoded once and kept by their stored bytes
(:meth:`RedisStoryStore._decode`, :data:`STATE_CACHE_SIZE`): a story that changed has other bytes,
so a kept state is never stale; kept states are only read, and the story an event joins is a
fresh copy. When an open linked story decides, the other candidates are not decoded at all.

Layout (``p`` = namespace + ``st:``; every key expires ``max_gap_s`` after its last write)::

    p a:<event_id>        string  the event's story fields (story id + zlib'd     idempotency
                                  orjson, _decision_to_json)
    p s:<story_id>        string  StoryState: ``Z`` + zlib of the orjson list    scoring, summary
                                  (STATE_FIELDS order; plain JSON from earlier
                                  versions still read),
                                  or '>' + survivor id once merged (late merge)  redirect
    p ph:<day>:<shard>    hash    index key -> posting list: the max_postings    candidate lookup
                                  newest stories filed under it that day, with
                                  their time (_POSTINGS; shard: crc32 of the key
                                  mod posting_shards). Earlier versions kept a zset
                                  ``p:<day>:<index key>`` each (~260 bytes of Redis
                                  per list): still read while the marker ``p-old`` lasts
    p l:<link key>        string  story_id (a source's story_key)                  live blogs
                                  an event's link (``e:<event_id>``: re-posts, updates) is its result
                                  ``a:<event_id>``, which opens with its story id; earlier versions
                                  also wrote ``l:e:<event_id>``, still read while such keys last
    p nk:<story_id>       set     sentence-key hashes (capped: max_sentences)    novelty
    p nh:<story_id>       set     sentence shingle hashes (capped: max_shingles)  novelty
    p df:<day>            hash    term -> events that day; "" -> events          IDF (online part)
    p v:                  hash    stripe -> commits that wrote it (<= STRIPES)    versions

The scripts build story keys from the ids they read, so this layout needs one Redis server (or a
cluster hash tag on the namespace), not a sharded cluster.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import redis

from connectors.redis import mark_if_keys_left
from core.records import iso_from_millis
from core.settings import NoveltySettings, StorySettings
from pipelines.stages.dedup.logic import key_hash, sentence_words, sentences
from pipelines.stages.stories.clustering import (
    DEFAULT_STORY_SETTINGS,
    Rarity,
    StoryFeatures,
    StoryInput,
    StoryScore,
    StoryState,
    choose_story,
    index_keys,
    linked_open,
    merge_into,
    small_hash,
    story_features,
    story_id_for,
    vectors,
)
from pipelines.stages.stories.crosslingual import first_in_language, translation_novelty
from pipelines.stages.stories.novelty import (
    DEFAULT_NOVELTY_SETTINGS,
    CountedSentence,
    NoveltyResult,
    StoryMemory,
    assess_novelty,
    counted_sentences,
)

_DAY_S = 86400.0

#: Hashes each day's posting lists are spread over (``ph:<day>:<shard>``): ~2.4 new lists an event,
#: so ~60 lists a hash (one compact listpack) at ~1M events per 72 h (~330,000 a day). Fewer
#: events leave the hashes smaller, more turn the fullest into hash tables (~2x their memory).
POSTING_SHARDS = 16384

# Version stripes (see RedisStoryStore._stripe): every commit bumps the stripe (a field of the hash
# ``p v:``) of each thing it writes: its story id (here) and its index and link keys (computed by the
# client, A.bump); the read returns the versions of the stripes of everything its decision rests on,
# and the commit goes ahead only if none moved.
_STRIPE = """
local function stripe(sid)
  return tonumber(string.sub(redis.sha1hex(sid), 1, 4), 16)
end
"""

# A posting list (the field of an index key in its day's hash ``ph:<day>:<shard>``): entries
# concatenated, each ts (double, big-endian) + tag + story id; tag 0: the id is "story:" and 16
# lower-case hex digits, stored as 8 bytes (every id story_id_for makes); tag n > 0: n bytes of id.
# 17 bytes an entry, so a full list (max_postings 12) stays under hash-max-listpack-value (256).
_POSTINGS = """
local function decode_postings(blob)
  local rows, pos = {}, 1
  while blob and pos <= #blob do
    local ts, tag = struct.unpack('>d', blob, pos), string.byte(blob, pos + 8)
    local sid
    if tag == 0 then
      local hi, lo = struct.unpack('>I4I4', string.sub(blob, pos + 9, pos + 16))
      sid = string.format('story:%08x%08x', hi, lo)
      pos = pos + 17
    else
      sid = string.sub(blob, pos + 9, pos + 8 + tag)
      pos = pos + 9 + tag
    end
    rows[#rows + 1] = {ts, sid}
  end
  return rows
end
local function encode_posting(ts, sid)
  if #sid == 22 and string.match(sid, '^story:[0-9a-f]+$') then
    return struct.pack('>dB', ts, 0) .. struct.pack('>I4I4', tonumber(string.sub(sid, 7, 14), 16),
                                                   tonumber(string.sub(sid, 15, 22), 16))
  end
  return struct.pack('>dB', ts, #sid) .. sid
end
-- A story's tally key: a posting list's raw entry from its tag byte on for an id encode_posting
-- packs (tag 0 + 8 bytes), else byte 1 + the id.
local function canonical(sid)
  if #sid == 22 and string.match(sid, '^story:[0-9a-f]+$') then
    return '\\0' .. struct.pack('>I4I4', tonumber(string.sub(sid, 7, 14), 16), tonumber(string.sub(sid, 15, 22), 16))
  end
  return '\\1' .. sid
end
-- Tally a posting list's entries filed at or after horizon (ZRANGEBYSCORE horizon +inf), all of
-- them unread when ``whole`` (a list of a day that starts at or after horizon: the list of day d
-- holds only times in that day): each story (by its tally key, see canonical) not yet in ``seen``
-- gets ``w`` added to its score; a story new to ``score`` is appended to ``order``.
local function tally_postings(blob, horizon, whole, w, seen, score, order)
  local pos, n = 1, #blob
  while pos <= n do
    local tag = string.byte(blob, pos + 8)
    local len = tag == 0 and 8 or tag
    if whole or struct.unpack('>d', blob, pos) >= horizon then
      local key = string.sub(blob, pos + 8, pos + 8 + len)
      if tag ~= 0 then key = canonical(string.sub(key, 2)) end
      if not seen[key] then
        seen[key] = true
        local s = score[key]
        if not s then order[#order + 1] = key; s = 0 end
        score[key] = s + w
      end
    end
    pos = pos + 9 + len
  end
end
-- the story id of a tally key
local function story_id(key)
  if string.byte(key, 1) == 0 then
    return string.format('story:%08x%08x', struct.unpack('>I4I4', string.sub(key, 2)))
  end
  return string.sub(key, 2)
end
-- file sid at ts in a posting list, keeping the keep newest (ZADD + ZREMRANGEBYRANK 0 -(keep + 1)).
-- A list is stored in (time, story id) order, as a zset ranks its members, so filing is one pass
-- over the raw entries (ids are decoded only to break a tie in time) and trimming drops the head.
local function file_posting(hkey, field, ts, sid, keep)
  local own = encode_posting(ts, sid)
  local own_id = string.sub(own, 9)
  local blob = redis.call('HGET', hkey, field) or ''
  local parts, pos, n, placed = {}, 1, #blob, false
  while pos <= n do
    local tag = string.byte(blob, pos + 8)
    local len = tag == 0 and 8 or tag
    local e = string.sub(blob, pos, pos + 8 + len)
    pos = pos + 9 + len
    if string.sub(e, 9) ~= own_id then
      if not placed then
        local t = struct.unpack('>d', e)
        if ts < t or (ts == t and sid < decode_postings(e)[1][2]) then
          parts[#parts + 1] = own
          placed = true
        end
      end
      parts[#parts + 1] = e
    end
  end
  if not placed then parts[#parts + 1] = own end
  if #parts > keep then parts = {unpack(parts, #parts - keep + 1)} end
  redis.call('HSET', hkey, field, table.concat(parts))
end
"""

# The read's retrieval. A = cjson.decode(ARGV[1]): links (keys), linka (for each link, the result key
# ``a:`` of the event it names, or ''), posts ([index key, weight]), pdays
# (the day buckets to look in), horizon, maxc, prefix, linked_only. Returns the linked story id (or
# false), candidate ids (linked first), their states ('' when expired) and whether the candidates
# were left out (linked_only and a kept linked story: it alone is returned). A merged story's state
# is '>' + the id of the story it was merged into: ids from links and postings are followed there
# (root), each story once.
_RETRIEVE = _STRIPE + _POSTINGS + """
local function root(prefix, sid)
  for _ = 1, 16 do
    local st = redis.call('GET', prefix .. 's:' .. sid)
    if not st then return sid, '' end
    if string.sub(st, 1, 1) ~= '>' then return sid, st end
    sid = string.sub(st, 2)
  end
  return sid, ''
end
local function retrieve(A)
  local linked, linked_state = false, ''
  for i, key in ipairs(A.links) do
    local sid = false
    if A.linka[i] ~= '' then  -- an event's link: the story id that opens its result
      local rec = redis.call('GET', A.linka[i])
      if rec then sid = string.match(rec, '^Z([^\\31]+)\\31') or string.match(rec, '^%["([^"]+)"') or false end
    end
    if not sid then sid = redis.call('GET', key) end  -- a source's story key (or a link the earlier layout wrote)
    if sid then linked, linked_state = root(A.prefix, sid); break end
  end
  -- A linked story that is kept decides alone while it is open (choose_story): with A.linked_only
  -- the candidates are not looked up, and the reply says so (partial); the client asks again
  -- without linked_only when the story turns out closed at the event's time.
  if A.linked_only and linked and linked_state ~= '' then return linked, {linked}, {linked_state}, true end
  -- Tally: each story once per index key, with that key's weight (added in A.posts order), by its
  -- tally key (tally_postings); ids are formatted once, at the end.
  local score, order = {}, {}
  local old = redis.call('EXISTS', A.prefix .. 'p-old') == 1
  local horizon = A.horizon
  for _, post in ipairs(A.posts) do
    local seen, w = {}, post[2]
    for _, day in ipairs(A.pdays) do
      local blob = redis.call('HGET', A.prefix .. 'ph:' .. day .. ':' .. post[3], post[1])
      if blob then tally_postings(blob, horizon, day * 86400 >= horizon, w, seen, score, order) end
      if old then
        for _, sid in ipairs(redis.call('ZRANGEBYSCORE', A.prefix .. 'p:' .. day .. ':' .. post[1], horizon, '+inf')) do
          local key = canonical(sid)
          if not seen[key] then
            seen[key] = true
            if not score[key] then order[#order + 1] = key; score[key] = 0 end
            score[key] = score[key] + w
          end
        end
      end
    end
  end
  local ids, by_id = {}, {}
  for i, key in ipairs(order) do
    ids[i] = story_id(key)
    by_id[ids[i]] = score[key]
  end
  -- Best first: higher score, then smaller id. Only the first few are needed (max_candidates, more
  -- when ids lead to one story), so the best `want` are picked in one pass, and all are sorted
  -- only if the loop below runs past them (the same order: a total order on distinct ids).
  local function before(a, b)
    local sa, sb = by_id[a], by_id[b]
    if sa ~= sb then return sa > sb end
    return a < b
  end
  local want, ranked = A.maxc + 2, {}
  for _, sid in ipairs(ids) do
    local n = #ranked
    if n < want then
      n = n + 1
    elseif not before(sid, ranked[n]) then
      n = 0
    end
    if n > 0 then
      while n > 1 and before(sid, ranked[n - 1]) do ranked[n] = ranked[n - 1]; n = n - 1 end
      ranked[n] = sid
    end
  end
  local cands, states, taken = {}, {}, {}
  if linked then cands[1] = linked; states[1] = linked_state; taken[linked] = true end
  local i = 0
  while #cands < A.maxc + (linked and 1 or 0) do
    i = i + 1
    if i > #ranked then
      if #ranked == #ids then break end
      table.sort(ids, before)
      ranked = ids
    end
    local r, st = root(A.prefix, ranked[i])
    if not taken[r] then
      taken[r] = true
      cands[#cands + 1] = r
      states[#states + 1] = st
    end
  end
  return linked, cands, states, false
end
"""

# Reply: [meta JSON, state 1, state 2, ...], or ['{"done": true}', stored result]. meta: linked,
# cands, df (events, then per term), stripes and ver: the stripes of what the decision read (A.read,
# its index and link keys', from the client, or A.lread, the link keys' only, when partial; the
# candidates') and their versions, ','-joined; nov:
# the linked story's novelty read (false without a linked story), see below.
_READ = _RETRIEVE + """
local A = cjson.decode(ARGV[1])
local done = redis.call('GET', A.done)
if done then return {'{"done": true}', done} end
local linked, cands, states, partial = retrieve(A)
local df = {}
for i = 0, #A.terms do df[i + 1] = 0 end
for _, day in ipairs(A.days) do
  local row = redis.call('HMGET', day, '', unpack(A.terms))
  for i = 1, #row do df[i] = df[i] + (tonumber(row[i]) or 0) end
end
-- A partial read's decision rests on the linked story alone and the links that named it (an open
-- linked story decides without candidates), so its index keys' stripes are left out: a story filed
-- under one of them meanwhile changes nothing the commit would write.
local stripes, seen = {}, {}
for _, n in ipairs(partial and A.lread or A.read) do seen[n] = true; stripes[#stripes + 1] = n end
for _, sid in ipairs(cands) do
  local n = stripe(sid)
  if not seen[n] then seen[n] = true; stripes[#stripes + 1] = n end
end
local ver = {}
if #stripes > 0 then ver = redis.call('HMGET', A.prefix .. 'v:', unpack(stripes)) end
for i = 1, #ver do ver[i] = ver[i] or '0' end
-- The novelty read of the linked story (the story the event joins while it is open): each set's
-- size and which of the event's members (A.nk, A.nh) it holds, as '0'/'1' characters.
local nov = false
if linked and states[1] ~= '' then
  nov = {}
  for _, kind in ipairs({'nk', 'nh'}) do
    local key, members, hits = A.prefix .. kind .. ':' .. linked, A[kind], {}
    nov[#nov + 1] = redis.call('SCARD', key)
    for from = 1, #members, 1000 do
      for _, hit in ipairs(redis.call('SMISMEMBER', key, unpack(members, from, math.min(from + 999, #members)))) do
        hits[#hits + 1] = hit
      end
    end
    nov[#nov + 1] = table.concat(hits)
  end
end
local reply = {cjson.encode({done = false, linked = linked or '', cands = cands, df = df,
                             stripes = stripes, ver = table.concat(ver, ','), nov = nov, partial = partial})}
for i = 1, #states do reply[#reply + 1] = states[i] end
return reply
"""

# ARGV[1] (JSON): done, prefix, the read's stripes and ver, sid, ts, ttl, keep, day_ttl, file
# (posting keys), own (link keys), bump (their stripes), day (df hash), terms, nk / nh (members to
# add, empty when the set is full), absorb (ids of stories merged into sid: each becomes a redirect '>' .. sid, its novelty
# sets join sid's); ARGV[2] the story state, ARGV[3] the event's result.
# Reply: {'ok'} | {'retry'} | {'done', result}.
_COMMIT = _STRIPE + _POSTINGS + """
local A = cjson.decode(ARGV[1])
local done = redis.call('GET', A.done)
if done then return {'done', done} end
local vkey = A.prefix .. 'v:'
local ver = {}
if #A.stripes > 0 then ver = redis.call('HMGET', vkey, unpack(A.stripes)) end
for i = 1, #ver do ver[i] = ver[i] or '0' end
if table.concat(ver, ',') ~= A.ver then return {'retry'} end
local sid, ttl = A.sid, A.ttl
local bumped = {}
local function bump(n)
  if not bumped[n] then bumped[n] = true; redis.call('HINCRBY', vkey, n, 1) end
end
for _, n in ipairs(A.bump) do bump(n) end
bump(stripe(sid))
redis.call('SET', A.done, ARGV[3], 'PX', ttl)
redis.call('SET', A.prefix .. 's:' .. sid, ARGV[2], 'PX', ttl)
for _, old in ipairs(A.absorb) do
  redis.call('SET', A.prefix .. 's:' .. old, '>' .. sid, 'PX', ttl)
  bump(stripe(old))
  for _, kind in ipairs({'nk', 'nh'}) do
    local from = A.prefix .. kind .. ':' .. old
    if redis.call('EXISTS', from) == 1 then
      local into = A.prefix .. kind .. ':' .. sid
      redis.call('SUNIONSTORE', into, into, from)
      redis.call('DEL', from)
    end
  end
end
for _, kind in ipairs({'nk', 'nh'}) do
  local key, members = A.prefix .. kind .. ':' .. sid, A[kind]
  for from = 1, #members, 1000 do
    redis.call('SADD', key, unpack(members, from, math.min(from + 999, #members)))
  end
  redis.call('PEXPIRE', key, ttl)
end
for _, key in ipairs(A.own) do redis.call('SET', key, sid, 'PX', ttl) end
for _, hf in ipairs(A.file) do
  file_posting(hf[1], hf[2], A.ts, sid, A.keep)
  redis.call('PEXPIRE', hf[1], ttl)
end
redis.call('HINCRBY', A.day, '', 1)
for _, term in ipairs(A.terms) do redis.call('HINCRBY', A.day, term, 1) end
redis.call('EXPIRE', A.day, A.day_ttl)
redis.call('PEXPIRE', vkey, ttl)
return {'ok'}
"""


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
        story = {"is_new": self.is_new,
                 "score": round(self.score.score, 3) if self.score else None,
                 "event_count": st["event_count"], "source_count": st["source_count"],
                 "first_seen": st["first_seen"], "last_seen": st["last_seen"],
                 "top_entities": st["top_entities"], "top_places": st["top_places"]}
        if st.get("merged_from"):  # only on stories that absorbed another (late merge)
            story["merged_from"] = list(st["merged_from"])
        return {
            "story_id": self.story_id,
            "story": story,
            "novelty": {"ratio": round(self.novelty_ratio, 3), "new_sentences": list(self.new_sentences),
                        "repeated": self.repeated},
        }


def link_keys(event: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(keys this event can follow to a known story, keys it files its own story under).

    Follow: the events it duplicates (``duplicate_of`` / ``near_duplicate_of``), the earlier version
    of its page it updates (``update_of``: a live blog's update is activity of the blog's story)
    and, when its source named a story (``story_key``, e.g. a live blog's id), that source's story.
    Own: its event id and that story key.
    """
    follow = [f"e:{event[f]}" for f in ("duplicate_of", "near_duplicate_of", "update_of") if event.get(f)]
    own = [f"e:{event['event_id']}"]
    if event.get("story_key"):
        key = f"k:{event.get('source')}\x1f{event['story_key']}"
        follow.append(key)
        own.append(key)
    return follow, own


@dataclass(frozen=True)
class _SentenceMarks:
    """An event's sentences as novelty memory sees them, with the small hashes stored in Redis."""

    counted: list[CountedSentence]
    keys: dict[str, int]       # sentence_key -> small hash
    shingles: dict[int, int]   # sampled shingle hash -> small hash
    sentences: list[str]       # all the text's sentences (dedup.logic.sentences)


def _sentence_marks(text: str, settings: NoveltySettings) -> _SentenceMarks:
    split = [sentence.text for sentence in sentence_words(text)]
    counted = counted_sentences(text, settings)
    keys = {c.key: small_hash(int(key_hash(c.key), 16)) for c in counted}
    shingles = {h: small_hash(h) for c in counted for h in c.shingles}
    return _SentenceMarks(counted, keys, shingles, split)


def _linked_novelty_memory(memory: StoryMemory, marks: _SentenceMarks, nov: list[Any],
                           settings: NoveltySettings) -> tuple[bool, bool]:
    """:meth:`RedisStoryStore._novelty_memory` for the linked story, from what the read returned
    (``nov``: the size of its sentence-key set, which of the event's keys it holds as '0'/'1'
    characters, then the same for its shingle set): no round trip of its own."""
    n_keys, key_hits, n_shingles, shingle_hits = nov
    memory.sentence_keys.update({m: None for m, hit in zip(marks.keys, key_hits, strict=True) if hit == "1"})
    memory.shingles.update({m: None for m, hit in zip(marks.shingles, shingle_hits, strict=True) if hit == "1"})
    return int(n_keys) >= settings.max_sentences, int(n_shingles) >= settings.max_shingles


def _translation_profile(features: StoryFeatures, story: StoryState) -> dict[str, Any] | None:
    """A copy of the story's cross-lingual profile when the event is the story's first report in its
    language (its novelty is then judged by its numbers, :func:`translation_novelty`), else None."""
    cross = features.cross
    if cross is None or not first_in_language(story.lingual, cross.language):
        return None
    return {"numbers": list(story.lingual.get("numbers", ()))}


#: Decoded story states a :class:`RedisStoryStore` keeps, by their stored bytes: a candidate that
#: did not change since an earlier event read it is not decompressed and parsed again (~120 us
#: each, ~8 candidates an event). A decoded state is ~25 KiB of Python objects (+ ~2.4 KB of key),
#: so 256 are ~7 MiB per store; on bench/stories_identical.py's stream 256 hit 79% of candidate
#: reads, 512 81%, 2,048 82%, 128 75%.
STATE_CACHE_SIZE = 256


class RedisStoryStore:
    """Assign events to stories and measure their novelty, with all state in Redis (see module doc)."""

    def __init__(self, client: redis.Redis, settings: StorySettings = DEFAULT_STORY_SETTINGS,
                 novelty: NoveltySettings = DEFAULT_NOVELTY_SETTINGS, *, namespace: str = "",
                 max_retries: int = 50, posting_shards: int = POSTING_SHARDS,
                 state_cache_size: int = STATE_CACHE_SIZE) -> None:
        self.client, self.settings, self.novelty = client, settings, novelty
        self.prefix = f"{namespace}st:"
        self.max_retries = max_retries
        self.posting_shards = posting_shards  # every process sharing the state must use the same
        self._old_checked = False
        self._ttl_ms = max(1, round(settings.max_gap_s * 1000))
        self._days = math.ceil(settings.max_gap_s / _DAY_S) + 1
        self.conflicts = 0  # commits refused because a candidate changed, for metrics and tests
        # Decoded candidate states by their stored bytes (LRU, read-only; see _decode)
        self._states: dict[bytes, StoryState] = {}
        self.state_cache_size = state_cache_size
        self.state_cache_hits = self.state_cache_misses = 0
        self._read = client.register_script(_READ)
        self._commit = client.register_script(_COMMIT)

    def _k(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    def _posting_shard(self, index_key: str) -> int:
        return zlib.crc32(index_key.encode()) % self.posting_shards

    def _note_old_postings(self) -> None:
        """Once, before the first event: when posting zsets of the earlier layout (``p:<day>:<key>``,
        a third of a stories Redis' keys) are left, set the marker ``p-old`` that makes the retrieval
        read them too, until the last of them has expired (``max_gap_s``)."""
        if not self._old_checked:
            mark_if_keys_left(self.client, f"{self.prefix}p:*", f"{self.prefix}p-old", self._ttl_ms)
            self._old_checked = True

    # ------------------------------------------------------------------ public

    def assign(self, event: Mapping[str, Any], ts: float) -> StoryDecision:
        """The event's story and novelty; stores both. Re-processing an event returns its first result."""
        s = self.settings
        self._note_old_postings()
        event_id = str(event["event_id"])
        item = StoryInput.from_event(event, ts)
        features = story_features(item, s)
        keys = index_keys(features, s)
        follow, own = link_keys(event)
        marks = _sentence_marks(item.text, self.novelty)
        today = int(ts // _DAY_S)
        days = range(int((ts - s.max_gap_s) // _DAY_S), today + 2)
        terms = features.terms
        links = [self._k("l", f) for f in follow]
        link_stripes = set(map(_stripe, links))
        args: dict[str, Any] = {
            "done": self._k("a", event_id), "links": links,
            "linka": [self._k("a", f[2:]) if f.startswith("e:") else "" for f in follow],
            "read": sorted({*map(_stripe, keys), *link_stripes}), "lread": sorted(link_stripes),
            "posts": [[k, w, self._posting_shard(k)] for k, w in keys.items()], "pdays": list(days),
            "horizon": ts - s.max_gap_s, "maxc": s.max_candidates, "prefix": self.prefix,
            "days": [self._k("df", str(d)) for d in range(today - self._days + 1, today + 1)], "terms": terms,
            "nk": list(marks.keys.values()), "nh": list(marks.shingles.values()),
            "linked_only": True,  # False once the linked story turned out closed (the read then looks up candidates)
        }
        for _ in range(self.max_retries):
            reply = self._read(args=[orjson.dumps(args)])
            meta = orjson.loads(reply[0])
            if meta["done"]:
                return _decision_from_json(reply[1], item.text)
            df = meta["df"]
            rarity = Rarity(docs=df[0] + 1.0, df={t: df[i + 1] + 1.0 for i, t in enumerate(terms)},
                            prior_docs=s.prior_docs)  # counting this event, as StoryClusterer does
            vecs = vectors(features, rarity)
            raws = {sid: raw for sid, raw in zip(meta["cands"] or [], reply[1:], strict=True) if raw}
            decoded: dict[int, bytes] = {}  # id(state) -> its raw state, for the one chosen
            linked_id = meta["linked"]
            linked = self._decode(raws[linked_id], decoded) if linked_id in raws else None
            # An open linked story is joined whatever the candidates are: the read leaves them out
            # (partial), and asks for them only when the linked story is closed at ts.
            if linked is not None and linked_open(linked, ts, s):
                others = []
            elif meta["partial"]:
                args["linked_only"] = False
                continue
            else:
                others = [self._decode(raw, decoded) for sid, raw in raws.items() if sid != linked_id]
            best, story, absorbed = choose_story(features, vecs, ts, others, s, linked)
            if story is None:
                best, story = None, StoryState(story_id_for(event_id), ts, ts)
            else:
                story = self._to_change(story, decoded[id(story)])
            sid = story.story_id
            merge_into(story, absorbed, s)
            translation = _translation_profile(features, story) if sid in raws else None
            story.add(item, features, vecs, s)
            memory, full = StoryMemory(), (False, False)
            if sid in raws and sid == linked_id and not absorbed and meta["nov"]:
                full = _linked_novelty_memory(memory, marks, meta["nov"], self.novelty)
            elif sid in raws:
                full = self._novelty_memory(memory, marks, [sid, *(st.story_id for st in absorbed)])
            novelty = assess_novelty(item.text, memory, self.novelty, marks.counted)
            if translation is not None:  # first report of the story in its language: see crosslingual.py
                new, retold = translation_novelty(novelty.new_sentences, translation)
                novelty = NoveltyResult(tuple(new), (*novelty.repeated_sentences, *retold),
                                        len(new) / max(1, len(novelty.new_sentences) + len(novelty.repeated_sentences)))
            decision = StoryDecision(sid, best is None, best, _iso_summary(story, s),
                                     novelty.new_sentences, len(novelty.repeated_sentences), novelty.novelty_ratio)
            commit = {"done": args["done"], "prefix": self.prefix, "stripes": meta["stripes"], "ver": meta["ver"],
                      "sid": sid, "ts": ts, "ttl": self._ttl_ms, "keep": s.max_postings,
                      "day_ttl": int(self._days * _DAY_S), "day": self._k("df", str(today)), "terms": terms,
                      "file": [[self._k("ph", f"{today}:{self._posting_shard(k)}"), k] for k in keys],
                      "own": [self._k("l", o) for o in own if not o.startswith("e:")],  # e: see the layout
                      "absorb": [st.story_id for st in absorbed],
                      "bump": sorted({*map(_stripe, keys), *(_stripe(self._k("l", o)) for o in own)}),
                      "nk": [] if full[0] else list(marks.keys.values()),
                      "nh": [] if full[1] else list(marks.shingles.values())}
            state = story_to_json(story)
            result = self._commit(args=[orjson.dumps(commit), state,
                                        _decision_to_json(decision, item.text, marks.sentences)])
            status = result[0].decode() if isinstance(result[0], bytes) else result[0]
            if status == "ok":
                self._keep(state, story)
                return decision
            if status == "done":
                return _decision_from_json(result[1], item.text)
            self.conflicts += 1
        raise StoryContention(f"stories: event {event_id} lost {self.max_retries} commits in a row; "
                              "is another writer looping on the same keys?")

    def _to_change(self, story: StoryState, raw: bytes) -> StoryState:
        """The chosen story's state for the event to change: the decoded state itself, taken out of
        the cache (so no later read sees it half-changed; a store serves one thread, and nothing of
        this decision reads the chosen state after the choice), or, when the cache no longer holds
        it as ``raw``'s state, a fresh decode of ``raw``."""
        if self._states.get(raw) is story:
            del self._states[raw]
            return story
        return story_from_json(raw)

    def _keep(self, raw: bytes, story: StoryState) -> None:
        """Cache ``story`` as the decoded state of ``raw``, most recently used (the dict's order is
        least recently used first), dropping the least recent past ``state_cache_size``. After a
        commit, ``raw`` is the state just stored: the next event that reads this story (in a burst,
        the next few usually do) finds it decoded; it is what :func:`story_from_json` gives for
        ``raw``, every field being JSON-shaped (lists, str keys, floats) in memory too."""
        cache = self._states
        cache.pop(raw, None)
        cache[raw] = story
        if len(cache) > self.state_cache_size:
            del cache[next(iter(cache))]

    def _decode(self, raw: bytes, decoded: dict[int, bytes]) -> StoryState:
        """The story state stored as ``raw`` (:func:`story_from_json`), from the cache of decoded
        states when it holds those exact bytes (a candidate that did not change since an earlier
        event read it), for reading only; ``decoded`` maps the states of one decision to their raw
        bytes (a state twice in one decision is decoded apart, so no two candidates are one object)."""
        cache = self._states
        story = cache.pop(raw, None)
        if story is None or id(story) in decoded:
            self.state_cache_misses += 1
            story = story_from_json(raw)
        else:
            self.state_cache_hits += 1
        self._keep(raw, story)
        decoded[id(story)] = raw
        return story

    def _novelty_memory(self, memory: StoryMemory, marks: _SentenceMarks, stories: list[str]) -> tuple[bool, bool]:
        """Fill ``memory`` with the event's sentence keys and shingles that the chosen story (first of
        ``stories``) or a story merged into it holds; returns whether the chosen story's sets are full.

        One pipelined round trip, for the chosen story only (the read used to test every candidate's
        sets inside its script). No lock is needed: the sets change only with their story's state,
        whose version the commit checks."""
        key_marks, sh_marks = list(marks.keys), list(marks.shingles)
        nk, nh = list(marks.keys.values()), list(marks.shingles.values())
        pipe = self.client.pipeline(transaction=False)
        for sid in stories:
            for kind, members in (("nk", nk), ("nh", nh)):
                pipe.scard(self._k(kind, sid))
                if members:
                    pipe.smismember(self._k(kind, sid), members)
        replies = iter(pipe.execute())
        counts: list[int] = []
        for _ in stories:
            counts.append(int(next(replies)))
            if nk:
                memory.sentence_keys.update({m: None for m, hit in zip(key_marks, next(replies), strict=True) if hit})
            counts.append(int(next(replies)))
            if nh:
                memory.shingles.update({m: None for m, hit in zip(sh_marks, next(replies), strict=True) if hit})
        return counts[0] >= self.novelty.max_sentences, counts[1] >= self.novelty.max_shingles

    def merged_into(self, story_id: str) -> str:
        """The story ``story_id`` is part of now: itself, or (after late merges) the story it was
        merged into, followed to the end; unknown and expired ids map to themselves."""
        for _ in range(16):
            raw = self.client.get(self._k("s", story_id))
            if isinstance(raw, str):
                raw = raw.encode()
            if raw is None or raw[:1] != b">":  # a state (compressed or JSON), not a redirect
                break
            story_id = raw[1:].decode()
        return story_id

    def story(self, story_id: str) -> dict[str, Any] | None:
        """A story's summary as stored now (None when unknown or expired; a merged story's id gives
        the story it was merged into)."""
        raw = self.client.get(self._k("s", self.merged_into(story_id)))
        return None if raw is None else story_from_json(raw).summary(self.settings)

    def memory_usage(self, sample: int = 2000) -> dict[str, int]:
        """Bytes and keys per key kind (``MEMORY USAGE`` on up to ``sample`` keys of each), for the bench."""
        out: dict[str, int] = {}
        for kind in KEY_KINDS:
            keys = list(self.client.scan_iter(match=f"{self.prefix}{kind}:*", count=1000))
            sizes = [self.client.memory_usage(k) or 0 for k in keys[:sample]]
            out[f"{kind}_keys"] = len(keys)
            out[f"{kind}_bytes"] = int(sum(sizes) * (len(keys) / max(1, len(sizes))))
        return out


KEY_KINDS = ("a", "s", "ph", "p", "l", "nk", "nh", "df", "v")


#: Version stripes: fields of the hash ``p v:``, a counter each (a few MB when all are used).
STRIPES = 1 << 16


def _stripe(name: str) -> int:
    """The version stripe of an index key (all its day buckets) or a link key. Two names sharing a
    stripe only cost a needless retry now and then. Story ids' stripes are computed in the scripts
    (``_STRIPE``), from a different hash; both land in the same field space."""
    return zlib.crc32(name.encode()) % STRIPES


#: A story's state is stored as a JSON list of these fields of :meth:`StoryState.to_state`, in this
#: order (the names took ~150 bytes of every story); the optional last two are left out when empty.
STATE_FIELDS = ("story_id", "first_seen", "last_seen", "event_count", "source_count", "sources", "centroid",
                "name_centroid", "terms", "names", "numbers", "quotes", "merged_from", "lingual")
_OPTIONAL_STATE_FIELDS = 2


#: A story state or an event's result stored zlib'd starts with this byte (JSON starts with "[" or
#: "{", a merged story's redirect with ">"): zlib level 1 halves a state (1,378 -> 715 bytes on the
#: bench stream) for ~30 us to compress at a commit and ~12 us to decompress each candidate read.
_ZLIB = b"Z"


def story_to_json(story: StoryState) -> bytes:
    """The story's state as stored under ``s:<story_id>``: ``Z`` + zlib of the JSON list of its
    fields in :data:`STATE_FIELDS` order."""
    state = story.to_state()
    values = [state.get(k) for k in STATE_FIELDS]
    while len(values) > len(STATE_FIELDS) - _OPTIONAL_STATE_FIELDS and not values[-1]:
        values.pop()
    return _ZLIB + zlib.compress(orjson.dumps(values), 1)


def story_from_json(raw: bytes | str) -> StoryState:
    """Inverse of :func:`story_to_json`; also reads the plain JSON list and the JSON object that
    earlier versions stored."""
    if isinstance(raw, bytes) and raw[:1] == _ZLIB:
        raw = zlib.decompress(raw[1:])
    state = orjson.loads(raw)
    return StoryState.from_state(dict(zip(STATE_FIELDS, state, strict=False)) if isinstance(state, list) else state)


def _iso_summary(story: StoryState, settings: StorySettings) -> dict[str, Any]:
    summary = story.summary(settings)
    summary["first_seen"] = iso_from_millis(int(story.first_seen * 1000))
    summary["last_seen"] = iso_from_millis(int(story.last_seen * 1000))
    return summary


def _decision_to_json(d: StoryDecision, text: str, split: list[str] | None = None) -> bytes:
    """The event's result, compact (it is kept for every event in the window, for replays and as
    the event's link): ``Z`` + story id + ``\x1f`` + zlib of the JSON record, in which new sentences
    are their positions in the event's text, times epoch milliseconds, and a list of like-keyed
    dicts (top entities, top places) ``[keys, rows]``. The story id stays readable for the scripts
    (an event's link); zlib takes ~40% off the record for ~20 us of CPU. ``split``:
    ``sentences(text)`` when the caller has it."""
    index = {sent: i for i, sent in enumerate(sentences(text) if split is None else split)}
    st = d.story
    record = orjson.dumps([d.story_id, d.is_new, d.score.score if d.score else None,
                           [_pack(st[k]) for k in _SUMMARY_KEYS], [index[x] for x in d.new_sentences],
                           d.repeated, d.novelty_ratio])
    return _ZLIB + d.story_id.encode() + b"\x1f" + zlib.compress(record, 1)


_SUMMARY_KEYS = ("event_count", "source_count", "first_seen", "last_seen", "top_entities", "top_places", "merged_from")


def _pack(value: Any) -> Any:
    if isinstance(value, str) and value.endswith("Z"):
        try:
            ms = round(datetime.fromisoformat(value).timestamp() * 1000)
        except ValueError:
            return value
        return ms if iso_from_millis(ms) == value else value
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        keys = list(value[0])
        if all(list(v) == keys for v in value):
            return [keys, [list(v.values()) for v in value]]
    return value


def _unpack(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return iso_from_millis(value)
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], list) and isinstance(value[1], list) \
            and all(isinstance(k, str) for k in value[0]) and all(isinstance(r, list) for r in value[1]):
        return [dict(zip(value[0], row, strict=True)) for row in value[1]]
    return value


def _decision_from_json(raw: bytes, text: str) -> StoryDecision:
    if raw[:1] == _ZLIB:  # earlier versions stored the JSON record as it is
        raw = zlib.decompress(raw[raw.index(b"\x1f") + 1:])
    sid, is_new, score, summary, new_idx, repeated, ratio = orjson.loads(raw)
    all_sentences = sentences(text)
    if len(summary) < len(_SUMMARY_KEYS):  # stored before late merges existed
        summary = [*summary, []]
    story = {k: (_unpack(v) if k in _PACKED else v) for k, v in zip(_SUMMARY_KEYS, summary, strict=True)}
    return StoryDecision(sid, is_new, None if score is None else StoryScore(sid, score), story,
                         tuple(all_sentences[i] for i in new_idx), repeated, ratio)


_PACKED = frozenset({"first_seen", "last_seen", "top_entities", "top_places"})
