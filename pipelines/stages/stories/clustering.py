"""Story clustering: every event joins the story it continues, or starts a new one.

Evidence that two texts report the same event, strongest first:

* shared quotations: word 4-shingles inside quoted spans ('...' / "..."), so a quote that one
  outlet cuts short or splits in two still matches the other's full quote;
* shared entities and places, each weighted by rarity (IDF over recent events), so two articles
  that merely mention Russia and Putin do not join, but two that both name Maria Zakharova, Finland
  and Sweden do;
* time: the score decays with the gap since the story was last seen, and a story unseen for
  ``max_gap_s`` is closed.

``score = time_decay * (quote_weight * quote_sim + entity_weight * entity_sim)`` where
``quote_sim = min(1, shared quote shingles / quote_shingles_for_full)`` and ``entity_sim`` is the
rarity-weighted share of the event's entities/places that the story already has (the event's
mass is floored at ``min_entity_mass`` so one shared rare name is not enough). The event joins
the best-scoring candidate story with ``score >= join_threshold``; otherwise it founds a story
whose id is derived from its own event_id (stable under replays).

State (all explicit, bounded, serialisable with ``to_state()`` / ``from_state()``):

* :class:`StoryState` per story: first/last seen, counts, top entities/places, a capped set of
  quote shingles;
* a routing index ``candidate key -> ((story_id, last_seen), ...)``, where
  :func:`candidate_keys` gives ``q:<hash>`` for a consistent sample of quote shingles and
  ``e:<id>`` for the event's rarest entities/places. Keys come from content, never from a worker,
  so two outlets' articles on different workers meet under the same key;
* :class:`EntityRarity`: document frequencies behind the IDF weights.

:class:`StoryClusterer` keeps all three in one process (tests, single-process use). The pipeline
keeps them in Redis (:class:`pipelines.stages.stories.state.RedisStoryStore`, which runs these same
functions): shared by every worker, kept across restarts, see docs/stories.md.

TTL: stories and index entries whose ``last_seen`` is older than ``max_gap_s`` (default 72 h)
are dropped by :meth:`StoryClusterer.expire` (in Redis: key expiry).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.records import analysis_text
from core.settings import StorySettings
from pipelines.stages.dedup.logic import key_hash, shingle_hashes, words

# An opening quote starts a line or follows a space/bracket/colon/dash and is followed by text; a
# closing one is not followed by a letter, so the apostrophe in "Finland's" never closes a quote.
_QUOTE_RE = re.compile(r"""(?:(?<=^)|(?<=[\s(\[:;,-]))(['"])(?=\S)(.{6,800}?)(?<=\S)\1(?!\w)""", re.DOTALL)


DEFAULT_STORY_SETTINGS = StorySettings()


# --------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------


def quoted_spans(text: str, min_words: int = 5) -> list[str]:
    """Quoted passages of at least ``min_words`` words, in order (straight or typographic quotes)."""
    text = text.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"'})
    return [m.group(2) for m in _QUOTE_RE.finditer(text) if len(words(m.group(2))) >= min_words]


def quote_shingles(text: str, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> frozenset[int]:
    """64-bit hashes of the word shingles inside the text's quotations."""
    out: set[int] = set()
    for span in quoted_spans(text, settings.quote_min_words):
        out.update(int(h) for h in shingle_hashes(words(span), settings.quote_shingle_words))
    return frozenset(out)


@dataclass(frozen=True)
class StoryInput:
    """What the clusterer reads from an event (built by :meth:`from_event` from the event dict)."""

    event_id: str
    ts: float
    source: str
    text: str
    entities: tuple[Mapping[str, Any], ...] = ()
    places: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_event(cls, event: Mapping[str, Any], ts: float) -> StoryInput:
        """From an enriched-event dict (``entities`` / ``places`` as the enrichment stage writes them)."""
        return cls(
            event_id=str(event["event_id"]),
            ts=ts,
            source=str(event.get("source") or ""),
            text=analysis_text(event) if event.get("text") else "",
            entities=tuple(event.get("entities") or ()),
            places=tuple(event.get("places") or ()),
        )


@dataclass(frozen=True)
class StoryFeatures:
    """The comparable part of an event: quote shingles and weighted entity/place ids."""

    quotes: frozenset[int]
    terms: Mapping[str, float]  # id -> kind weight (1 for entities, place_weight for places)
    names: Mapping[str, str]


def story_features(item: StoryInput, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> StoryFeatures:
    """Quote shingles and entity/place ids of one event."""
    terms: dict[str, float] = {}
    names: dict[str, str] = {}
    for ent in item.entities:
        if ent.get("id"):
            terms[str(ent["id"])] = 1.0
            names[str(ent["id"])] = str(ent.get("name") or ent["id"])
    for place in item.places:
        if place.get("id"):
            pid = str(place["id"])
            terms.setdefault(pid, settings.place_weight)
            names[pid] = str(place.get("name") or pid)
    return StoryFeatures(quote_shingles(item.text, settings), terms, names)


@dataclass
class EntityRarity:
    """Document frequency of entity/place ids over recent events; ``idf`` weights them.

    Bounded by ``max_terms`` (the most frequent are kept: an evicted rare term just reads as
    unseen, which is what it nearly is). ``decay()`` halves all counts, for windowed use.
    """

    docs: float = 0.0
    df: dict[str, float] = field(default_factory=dict)
    max_terms: int = 200_000

    def observe(self, term_ids: Iterable[str]) -> None:
        """Count one event's distinct ids."""
        self.docs += 1
        for t in set(term_ids):
            self.df[t] = self.df.get(t, 0.0) + 1
        if len(self.df) > self.max_terms:
            keep = sorted(self.df.items(), key=lambda kv: -kv[1])[: self.max_terms * 9 // 10]
            self.df = dict(keep)

    def idf(self, term_id: str) -> float:
        """``log((docs + 1) / (df + 0.5))``, at least 0.1: a term in every event still counts a little."""
        return max(0.1, math.log((self.docs + 1.0) / (self.df.get(term_id, 0.0) + 0.5)))

    def decay(self, factor: float = 0.5) -> None:
        """Scale all counts (drop those that fall under 0.5)."""
        self.docs *= factor
        self.df = {k: v * factor for k, v in self.df.items() if v * factor >= 0.5}

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly snapshot."""
        return {"docs": self.docs, "df": dict(self.df), "max_terms": self.max_terms}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> EntityRarity:
        """Inverse of :meth:`to_state`."""
        return cls(float(state["docs"]), dict(state["df"]), int(state.get("max_terms", 200_000)))


def candidate_keys(features: StoryFeatures, rarity: EntityRarity,
                   settings: StorySettings = DEFAULT_STORY_SETTINGS) -> list[str]:
    """Routing keys under which candidate stories are looked up and the event's story is filed.

    ``q:<hex>``: quote shingles whose hash is divisible by ``quote_key_sample`` (the same sample on
    every worker, so two texts sharing a quote of ~8 words share a key with high probability),
    at most ``max_quote_keys``; ``e:<id>``: the ``candidate_entities`` rarest entities/places.
    """
    quotes = sorted(q for q in features.quotes if q % settings.quote_key_sample == 0)
    keys = [f"q:{q:016x}" for q in quotes[: settings.max_quote_keys]]
    rare = sorted(features.terms, key=lambda t: (-rarity.idf(t) * features.terms[t], t))
    keys += [f"e:{t}" for t in rare[: settings.candidate_entities]]
    return keys


# --------------------------------------------------------------------------------------------------
# Story state and scoring
# --------------------------------------------------------------------------------------------------


@dataclass
class StoryState:
    """Everything kept about one story (in Redis: the value under ``s:<story_id>``, quotes apart)."""

    story_id: str
    first_seen: float
    last_seen: float
    event_count: int = 0
    source_count: int = 0
    sources: list[str] = field(default_factory=list)
    terms: dict[str, float] = field(default_factory=dict)  # id -> events mentioning it
    names: dict[str, str] = field(default_factory=dict)
    quotes: set[int] = field(default_factory=set)

    def add(self, item: StoryInput, features: StoryFeatures, settings: StorySettings) -> None:
        """Fold one event into the story, keeping every collection within its cap."""
        self.first_seen = min(self.first_seen, item.ts)
        self.last_seen = max(self.last_seen, item.ts)
        self.event_count += 1
        if item.source and item.source not in self.sources:
            self.source_count += 1
            if len(self.sources) < settings.max_story_sources:
                self.sources.append(item.source)
        for t in features.terms:
            self.terms[t] = self.terms.get(t, 0.0) + 1
            self.names[t] = features.names.get(t, t)
        if len(self.terms) > settings.max_story_entities:
            keep = sorted(self.terms.items(), key=lambda kv: (-kv[1], kv[0]))[: settings.max_story_entities]
            self.terms = dict(keep)
            self.names = {t: self.names[t] for t in self.terms}
        room = settings.max_story_quotes - len(self.quotes)
        if room > 0:
            self.quotes.update(sorted(features.quotes - self.quotes)[:room])

    def top(self, prefix_places: bool, n: int) -> list[dict[str, Any]]:
        """Most-mentioned entities (or places, ids starting with ``geonames:``/``place:``)."""
        is_place = [t for t in self.terms if t.startswith(("geonames:", "place:")) == prefix_places]
        ranked = sorted(is_place, key=lambda t: (-self.terms[t], t))[:n]
        return [{"id": t, "name": self.names.get(t, t), "events": int(self.terms[t])} for t in ranked]

    def summary(self, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> dict[str, Any]:
        """The story fields written on events and to the stories sink."""
        return {
            "story_id": self.story_id,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "event_count": self.event_count,
            "source_count": self.source_count,
            "top_entities": self.top(False, settings.top_n),
            "top_places": self.top(True, settings.top_n),
        }

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly snapshot."""
        return {
            "story_id": self.story_id, "first_seen": self.first_seen, "last_seen": self.last_seen,
            "event_count": self.event_count, "source_count": self.source_count,
            "sources": list(self.sources), "terms": dict(self.terms), "names": dict(self.names),
            "quotes": sorted(self.quotes),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> StoryState:
        """Inverse of :meth:`to_state`."""
        return cls(
            story_id=state["story_id"], first_seen=state["first_seen"], last_seen=state["last_seen"],
            event_count=state["event_count"], source_count=state["source_count"],
            sources=list(state["sources"]), terms=dict(state["terms"]), names=dict(state["names"]),
            quotes=set(state["quotes"]),
        )


@dataclass(frozen=True)
class StoryScore:
    """How well an event fits a story, with the parts that made the score."""

    story_id: str
    score: float
    quote_sim: float
    entity_sim: float
    time_decay: float


def score_story(features: StoryFeatures, ts: float, story: StoryState, rarity: EntityRarity,
                settings: StorySettings = DEFAULT_STORY_SETTINGS) -> StoryScore:
    """Score one event against one story (pure; used per candidate story)."""
    gap = max(0.0, ts - story.last_seen)
    if gap > settings.max_gap_s:
        return StoryScore(story.story_id, 0.0, 0.0, 0.0, 0.0)
    decay = math.exp(-gap / settings.time_scale_s)
    shared_quotes = len(features.quotes & story.quotes)
    quote_sim = min(1.0, shared_quotes / settings.quote_shingles_for_full)
    mass = shared = 0.0
    for t, w in features.terms.items():
        weight = w * rarity.idf(t)
        mass += weight
        if t in story.terms:
            shared += weight
    entity_sim = shared / max(mass, settings.min_entity_mass) if mass else 0.0
    score = decay * (settings.quote_weight * quote_sim + settings.entity_weight * entity_sim)
    return StoryScore(story.story_id, score, quote_sim, entity_sim, decay)


def story_id_for(event_id: str) -> str:
    """The id of a story founded by ``event_id`` (stable, so replays give the same id)."""
    return "story:" + key_hash(event_id)


@dataclass(frozen=True)
class StoryAssignment:
    """The story an event was put in, why, and the story's summary after adding it."""

    event_id: str
    story_id: str
    is_new: bool
    score: StoryScore | None
    story: dict[str, Any]


def choose_story(scores: Sequence[StoryScore], settings: StorySettings = DEFAULT_STORY_SETTINGS
                 ) -> StoryScore | None:
    """The best candidate over the join threshold (ties to the smaller story id), or None."""
    ok = [s for s in scores if s.score >= settings.join_threshold]
    return min(ok, key=lambda s: (-s.score, s.story_id)) if ok else None


def pick_story(features: StoryFeatures, ts: float, candidates: Sequence[StoryState], rarity: EntityRarity,
               settings: StorySettings = DEFAULT_STORY_SETTINGS, linked: StoryState | None = None
               ) -> tuple[StoryScore | None, StoryState | None]:
    """The story an event joins, with its score: the ``linked`` story (the one of an event it
    repeats, or the one its source named) while that is open, else the best-scoring candidate
    over the threshold; ``(None, None)`` when it starts a new story."""
    if linked is not None and ts - linked.last_seen <= settings.max_gap_s:
        return score_story(features, ts, linked, rarity, settings), linked
    best = choose_story([score_story(features, ts, st, rarity, settings) for st in candidates], settings)
    return best, next((st for st in candidates if best is not None and st.story_id == best.story_id), None)


IndexEntry = tuple[str, float]  # (story_id, last_seen)


def update_index_bucket(bucket: tuple[IndexEntry, ...], story_id: str, ts: float,
                        settings: StorySettings = DEFAULT_STORY_SETTINGS) -> tuple[IndexEntry, ...]:
    """One routing key's state after filing ``story_id`` under it: expired and surplus entries go."""
    horizon = ts - settings.max_gap_s
    rest = [(sid, seen) for sid, seen in bucket if sid != story_id and seen >= horizon]
    rest.append((story_id, ts))
    rest.sort(key=lambda e: -e[1])  # most recently active stories first
    return tuple(rest[: settings.max_index_entries])


class StoryClusterer:
    """Single-process story clustering over explicit state (stories, routing index, rarity)."""

    def __init__(self, settings: StorySettings = DEFAULT_STORY_SETTINGS,
                 rarity: EntityRarity | None = None) -> None:
        self.settings = settings
        self.rarity = rarity if rarity is not None else EntityRarity()
        self.stories: dict[str, StoryState] = {}
        self.index: dict[str, tuple[IndexEntry, ...]] = {}

    def assign(self, item: StoryInput, join: str | None = None) -> StoryAssignment:
        """Put the event in its story (or a new one) and update all state.

        ``join``: a story the event is known to belong to (it repeats an event of that story, or
        its source named the story); used when that story is still open, instead of scoring.
        """
        s = self.settings
        features = story_features(item, s)
        self.rarity.observe(features.terms)
        keys = candidate_keys(features, self.rarity, s)
        candidates = sorted({sid for k in keys for sid, _ in self.index.get(k, ())} & self.stories.keys())
        best, story = pick_story(features, item.ts, [self.stories[sid] for sid in candidates], self.rarity, s,
                                 linked=self.stories.get(join) if join is not None else None)
        if story is None:
            best, story = None, StoryState(story_id_for(item.event_id), item.ts, item.ts)
            self.stories[story.story_id] = story
        story.add(item, features, s)
        for k in keys:
            self.index[k] = update_index_bucket(self.index.get(k, ()), story.story_id, item.ts, s)
        return StoryAssignment(item.event_id, story.story_id, best is None, best, story.summary(s))

    def expire(self, now: float) -> int:
        """Drop stories and index entries unseen for ``max_gap_s``; returns stories dropped."""
        horizon = now - self.settings.max_gap_s
        old = [sid for sid, st in self.stories.items() if st.last_seen < horizon]
        for sid in old:
            del self.stories[sid]
        for k in list(self.index):
            live = tuple(e for e in self.index[k] if e[1] >= horizon)
            if live:
                self.index[k] = live
            else:
                del self.index[k]
        return len(old)
