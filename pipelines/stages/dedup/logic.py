"""Exact, near-duplicate and fragment detection as pure functions over explicit keyed state.

How it works
------------
Each event is turned into a :class:`Fingerprint` (:func:`fingerprint`), which names the *state keys*
the event is looked up and stored under:

* ``h:<content_hash>``          exact copy of the normalised text
* ``u:<hash of canonical URL>`` same article URL (utm_* parameters, fragment, trailing slash ignored)
* ``g:<hash of feed GUID>``     same feed item (the GUID is scoped by source)
* ``b<band>:<hash of band>``    MinHash LSH band (word 3-shingles, ``num_perm`` = bands x rows);
  a re-post with edits shares many bands with the original
* ``s:<hash of sentence>``      one per sentence of at least ``min_sentence_words`` words
  (case, punctuation and line wrapping folded); an excerpt or a truncated copy shares sentences
  with the article even when its Jaccard similarity is tiny

A key's state is a :data:`Bucket`: a short tuple of :class:`BucketEntry` ``(event_id, ts, size)``,
oldest first, at most ``max_bucket_entries`` long (the first events are kept: they are the ones a
duplicate points at). ``size`` is the event's shingle count for band keys, its sentence-key count
for sentence keys and a 16-bit tag of its source for page keys (``u:``/``g:``). No signature or text
is stored anywhere: the verdict is computed from *how many* of an event's keys hit each earlier
event (band hits give a Jaccard estimate, sentence hits give containment).

A content-hash key keeps its first event only. A page key (URL or GUID) keeps every version of
the page that is not an exact copy of something seen, oldest first, so a live blog's revision finds
the version it supersedes (see :func:`judge` for when a changed page is an update, not a copy).

One event is processed in two steps, the same in memory, in Redis and in Beam keyed state:

1. per key, :func:`probe_bucket` (atomic read-modify-write of that key's state): returns the live
   entries that were there (the hits) and the new bucket with this event appended and expired
   entries dropped;
2. per event, :func:`judge` takes the hits of all its keys and returns a :class:`DedupVerdict`.

Because a key is a hash of content (never a worker or partition), the same band / sentence always
lands on the same key, so copies that arrive on different workers meet in the same keyed state.
In Beam: ``FlatMap(event -> (key, probe) for key in fp.keys)`` -> stateful DoFn keyed by key
(``BagState``/``ValueState`` holding the bucket, a timer at ``last_ts + ttl`` clearing it) ->
re-key by event_id and gather ``len(fp.keys)`` :class:`KeyHits` (or until a short timer fires) ->
:func:`judge` (``pipelines.stages.dedup.transform.Deduplicate``; 27-51 ms per event on Prism, so the
pipeline uses :class:`connectors.redis.RedisDedupStore` instead: one server-side script per event
runs step 1 for all the event's keys). :class:`DedupIndex` is the same with a dict as the state;
tests and the bench use it.

TTL: entries older than ``ttl_s`` (default 72 h) are ignored and dropped on every probe; whole keys
are dropped by :meth:`DedupIndex.expire` (a Beam timer in the pipeline).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from core.settings import DedupSettings
from core.urls import canonical_url

_WORD = re.compile(r"\w+")
_MASK64 = (1 << 64) - 1


DEFAULT_SETTINGS = DedupSettings()


# --------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Lower-cased word tokens; punctuation, quotes, '@' and line wrapping do not matter."""
    return _WORD.findall(text.lower())


def key_hash(data: str | bytes) -> str:
    """16 hex chars of BLAKE2b: the hash part of every state key (stable across processes)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.blake2b(data, digest_size=8).hexdigest()


_PERM_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
_SHINGLE_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5],
                         dtype=np.uint64)


def _perms(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    cached = _PERM_CACHE.get((num_perm, seed))
    if cached is None:
        rng = np.random.default_rng(seed)
        a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd
        b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        cached = (a.reshape(-1, 1), b.reshape(-1, 1))
        _PERM_CACHE[(num_perm, seed)] = cached
    return cached


#: The longest shingle :func:`window_hashes` hashes (longer ones are cut to this many words).
MAX_SHINGLE_WORDS = len(_SHINGLE_MULT)


def window_hashes(tokens: Sequence[str], k: int = 3) -> np.ndarray:
    """The 64-bit hash of every word k-shingle of ``tokens``, in order, repeats included (k is cut
    to ``len(tokens)`` and to :data:`MAX_SHINGLE_WORDS`); ``tokens`` must not be empty."""
    # map() over C functions, no generator frame per token: ~40% less time than a genexpr
    w = np.fromiter(map(zlib.crc32, map(str.encode, tokens)), dtype=np.uint64, count=len(tokens))
    k = max(1, min(k, len(tokens), MAX_SHINGLE_WORDS))
    n = len(tokens) - k + 1
    with np.errstate(over="ignore"):
        h = np.zeros(n, dtype=np.uint64)
        for i in range(k):
            h += w[i:i + n] * _SHINGLE_MULT[i]
        h ^= h >> np.uint64(29)
    return h


def shingle_hashes(tokens: Sequence[str], k: int = 3) -> np.ndarray:
    """Distinct 64-bit hashes of the word k-shingles of ``tokens`` (the whole text if shorter than k)."""
    if not tokens:
        return np.zeros(0, dtype=np.uint64)
    return np.unique(window_hashes(tokens, k))


def minhash_signature(text: str, settings: DedupSettings = DEFAULT_SETTINGS) -> tuple[int, ...]:
    """MinHash signature of the text's word shingles: ``num_perm`` 32-bit values.

    Each permutation is multiply-shift hashing ``(a*x + b) mod 2**64 >> 32`` with fixed seeded
    ``a`` (odd), ``b``, so every worker computes the same signature. Empty text gives all 2**32-1.
    """
    return _signature(shingle_hashes(words(text), settings.shingle_words), settings)


def _signature(shingles: np.ndarray, settings: DedupSettings) -> tuple[int, ...]:
    if shingles.size == 0:
        return (0xFFFFFFFF,) * settings.num_perm
    a, b = _perms(settings.num_perm, settings.seed)
    with np.errstate(over="ignore"):
        sig = ((a * shingles.reshape(1, -1) + b) >> np.uint64(32)).min(axis=1)
    return tuple(sig.tolist())


def lsh_band_keys(signature: Sequence[int], settings: DedupSettings = DEFAULT_SETTINGS) -> list[str]:
    """One state key per LSH band: ``b<band>:<16 hex>``; equal bands give equal keys on any worker."""
    width = 4 * settings.rows  # a band's rows as uint32 LE, concatenated
    raw = np.asarray(signature[:settings.bands * settings.rows], dtype="<u4").tobytes()
    blake2b = hashlib.blake2b
    return [f"b{band:02d}:{blake2b(raw[band * width:(band + 1) * width], digest_size=8).hexdigest()}"
            for band in range(settings.bands)]


def sentences(text: str) -> list[str]:
    """Sentences of a normalised text, independent of how its lines are wrapped.

    Line breaks are ignored (an excerpt re-wrapped at 64 columns must give the same sentences as the
    article), so a heading or caption without a full stop joins the sentence after it; that only
    changes sentences at the edges of an excerpt.
    """
    from pipelines.text.normalise import split_sentences  # sibling stage, imported lazily

    return split_sentences(" ".join(text.split()))


def sentence_key(sentence: str) -> str:
    """State key of one sentence, ``s:<16 hex>``: case, punctuation and quotes folded."""
    return "s:" + key_hash(" ".join(words(sentence)))


class Sentence(NamedTuple):
    """A sentence of a text (:func:`sentences`) with its :func:`words` and :func:`sentence_key`."""

    text: str
    words: tuple[str, ...]
    key: str


@lru_cache(maxsize=16)
def sentence_words(text: str) -> tuple[Sentence, ...]:
    """The text's sentences, each with its words and key, in text order.

    Dedup keys an event by its sentences and the stories stage's novelty compares the same
    sentences, one step later, of the same text: cached, so each event's text is split and
    tokenised once (~0.1 ms). The stages run one after the other on each event, so a few entries
    suffice; the text is hashed once per string object, which both stages share."""
    out = []
    for sentence in sentences(text):
        tokens = tuple(words(sentence))
        out.append(Sentence(sentence, tokens, "s:" + key_hash(" ".join(tokens))))
    return tuple(out)


def sentence_keys(text: str, settings: DedupSettings = DEFAULT_SETTINGS) -> list[str]:
    """State keys of the text's sentences (see :func:`sentences`), distinct, in text order.

    Sentences shorter than ``min_sentence_words`` are skipped ("Read more at ...", "Scenes of
    explosions"): they recur across unrelated articles. A text with more than
    ``max_sentence_keys`` keyed sentences keeps the ones with the smallest keys (a bottom-k
    sample, the same on every worker) to bound state.
    """
    return _sentence_keys(text, settings)[0]


_TERMINATED = re.compile(r"[.!?][\"')\]]*$")


def _sentence_keys(text: str, settings: DedupSettings) -> tuple[list[str], bool]:
    """Keys, and whether the last keyed sentence is cut off (no closing punctuation)."""
    seen: dict[str, None] = {}
    cut = False
    for sentence in sentence_words(text):
        if len(sentence.words) >= settings.min_sentence_words:
            seen.setdefault(sentence.key, None)
            cut = _TERMINATED.search(sentence.text) is None
    keys = list(seen)
    if len(keys) > settings.max_sentence_keys:
        keep = set(sorted(keys)[: settings.max_sentence_keys])
        keys = [k for k in keys if k in keep]
        cut = False
    return keys, cut


@dataclass(frozen=True)
class Fingerprint:
    """What dedup needs to know about one event; computed once, never stored in state."""

    content_hash: str | None
    exact_keys: tuple[str, ...]
    band_keys: tuple[str, ...]
    sentence_keys: tuple[str, ...]
    shingle_count: int
    truncated: bool = False  # the last sentence has no closing punctuation: a cut-off fragment
    source_tag: int = 0  # 16-bit tag of the source (1..65535; 0: none given): who published the page

    @property
    def keys(self) -> tuple[str, ...]:
        """Every state key the event is probed and stored under."""
        return self.exact_keys + self.band_keys + self.sentence_keys


def fingerprint(
    text: str,
    *,
    url: str | None = None,
    guid: str | None = None,
    content_hash: str | None = None,
    source: str | None = None,
    settings: DedupSettings = DEFAULT_SETTINGS,
) -> Fingerprint:
    """Fingerprint of a *normalised* text (see ``pipelines.text.normalise``) plus its URL / GUID.

    ``content_hash`` is the event's own field; when omitted it is computed with
    ``pipelines.text.normalise.content_hash``. ``source`` tells a page's own revisions (same
    source) from another source's copy of it (same URL).
    """
    if content_hash is None:
        from pipelines.text.normalise import content_hash as _content_hash

        content_hash = _content_hash(text)
    exact = [f"h:{content_hash}"]
    if url:
        exact.append("u:" + key_hash(canonical_url(url)))
    if guid:
        exact.append("g:" + key_hash(guid.strip()))
    shingles = shingle_hashes(words(text), settings.shingle_words)
    sig = _signature(shingles, settings)
    skeys, truncated = _sentence_keys(text, settings)
    return Fingerprint(
        content_hash=content_hash,
        exact_keys=tuple(exact),
        band_keys=tuple(lsh_band_keys(sig, settings)) if shingles.size else (),
        sentence_keys=tuple(skeys),
        shingle_count=int(shingles.size),
        truncated=truncated,
        source_tag=source_tag(source) if source else 0,
    )


def source_tag(source: str) -> int:
    """16 bits (1..65535) naming a source in page-key entries; two sources share one with p = 1/65535."""
    return 1 + int(key_hash(source), 16) % 0xFFFF


# --------------------------------------------------------------------------------------------------
# Keyed state: one bucket per key
# --------------------------------------------------------------------------------------------------


class BucketEntry(NamedTuple):
    """One earlier event stored under a key. A plain tuple: pickles/encodes compactly in Beam state."""

    event_id: str
    ts: float
    size: int


Bucket = tuple[BucketEntry, ...]


#: Key kinds: content hash, URL / GUID (the page), LSH band, sentence.
KEY_KINDS = ("exact", "page", "band", "sentence")


def key_kind(key: str) -> str:
    """``exact`` (``h:``), ``page`` (``u:``, ``g:``), ``band`` or ``sentence``, from the key prefix."""
    c = key[0]
    return "band" if c == "b" else "sentence" if c == "s" else "page" if c in "ug" else "exact"


def probe_bucket(
    bucket: Bucket,
    key: str,
    fp: Fingerprint,
    event_id: str,
    ts: float,
    settings: DedupSettings = DEFAULT_SETTINGS,
    copy: bool = False,
) -> tuple[list[BucketEntry], Bucket]:
    """Read-modify-write of one key's state: ``(hits, new_bucket)``.

    ``hits`` are the live entries from other events (older than ``ts - ttl_s`` are dropped).
    The event is appended unless the bucket is full (the earliest events are the ones worth
    pointing at) or, for exact keys, unless the key already has an owner. Re-processing the same
    event (a Beam retry) is idempotent. ``copy``: see :func:`probe_entry`.
    """
    return probe_entry(bucket, key, BucketEntry(event_id, ts, entry_size(key, fp)), settings, copy)


def entry_size(key: str, fp: Fingerprint) -> int:
    """What an event stores as ``size`` under ``key`` (see :func:`kind_entry_size`)."""
    return kind_entry_size(key_kind(key), fp)


def kind_entry_size(kind: str, fp: Fingerprint) -> int:
    """``size`` of an entry under a key of ``kind``: shingle count (band), sentence-key count
    (sentence), source tag (page), 0 (exact)."""
    if kind == "band":
        return fp.shingle_count
    if kind == "sentence":
        return len(fp.sentence_keys)
    return fp.source_tag if kind == "page" else 0


def probe_entry(bucket: Bucket, key: str, entry: BucketEntry, settings: DedupSettings = DEFAULT_SETTINGS,
                copy: bool = False) -> tuple[list[BucketEntry], Bucket]:
    """:func:`probe_bucket` given the event's ready-made entry, so a keyed step needs no fingerprint.

    ``copy``: the event's content hash already had an owner (an exact copy); a page key does not
    store it, so the versions a page key keeps are distinct texts.
    """
    horizon = entry.ts - settings.ttl_s
    live = tuple(e for e in bucket if e.ts >= horizon)
    hits = [e for e in live if e.event_id != entry.event_id]
    if len(live) != len(hits) or len(live) >= settings.max_bucket_entries:
        return hits, live
    kind = key_kind(key)
    if (kind == "exact" and hits) or (kind == "page" and copy):
        return hits, live
    return hits, live + (entry,)


class KeyHits(NamedTuple):
    """What one key's stateful step sends to the per-event judge."""

    key: str
    hits: tuple[BucketEntry, ...]


# --------------------------------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DedupMatch:
    """The earlier event this one repeats, or, for ``update``, the page version it supersedes.

    kind: ``exact`` (same normalised text), ``same_url`` (same URL or GUID, nothing new: another
    source's copy of the page, or a version of the page that only repeats, drops or rewords one
    sentence of the one before), ``update`` (a new version of the same page from the same source
    that adds to it: a live blog's update), ``near_duplicate`` (a re-post with edits),
    ``contained`` (this event is an excerpt / truncation of the earlier one), ``contains`` (the
    earlier event is an excerpt of this one, e.g. the full article arrived later).
    similarity: estimated Jaccard similarity of word 3-shingles (from the share of LSH bands in common).
    containment: share of this event's sentences found in the earlier one (``contains``: the reverse).
    """

    event_id: str
    kind: str
    similarity: float
    containment: float
    first_seen: float

    def as_fields(self) -> dict[str, object]:
        """Event fields: ``duplicate_of`` for exact kinds, ``update_of`` for an update,
        ``near_duplicate_of`` otherwise, and the scores."""
        exact = self.kind in ("exact", "same_url")
        update = self.kind == "update"
        return {
            "duplicate_of": self.event_id if exact else None,
            "near_duplicate_of": None if exact or update else self.event_id,
            "update_of": self.event_id if update else None,
            "dedup": {"kind": self.kind, "similarity": round(self.similarity, 3),
                      "containment": round(self.containment, 3)},
        }


def jaccard_from_band_hits(band_hits: int, settings: DedupSettings = DEFAULT_SETTINGS) -> float:
    """Jaccard estimate from the number of equal LSH bands: P(band equal) = J ** rows."""
    if band_hits <= 0:
        return 0.0
    return min(1.0, (band_hits / settings.bands) ** (1.0 / settings.rows))


_SHORTER = 0.8  # a text under 80% of the other's shingles is an excerpt of it, not a copy


@dataclass(slots=True)
class _Candidate:
    first_seen: float
    band_hits: int = 0
    sentence_hits: int = 0
    sentence_count: int = 0
    shingle_count: int = 0
    exact: str | None = None  # "exact" (same content hash) or "same_url" (another source's page)
    version: tuple[float, int] | None = None  # a version of this event's page: (ts, place in the page key)


def complete_sentences(fp: Fingerprint) -> int:
    """The event's sentence keys that can match: a cut-off last sentence cannot."""
    return len(fp.sentence_keys) - (1 if fp.truncated and len(fp.sentence_keys) > 1 else 0)


def is_update(fp: Fingerprint, previous_sentences: int, shared: int, similarity: float,
              settings: DedupSettings = DEFAULT_SETTINGS) -> bool:
    """Whether a changed version of a page (not an exact copy) adds to the version before it.

    It adds when it has two or more sentences that version lacked, or one while keeping all of that
    version's sentences (a live blog's new entry). One new sentence in place of one of the old is
    a correction ("sixty" -> "seventy firefighters"), and no new sentence means re-wrapped, reordered
    or cut: both stay ``same_url`` duplicates. ``shared``: sentences found in the previous version,
    ``previous_sentences``: its count (0: unknown, it shares none). A text with no sentence of
    ``min_sentence_words`` words, or one sharing none, is an edit while its estimated Jaccard
    ``similarity`` is at least ``near_duplicate_jaccard``.
    """
    new = max(0, complete_sentences(fp) - shared)
    if not fp.sentence_keys:
        return similarity < settings.near_duplicate_jaccard
    if new != 1:
        return new > 1
    if shared and previous_sentences:
        return previous_sentences <= shared
    return similarity < settings.near_duplicate_jaccard


def judge(fp: Fingerprint, key_hits: Iterable[KeyHits], settings: DedupSettings = DEFAULT_SETTINGS
          ) -> DedupMatch | None:
    """The verdict for one event from the hits of all its keys; ``None`` when it is new.

    In order: the same content (the earliest such event: ``exact``); an earlier version of its
    page (same URL or GUID, same source; the latest version: ``update`` when :func:`is_update`,
    else ``same_url``); another source's event with its URL (the earliest: ``same_url``).
    Otherwise each earlier event is scored by its band hits (Jaccard estimate) and sentence hits
    (containment both ways); the strongest qualifying relation wins, ties to the earliest event.
    """
    cands: dict[str, _Candidate] = {}
    get = cands.get
    for key, hits in key_hits:
        kind = key_kind(key)
        # Band and sentence keys are ~all of an event's keys and hits: their loop is inlined.
        if kind == "band" or kind == "sentence":
            band = kind == "band"
            for event_id, ts, size in hits:
                c = get(event_id)
                if c is None:
                    c = cands[event_id] = _Candidate(first_seen=ts)
                elif ts < c.first_seen:
                    c.first_seen = ts
                if band:
                    c.band_hits += 1
                    c.shingle_count = size
                else:
                    c.sentence_hits += 1
                    c.sentence_count = size
            continue
        for place, e in enumerate(hits):
            c = get(e.event_id)
            if c is None:
                c = cands[e.event_id] = _Candidate(first_seen=e.ts)
            c.first_seen = min(c.first_seen, e.ts)
            if kind == "exact":
                c.exact = "exact"
            elif key.startswith("g:") or e.size == fp.source_tag:  # a GUID is its source's own
                c.version = max(c.version or (e.ts, place), (e.ts, place))
            elif c.exact is None:
                c.exact = "same_url"
    copies = [(c.first_seen, eid) for eid, c in cands.items() if c.exact == "exact"]
    if copies:
        first, eid = min(copies)
        return DedupMatch(eid, "exact", 1.0, 1.0, first)
    versions = [(c.version, eid) for eid, c in cands.items() if c.version]
    if versions:
        _, eid = max(versions)
        c = cands[eid]
        jac = jaccard_from_band_hits(c.band_hits, settings)
        n_sent = complete_sentences(fp)
        shared = min(c.sentence_hits, n_sent)
        kind = "update" if is_update(fp, c.sentence_count, shared, jac, settings) else "same_url"
        return DedupMatch(eid, kind, jac, shared / n_sent if n_sent else 0.0, c.first_seen)
    pages = [(c.first_seen, eid) for eid, c in cands.items() if c.exact == "same_url"]
    if pages:
        first, eid = min(pages)
        return DedupMatch(eid, "same_url", jaccard_from_band_hits(cands[eid].band_hits, settings), 1.0, first)

    n_sent = complete_sentences(fp)
    need = min(settings.min_sentence_hits, max(1, n_sent))
    best: tuple[tuple[float, float], DedupMatch] | None = None
    for eid, c in cands.items():
        jac = jaccard_from_band_hits(c.band_hits, settings) if c.band_hits >= settings.min_band_hits else 0.0
        enough = c.sentence_hits >= need
        inside = min(1.0, c.sentence_hits / n_sent) if n_sent and enough else 0.0
        around = c.sentence_hits / c.sentence_count if c.sentence_count and enough else 0.0
        # A long excerpt is also Jaccard-similar to its article; call it by what it is.
        shorter = fp.shingle_count < _SHORTER * c.shingle_count
        longer = c.shingle_count < _SHORTER * fp.shingle_count
        if inside >= settings.containment and (shorter or jac < settings.near_duplicate_jaccard):
            match = DedupMatch(eid, "contained", jac, inside, c.first_seen)
            score = 1.0 + inside
        elif around >= settings.containment and (longer or jac < settings.near_duplicate_jaccard):
            match = DedupMatch(eid, "contains", jac, around, c.first_seen)
            score = 1.0 + around
        elif jac >= settings.near_duplicate_jaccard:
            match = DedupMatch(eid, "near_duplicate", jac, inside, c.first_seen)
            score = 1.0 + jac
        else:
            continue
        rank = (score, -c.first_seen)
        if best is None or rank > best[0]:
            best = (rank, match)
    return best[1] if best else None


# --------------------------------------------------------------------------------------------------
# In-memory keyed state (tests, bench, single-process runs)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DedupVerdict:
    """Outcome of :meth:`DedupIndex.observe`: the match (or None) and the fingerprint used."""

    event_id: str
    match: DedupMatch | None
    fingerprint: Fingerprint


class DedupIndex:
    """Dedup state in a dict ``key -> Bucket``: the same steps a Beam stateful DoFn runs per key.

    Bounded: at most ``max_bucket_entries`` per key and at most ``len(fp.keys)`` keys per event,
    and nothing older than ``ttl_s`` survives :meth:`expire`. ``state`` is plain tuples/strings/
    floats, so it can be snapshotted with pickle or JSON.
    """

    def __init__(self, settings: DedupSettings = DEFAULT_SETTINGS) -> None:
        self.settings = settings
        self.state: dict[str, Bucket] = {}

    def __len__(self) -> int:
        return len(self.state)

    def probe(self, fp: Fingerprint, event_id: str | None = None, ts: float = 0.0, *, insert: bool = True
              ) -> list[KeyHits]:
        """Run :func:`probe_bucket` on each of the event's keys; store the event when ``insert``."""
        out = []
        copy = False  # the content hash (the first key) had an owner: page keys do not store a copy
        for key in fp.keys:
            hits, bucket = probe_bucket(self.state.get(key, ()), key, fp, event_id or "", ts, self.settings, copy)
            copy = copy or (key_kind(key) == "exact" and bool(hits))
            if insert and event_id is not None:
                self.state[key] = bucket
            if hits:
                out.append(KeyHits(key, tuple(hits)))
        return out

    def observe(self, event_id: str, fp: Fingerprint, ts: float) -> DedupVerdict:
        """Match the event against earlier ones and store it (one atomic step per key, as in Beam)."""
        return DedupVerdict(event_id, judge(fp, self.probe(fp, event_id, ts), self.settings), fp)

    def add(self, event_id: str, text: str, ts: float, **fingerprint_kw: str) -> DedupVerdict:
        """Fingerprint ``text`` and :meth:`observe` it (``url=``, ``guid=``, ``content_hash=``, ``source=`` optional)."""
        return self.observe(event_id, fingerprint(text, settings=self.settings, **fingerprint_kw), ts)

    def match(self, text: str, ts: float | None = None, **fingerprint_kw: str) -> DedupMatch | None:
        """Verdict for ``text`` without storing it."""
        fp = fingerprint(text, settings=self.settings, **fingerprint_kw)
        now = ts if ts is not None else max((e.ts for b in self.state.values() for e in b), default=0.0)
        return judge(fp, self.probe(fp, None, now, insert=False), self.settings)

    def expire(self, before_ts: float) -> int:
        """Drop entries older than ``before_ts`` and keys left empty; returns the number of keys dropped."""
        dropped = 0
        for key in list(self.state):
            live = tuple(e for e in self.state[key] if e.ts >= before_ts)
            if live:
                self.state[key] = live
            else:
                del self.state[key]
                dropped += 1
        return dropped

    def entry_count(self) -> int:
        """Total stored entries (for memory accounting)."""
        return sum(len(b) for b in self.state.values())

