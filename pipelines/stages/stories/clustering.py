"""Story clustering: every event joins the story it continues, or starts a new one.

Evidence that an event reports the same real-world event as a story (each a pure function here):

* **content**: cosine between the event's TF-IDF vector over content words (title x3, lead x2,
  rest x1; English and unknown-language text stemmed, :func:`stem`, other languages' plural ``s``
  folded) and the story's *centroid* (the sum of its members' unit vectors,
  the founding event counted ``founder_weight`` times, capped to ``max_story_terms`` terms);
* **names**: the same cosine over entity and place ids (places weighted ``place_weight``);
* **quotations**, only distinctive ones: word 5-shingles inside quotes whose words' prior IDF
  sums to ``quote_min_idf_sum`` (:func:`distinctive_quote_shingles`), so "we have to wait and
  see" never counts whoever says it;
* **numbers** that agree (scores, counts, amounts; not years), and whether both sides have
  numbers of which none agree;
* **time** between the event's publication time and the story's span, in hours;

IDF: ``log((N + P + 1) / (df + P * prior + 0.5))`` where ``df``/``N`` are document counts the
deployment has seen in the story window and ``prior`` is the chance that an article contains the
word, from a shipped table (pipelines/data/word_prior.tsv.gz, bench/build_idf_prior.py, from
``wordfreq``); ``P`` (``prior_docs``) pseudo-documents make a new deployment start from the prior and
a running one follow its own stream. A name's prior is its rarest word's ("NATO", "Finland" are
common enough not to decide alone; "Zakharova" is rare).

The parts are combined by a logistic regression (:class:`Scorer`, coefficients in
pipelines/data/story_scorer.json, fitted by bench/train_story_scorer.py on generated gold pairs of
*other* topics than the evaluation stream); an event joins the most probable candidate story
with ``p >= join_threshold``, else it founds a story whose id derives from its own event_id.
Scoring against the centroid, not the nearest member, is what stops chaining: an event must
resemble what the story is about, not only its latest member.

Candidates come from an inverted index (:func:`index_keys`): the event's ``index_terms`` most
weighted content words, ``index_entities`` rarest names and up to ``index_quotes`` distinctive
quote shingles, each posting list bounded (``max_postings`` newest stories per key and day).

:class:`StoryClusterer` keeps all state in one process (tests, single-process use); the pipeline
keeps it in Redis (:class:`pipelines.stages.stories.state.RedisStoryStore`), running these same
functions. See docs/stories.md.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import Stemmer

from core.records import analysis_text
from core.settings import StorySettings
from pipelines.stages.dedup.logic import key_hash, shingle_hashes, words
from pipelines.stages.stories.crosslingual import (
    CrossEvidence,
    cross_evidence,
    cross_probability,
    fold_profile,
    merge_profiles,
)
from pipelines.stages.stories.prior import doc_freq as _prior_doc_freq
from pipelines.stages.stories.prior import freq_doc_freq, word_prior
from pipelines.text.multilingual import base_language
from pipelines.text.places import PLACE_ID_PREFIXES

# An opening quote starts a line or follows a space/bracket/colon/dash and is followed by text; a
# closing one is not followed by a letter, so the apostrophe in "Finland's" never closes a quote.
# (The quote character comes first, then the look back at what precedes it, so a search jumps from
# quote character to quote character instead of trying the look-behind at every position.)
_QUOTE_RE = re.compile(r"""(['"])(?<![^\s(\[:;,-]['"])(?=\S)(.{6,800}?)(?<=\S)\1(?!\w)""", re.DOTALL)
_WORD_RE = re.compile(r"[^\W\d_]+")
# A score or range ("2-1") or a number ("148", "200,000", "6.8") not inside a word or after a dot:
# r"(?<![\w.])\d+-\d+(?![\w-])|(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])" with the first digit taken
# before the test of the character ahead of it (``(?<![\w.]\d)``: the same test, one character back),
# so that the pattern opens with \d and the regex engine skips to digits in C instead of trying the
# test at every character (~6x faster on news text; tests/pipelines/stages/test_story_regexes.py).
_NUMBER_RE = re.compile(r"\d(?<![\w.]\d)(?:\d*-\d+(?![\w-])|[\d,]*(?:\.\d+)?(?![\w]))")
_DATA = Path(__file__).resolve().parents[2] / "data"
_LEAD_WORDS = 40
# Content words are stemmed (English Snowball) where the English word prior applies: events in
# English or of unknown language ("", sets fed without the language stage); other languages keep
# the plural fold (their content words meet only their own language's anyway).
STEMMED_LANGUAGES = frozenset({"en", ""})

DEFAULT_STORY_SETTINGS = StorySettings()


# --------------------------------------------------------------------------------------------------
# Word prior and IDF
# --------------------------------------------------------------------------------------------------


def prior_doc_freq(word: str, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> float:
    """The prior chance that an article contains ``word`` (unknown words: ``unseen_doc_freq``)."""
    return _prior_doc_freq(word, settings.unseen_doc_freq)


def name_doc_freq(name: str, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> float:
    """A name's prior: that of its rarest word (a full name is at most as frequent)."""
    toks = [t for t in _WORD_RE.findall(name.lower()) if len(t) > 1]
    return min((prior_doc_freq(t, settings) for t in toks), default=settings.unseen_doc_freq)


@dataclass
class Rarity:
    """Document counts over the story window (``docs`` events, ``df`` per term), blended with the
    prior: see the module doc."""

    docs: float = 0.0
    df: dict[str, float] = field(default_factory=dict)
    prior_docs: float = DEFAULT_STORY_SETTINGS.prior_docs

    def idf(self, term: str, prior: float) -> float:
        """Inverse document frequency of ``term`` whose prior document frequency is ``prior``."""
        p = self.prior_docs
        return max(0.0, math.log((self.docs + p + 1.0) / (self.df.get(term, 0.0) + p * prior + 0.5)))

    def observe(self, terms: Iterable[str]) -> None:
        """Count one event's distinct terms."""
        self.docs += 1
        for t in set(terms):
            self.df[t] = self.df.get(t, 0.0) + 1


@functools.lru_cache(maxsize=1 << 15)
def _word_idf(word: str, unseen: float, prior_docs: float) -> float:
    return max(0.0, math.log((prior_docs + 1.0) / (prior_docs * _prior_doc_freq(word, unseen) + 0.5)))


def prior_idf(prior: float, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> float:
    """IDF from the prior alone (what a fresh deployment uses, and what picks index keys)."""
    p = settings.prior_docs
    return max(0.0, math.log((p + 1.0) / (p * prior + 0.5)))


# --------------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------------


def quoted_spans(text: str, min_words: int = 5) -> list[str]:
    """Quoted passages of at least ``min_words`` words, in order (straight or typographic quotes)."""
    return [span for span, n in _quoted(text) if n >= min_words]


@functools.lru_cache(maxsize=8)
def _quoted(text: str) -> tuple[tuple[str, int], ...]:
    """Every quoted passage of the text with its number of words (a story's features read one
    text's quotations twice: :func:`without_stock_quotes`, :func:`distinctive_quote_shingles`)."""
    text = text.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"'})
    return tuple((m.group(2), len(words(m.group(2)))) for m in _QUOTE_RE.finditer(text))


def small_hash(h: int) -> int:
    """A 64-bit hash cut to 31 bits (Redis keeps sets of such integers as packed int32 arrays)."""
    return h >> 33


def _quote_idfs(span: str, settings: StorySettings) -> tuple[tuple[str, ...], tuple[float, ...], bool]:
    """A quotation's words, their prior IDFs, and whether it is distinctive: its words' IDF above
    ``quote_word_idf_floor`` adds up to ``quote_min_idf_sum`` (stock phrases such as "we have to
    wait and see, as far as I'm concerned it was going to be a difficult day" stay below)."""
    return _span_idfs(span, settings.unseen_doc_freq, settings.prior_docs, settings.quote_word_idf_floor,
                      settings.quote_min_idf_sum)


@functools.lru_cache(maxsize=1 << 11)  # a quotation recurs: in both uses of one text, in its story's reports
def _span_idfs(span: str, unseen: float, prior_docs: float, floor: float,
               min_sum: float) -> tuple[tuple[str, ...], tuple[float, ...], bool]:
    toks = tuple(words(span))
    idfs = tuple(_word_idf(t, unseen, prior_docs) for t in toks)
    return toks, idfs, sum(max(0.0, v - floor) for v in idfs) >= min_sum


def distinctive_quote_shingles(text: str, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> frozenset[int]:
    """Small hashes of the word shingles inside the text's distinctive quotations (:func:`_quote_idfs`),
    each with a mean prior IDF of at least ``quote_min_idf`` (so a stock phrase inside a long quote
    does not match another long quote)."""
    out: set[int] = set()
    for span in quoted_spans(text, settings.quote_min_words):
        out.update(_span_shingles(span, settings))
    return frozenset(out)


def _span_shingles(span: str, settings: StorySettings) -> frozenset[int]:
    """:func:`distinctive_quote_shingles` of one quotation (cached with its IDFs)."""
    toks, idfs, distinctive = _quote_idfs(span, settings)
    if not distinctive:
        return frozenset()
    return _shingles_of(toks, idfs, settings.quote_shingle_words, settings.quote_min_idf)


@functools.lru_cache(maxsize=1 << 11)
def _shingles_of(toks: tuple[str, ...], idfs: tuple[float, ...], n: int, min_idf: float) -> frozenset[int]:
    out = set()
    for i, h in enumerate(shingle_hashes(toks, n)):
        if sum(idfs[i:i + n]) / n >= min_idf:
            out.add(small_hash(int(h)))
    return frozenset(out)


def without_stock_quotes(text: str, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> str:
    """The text with its non-distinctive quotations cut out (they say nothing about the event)."""
    for span in quoted_spans(text, 1):
        if not _quote_idfs(span, settings)[2]:
            text = text.replace(span, " ")
    return text


def fold(word: str) -> str:
    """Fold plural/verb ``s`` endings so "drones"/"drone", "crosses"/"cross" meet."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def numbers(text: str) -> frozenset[str]:
    """Numbers in the text that can agree between two reports: scores and ranges ("2-1"), numbers of
    two or more characters that are not years."""
    out = set()
    for m in _NUMBER_RE.findall(text):
        n = m.replace(",", "")
        if "-" in n:  # a score or a range: "2-1"
            out.add(n)
            continue
        if len(n) < 2 or (len(n) == 4 and n.isdigit() and 1900 <= int(n) <= 2099):
            continue
        out.add(n)
    return frozenset(out)


def event_language(event: Mapping[str, Any]) -> str:
    """The event's detected language as an ISO 639-1 base code, "" when unknown or undetermined."""
    lang = event.get("language")
    code = lang.get("code") if isinstance(lang, Mapping) else lang
    base = base_language(str(code)) if code else ""
    return "" if base == "und" else base


@dataclass(frozen=True)
class StoryInput:
    """What the clusterer reads from an event (built by :meth:`from_event` from the event dict)."""

    event_id: str
    ts: float
    source: str
    text: str
    entities: tuple[Mapping[str, Any], ...] = ()
    places: tuple[Mapping[str, Any], ...] = ()
    title: str = ""
    language: str = ""  # ISO 639-1 base code; "" when unknown (no cross-lingual evidence then)

    @classmethod
    def from_event(cls, event: Mapping[str, Any], ts: float) -> StoryInput:
        """From an enriched-event dict (``entities`` / ``places`` as the enrichment stage writes them)."""
        return cls(
            event_id=str(event["event_id"]),
            ts=ts,
            source=str(event.get("source") or ""),
            text=analysis_text(event) if event.get("text") else "",
            entities=tuple(event.get("entities") or ()),
            places=places_with_nationalities(event),
            title=str(event.get("title") or ""),
            language=event_language(event),
        )


def places_with_nationalities(event: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """The event's places with the countries it names by demonyms (``nationalities``) folded back in,
    as one list in the shape enrichment wrote before 1.6 (a demonym was then a mention of its
    country): a country's demonym mentions join its place, or make one (feature "country"), and the
    list is in order of first mention. Stories read a demonym like a place so that their decisions
    stay those measured (bench/RESULTS.md); alerts and the console map read ``places`` alone."""
    places = list(event.get("places") or ())
    nationalities = event.get("nationalities") or ()
    if not nationalities:
        return tuple(places)
    at = {str(p.get("id")): n for n, p in enumerate(places)}
    for nat in nationalities:
        mentions = list(nat.get("mentions") or ())
        n = at.get(str(nat.get("id")))
        if n is None:
            at[str(nat.get("id"))] = len(places)
            places.append({"id": nat.get("id"), "name": nat.get("name"), "country_code": nat.get("country_code"),
                           "feature": "country", "mentions": mentions})
        else:
            merged = sorted([*(places[n].get("mentions") or ()), *mentions], key=lambda m: int(m.get("start") or 0))
            places[n] = {**places[n], "mentions": merged}
    return tuple(sorted(places, key=lambda p: int(((p.get("mentions") or [{}])[0]).get("start") or 0)))


@dataclass(frozen=True)
class StoryFeatures:
    """The comparable part of an event, before IDF: weighted term frequencies with their priors."""

    words: Mapping[str, float]       # content word stem (or fold) -> weighted term frequency
    names: Mapping[str, float]       # entity/place id -> kind weight
    priors: Mapping[str, float]      # term or id -> prior document frequency
    labels: Mapping[str, str]        # entity/place id -> display name
    quotes: frozenset[int]
    numbers: frozenset[str]
    cross: CrossEvidence | None = None  # language-independent evidence (crosslingual.py), when the language is known

    @property
    def terms(self) -> list[str]:
        """Everything whose document frequency is counted: content words, then names."""
        return [*self.words, *self.names]


@functools.cache
def _english_stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def stem(word: str) -> str:
    """The English Snowball stem of a lower-case word ("voted", "voting" -> "vote"; "immigrants",
    "immigration" -> "immigr"), so that different outlets' forms of one word meet."""
    return str(_english_stemmer().stemWord(word))


@functools.cache
def stem_freqs() -> dict[str, float]:
    """stem -> running-word frequency of the prior table's most frequent word with that stem."""
    out: dict[str, float] = {}
    table = word_prior()
    for word, term in zip(table, _english_stemmer().stemWords(list(table)), strict=True):
        out[term] = max(out.get(term, 0.0), table[word])
    return out


def stem_doc_freq(term: str, unseen: float) -> float:
    """A stem's prior document frequency: that of its most frequent word (the same for every event,
    whichever of its words the event used)."""
    return freq_doc_freq(stem_freqs().get(term, 0.0), unseen)


@functools.lru_cache(maxsize=1 << 15)
def _content_word(tok: str, unseen: float, max_df: float, stemmed: bool) -> tuple[str, float] | None:
    """(term, prior document frequency) of a token, or None for a short or function word (the
    token's own prior above ``max_df``). ``stemmed``: the term is the token's :func:`stem`, with the
    stem's prior (:func:`stem_doc_freq`); else its :func:`fold`, with the token's prior."""
    if len(tok) < 3:
        return None
    p = _prior_doc_freq(tok, unseen)
    if p > max_df:
        return None
    if stemmed:
        term = stem(tok)
        return term, stem_doc_freq(term, unseen)
    return fold(tok), p


def story_features(item: StoryInput, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> StoryFeatures:
    """Content words (title and lead weighted), names, distinctive quotes and numbers of one event;
    the ``max_event_terms`` content words with the highest prior TF-IDF are kept."""
    tf: dict[str, float] = {}
    priors: dict[str, float] = {}
    body = _WORD_RE.findall(without_stock_quotes(item.text, settings).lower())
    parts = ((_WORD_RE.findall(item.title.lower()), 3.0), (body[:_LEAD_WORDS], 2.0), (body[_LEAD_WORDS:], 1.0))
    unseen, max_df = settings.unseen_doc_freq, settings.max_word_doc_freq
    stemmed = item.language in STEMMED_LANGUAGES
    for toks, weight in parts:
        for tok in toks:
            info = _content_word(tok, unseen, max_df, stemmed)
            if info is None:
                continue  # short or function words
            term, p = info
            tf[term] = tf.get(term, 0.0) + weight
            if p > priors.get(term, 0.0):
                priors[term] = p
    p = settings.prior_docs  # prior_idf(priors[t], settings), inlined: ~130 terms an event
    ranked = sorted(tf, key=lambda t: (-tf[t] * max(0.0, math.log((p + 1.0) / (p * priors[t] + 0.5))), t))
    kept = ranked[: settings.max_event_terms]
    names: dict[str, float] = {}
    labels: dict[str, str] = {}
    for group, weight in ((item.entities, 1.0), (item.places, settings.place_weight)):
        for ent in group:
            if ent.get("id"):
                eid = str(ent["id"])
                names.setdefault(eid, weight)
                labels[eid] = str(ent.get("name") or eid)
                priors[eid] = name_doc_freq(labels[eid], settings)
    cross = (cross_evidence(item.language, item.title, item.text, item.entities, item.places)
             if item.language else None)
    return StoryFeatures({t: tf[t] for t in kept}, names, {t: priors[t] for t in [*kept, *names]}, labels,
                         distinctive_quote_shingles(item.text, settings), numbers(f"{item.title}\n{item.text}"), cross)


def unit(vec: Mapping[str, float]) -> dict[str, float]:
    """``vec`` scaled to length 1 (empty stays empty)."""
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {k: v / norm for k, v in vec.items()} if norm else {}


class EventVectors(NamedTuple):
    """An event's unit TF-IDF vectors (content words, names) and the damped (1 + log tf) content
    vector's length."""

    text: dict[str, float]
    names: dict[str, float]
    text_norm: float


def vectors(features: StoryFeatures, rarity: Rarity) -> EventVectors:
    """The event's TF-IDF vectors under ``rarity``. Content words weigh by their raw (title- and
    lead-weighted) term frequency, so what a report keeps coming back to dominates its vector;
    ``text_norm`` (what ``text_mass`` scales) is the length of the damped, 1 + log(tf), vector, so
    a long report's repetitions do not inflate how much vocabulary it shares (bench/RESULTS.md,
    issue 16, "Same-town distractors")."""
    idf = {t: rarity.idf(t, features.priors[t]) for t in features.words}
    text = {t: tf * idf[t] for t, tf in features.words.items()}
    damped = math.sqrt(sum(((1 + math.log(tf)) * idf[t]) ** 2 for t, tf in features.words.items()))
    names = {t: w * rarity.idf(t, features.priors[t]) for t, w in features.names.items()}
    return EventVectors(unit(text), unit(names), damped)


def index_keys(features: StoryFeatures, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> dict[str, float]:
    """Inverted-index keys the event is looked up and filed under, with their weights (the same on
    every worker: chosen from content and the shipped prior only): ``w:<word>``, ``e:<id>``, ``q:<hash>``."""
    def weight(t: str, base: float) -> float:
        return base * prior_idf(features.priors[t], settings)

    text = sorted(features.words, key=lambda t: (-weight(t, 1 + math.log(features.words[t])), t))
    out = {f"w:{t}": round(weight(t, 1 + math.log(features.words[t])), 3) for t in text[: settings.index_terms]}
    ents = sorted(features.names, key=lambda t: (-weight(t, features.names[t]), t))
    out.update({f"e:{t}": round(weight(t, features.names[t]), 3) for t in ents[: settings.index_entities]})
    quotes = sorted(features.quotes)[: settings.index_quotes]
    out.update({f"q:{q:08x}": 10.0 for q in quotes})
    return out


# --------------------------------------------------------------------------------------------------
# Story state and scoring
# --------------------------------------------------------------------------------------------------


def _cap(vec: dict[str, float], n: int) -> dict[str, float]:
    if len(vec) <= n:
        return vec
    return dict(sorted(vec.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


@dataclass
class StoryState:
    """Everything kept about one story: its span, counts, centroids, names, numbers and quotes."""

    story_id: str
    first_seen: float
    last_seen: float
    event_count: int = 0
    source_count: int = 0
    sources: list[str] = field(default_factory=list)
    centroid: dict[str, float] = field(default_factory=dict)   # content words: sum of member unit vectors
    name_centroid: dict[str, float] = field(default_factory=dict)
    terms: dict[str, float] = field(default_factory=dict)      # entity/place id -> events naming it
    names: dict[str, str] = field(default_factory=dict)
    numbers: list[str] = field(default_factory=list)
    quotes: list[int] = field(default_factory=list)
    merged_from: list[str] = field(default_factory=list)  # stories merged into this one, oldest merge first
    lingual: dict[str, Any] = field(default_factory=dict)      # cross-lingual profile (crosslingual.py)

    def add(self, item: StoryInput, features: StoryFeatures, vecs: EventVectors, settings: StorySettings) -> None:
        """Fold one event into the story, keeping every collection within its cap."""
        weight = settings.founder_weight if self.event_count == 0 else 1.0
        self.first_seen = min(self.first_seen, item.ts)
        self.last_seen = max(self.last_seen, item.ts)
        self.event_count += 1
        if item.source and item.source not in self.sources:
            self.source_count += 1
            if len(self.sources) < settings.max_story_sources:
                self.sources.append(item.source)
        for vec, centroid in ((vecs.text, self.centroid), (vecs.names, self.name_centroid)):
            for t, v in vec.items():
                centroid[t] = round(centroid.get(t, 0.0) + weight * v, 4)
        self.centroid = _cap(self.centroid, settings.max_story_terms)
        self.name_centroid = _cap(self.name_centroid, settings.max_story_entities)
        for t in features.names:
            self.terms[t] = self.terms.get(t, 0.0) + 1
            self.names[t] = features.labels.get(t, t)
        if len(self.terms) > settings.max_story_entities:
            # Entities and places capped apart: a text naming many places must not crowd out its people.
            kept = [*self._ranked(False)[: settings.max_story_entities], *self._ranked(True)[: settings.max_story_entities]]
            if len(kept) < len(self.terms):
                self.terms = {t: self.terms[t] for t in kept}
                self.names = {t: self.names[t] for t in self.terms if t in self.names}
        self.numbers = (self.numbers + sorted(features.numbers - set(self.numbers)))[: settings.max_story_numbers]
        self.quotes = (self.quotes + sorted(features.quotes - set(self.quotes)))[: settings.max_story_quotes]
        if features.cross is not None:
            fold_profile(self.lingual, features.cross)

    def absorb(self, other: StoryState, settings: StorySettings) -> None:
        """Fold ``other`` (a story found to report the same event) into this one: its span, counts,
        centroids, names, numbers and quotes; its id (and the ids it had absorbed) join ``merged_from``."""
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)
        self.event_count += other.event_count
        shared = len(set(self.sources) & set(other.sources))
        self.source_count += other.source_count - shared
        self.sources = (self.sources + [x for x in other.sources if x not in self.sources])[: settings.max_story_sources]
        for mine, theirs in ((self.centroid, other.centroid), (self.name_centroid, other.name_centroid)):
            for t, v in theirs.items():
                mine[t] = round(mine.get(t, 0.0) + v, 4)
        self.centroid = _cap(self.centroid, settings.max_story_terms)
        self.name_centroid = _cap(self.name_centroid, settings.max_story_entities)
        for t, n in other.terms.items():
            self.terms[t] = self.terms.get(t, 0.0) + n
            self.names.setdefault(t, other.names.get(t, t))
        if len(self.terms) > settings.max_story_entities:
            kept = [*self._ranked(False)[: settings.max_story_entities], *self._ranked(True)[: settings.max_story_entities]]
            self.terms = {t: self.terms[t] for t in kept}
            self.names = {t: self.names[t] for t in self.terms if t in self.names}
        self.numbers = (self.numbers + [n for n in other.numbers if n not in self.numbers])[: settings.max_story_numbers]
        self.quotes = (self.quotes + [q for q in other.quotes if q not in self.quotes])[: settings.max_story_quotes]
        merge_profiles(self.lingual, other.lingual)
        ids = [*self.merged_from, other.story_id, *other.merged_from]
        self.merged_from = list(dict.fromkeys(ids))[-settings.max_merged_ids:]

    def _ranked(self, places: bool) -> list[str]:
        """Entity (or place) ids by mentions; among equals, watchlist entries before names the rules
        found (``ner:...``)."""
        chosen = [t for t in self.terms if t.startswith(PLACE_ID_PREFIXES) == places]
        return sorted(chosen, key=lambda t: (-self.terms[t], t.startswith("ner:"), t))

    def top(self, places: bool, n: int) -> list[dict[str, Any]]:
        """The ``n`` most-mentioned entities, or places (ids ``geonames:...``, or ``nw:...`` where
        GeoNames has no row, see pipelines/text/places.py)."""
        return [{"id": t, "name": self.names.get(t, t), "events": int(self.terms[t])} for t in self._ranked(places)[:n]]

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
            "merged_from": list(self.merged_from),
        }

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly snapshot (``merged_from`` only when the story absorbed another)."""
        state = {
            "story_id": self.story_id, "first_seen": self.first_seen, "last_seen": self.last_seen,
            "event_count": self.event_count, "source_count": self.source_count,
            "sources": list(self.sources), "centroid": dict(self.centroid), "name_centroid": dict(self.name_centroid),
            "terms": dict(self.terms), "names": dict(self.names), "numbers": list(self.numbers),
            "quotes": list(self.quotes),
        }
        if self.merged_from:
            state["merged_from"] = list(self.merged_from)
        if self.lingual:
            state["lingual"] = self.lingual
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> StoryState:
        """Inverse of :meth:`to_state`."""
        return cls(
            story_id=state["story_id"], first_seen=state["first_seen"], last_seen=state["last_seen"],
            event_count=state["event_count"], source_count=state["source_count"],
            sources=list(state["sources"]), centroid=dict(state["centroid"]),
            name_centroid=dict(state["name_centroid"]), terms=dict(state["terms"]), names=dict(state["names"]),
            numbers=list(state["numbers"]), quotes=list(state["quotes"]),
            merged_from=list(state.get("merged_from") or ()), lingual=dict(state.get("lingual") or {}),
        )


FEATURES = ("text_cos", "text_mass", "name_cos", "quote", "numbers", "numbers_differ", "log_gap_h")


def cosine(vec: Mapping[str, float], centroid: Mapping[str, float]) -> float:
    """Cosine between a unit vector and an (unnormalised) centroid."""
    norm = math.sqrt(sum(v * v for v in centroid.values()))
    return sum(v * centroid.get(t, 0.0) for t, v in vec.items()) / norm if norm else 0.0


def evidence(features: StoryFeatures, vecs: EventVectors, ts: float, story: StoryState) -> tuple[float, ...]:
    """The scorer's inputs (:data:`FEATURES`) for one event against one story. ``text_mass``:
    log(1 + the TF-IDF weight the event shares with the story), how much rare vocabulary
    agrees, which a cosine of two short texts cannot tell. ``name_cos`` is the names' cosine times
    k / (k + 1) for an event with k names: one shared name (a town) is weaker evidence than several."""
    shared_quotes = len(features.quotes & set(story.quotes))
    nums = features.numbers
    shared_nums = len(nums & set(story.numbers))
    gap = max(0.0, story.first_seen - ts, ts - story.last_seen)
    text_cos = cosine(vecs.text, story.centroid)
    k = len(vecs.names)  # a cosine over few names says less: one shared town alone is 1.0
    name_cos = cosine(vecs.names, story.name_centroid) * k / (k + 1.0)
    return (text_cos, math.log1p(text_cos * vecs.text_norm), name_cos,
            min(1.0, shared_quotes / 3.0), shared_nums / min(len(nums), 6) if nums else 0.0,
            float(bool(nums) and bool(story.numbers) and not shared_nums), math.log1p(gap / 3600.0))


@dataclass(frozen=True)
class Scorer:
    """Logistic regression over :data:`FEATURES` (pipelines/data/story_scorer.json)."""

    weights: tuple[float, ...]
    bias: float

    def probability(self, x: Sequence[float]) -> float:
        z = self.bias + sum(w * v for w, v in zip(self.weights, x, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@functools.cache
def default_scorer() -> Scorer:
    """The shipped coefficients."""
    raw = orjson.loads((_DATA / "story_scorer.json").read_bytes())
    if tuple(raw["features"]) != FEATURES:
        raise ValueError(f"story_scorer.json: features {raw['features']} != {FEATURES}")
    return Scorer(tuple(raw["weights"]), float(raw["bias"]))


@dataclass(frozen=True)
class StoryScore:
    """How well an event fits a story: the join probability and the evidence behind it."""

    story_id: str
    score: float
    evidence: tuple[float, ...] = ()


def score_story(features: StoryFeatures, vecs: EventVectors, ts: float, story: StoryState, settings: StorySettings = DEFAULT_STORY_SETTINGS,
                scorer: Scorer | None = None) -> StoryScore:
    """Score one event against one story (pure; used per candidate story). A story unseen for
    ``max_gap_s`` (in event time) scores 0."""
    if ts - story.last_seen > settings.max_gap_s or story.first_seen - ts > settings.max_gap_s:
        return StoryScore(story.story_id, 0.0)
    x = evidence(features, vecs, ts, story)
    p = (scorer or default_scorer()).probability(x)
    if features.cross is not None and story.lingual:  # a story with reports in other languages
        p = max(p, cross_probability(features.cross, story.lingual, max(0.0, story.first_seen - ts, ts - story.last_seen)))
    return StoryScore(story.story_id, p, x)


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


def _centroid_cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    return sum(v * b.get(t, 0.0) for t, v in a.items()) / (na * nb) if na and nb else 0.0


def story_similarity(a: StoryState, b: StoryState) -> float:
    """Cosine between two stories' content centroids: what a late merge requires of the stories
    themselves, so one event resembling both cannot bridge two different events."""
    return _centroid_cosine(a.centroid, b.centroid)


def same_event(a: StoryState, b: StoryState, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> bool:
    """Whether two open stories report one event (late merge): content centroids within
    ``merge_min_similarity``, name centroids within ``merge_min_name_similarity`` (when either
    story has names: one shared player does not make two matches one), and numbers that do not
    disagree outright (two matches' scores, two days' closes)."""
    if story_similarity(a, b) < settings.merge_min_similarity:
        return False
    if (a.name_centroid or b.name_centroid) and \
            _centroid_cosine(a.name_centroid, b.name_centroid) < settings.merge_min_name_similarity:
        return False
    return not (a.numbers and b.numbers and not set(a.numbers) & set(b.numbers))


class StoryChoice(NamedTuple):
    """Where an event goes: the story it joins (None: it founds one), its score, and the stories
    merged into that story first (late merge; empty nearly always)."""

    score: StoryScore | None
    story: StoryState | None
    absorbed: tuple[StoryState, ...] = ()


def linked_open(linked: StoryState, ts: float, settings: StorySettings = DEFAULT_STORY_SETTINGS) -> bool:
    """Whether :func:`choose_story` joins the event to its ``linked`` story without looking at any
    candidate (the story is open at ``ts``)."""
    return ts - linked.last_seen <= settings.max_gap_s


def choose_story(features: StoryFeatures, vecs: EventVectors, ts: float, candidates: Sequence[StoryState],
                 settings: StorySettings = DEFAULT_STORY_SETTINGS, linked: StoryState | None = None,
                 scorer: Scorer | None = None) -> StoryChoice:
    """The story an event joins: the ``linked`` story (the one of an event it repeats, or the one its
    source named) while that is open, else the most probable candidate with ``p >= join_threshold``
    (ties to the smaller id), else none (it starts a new story).

    Late merge: other candidates the event also joins (``p >= join_threshold``) that
    :func:`same_event` finds report the best one's event are the same event told twice; the story with
    the most events (then the oldest, then the smaller id) survives and absorbs the others, and the
    event joins it. Only stories that are :func:`same_event` with the survivor itself are absorbed."""
    if linked is not None and linked_open(linked, ts, settings):
        return StoryChoice(score_story(features, vecs, ts, linked, settings, scorer), linked)
    scored = [(score_story(features, vecs, ts, st, settings, scorer), st) for st in candidates]
    ok = sorted(((sc, st) for sc, st in scored if sc.score >= settings.join_threshold),
                key=lambda e: (-e[0].score, e[0].story_id))
    if not ok:
        return StoryChoice(None, None)
    best, story = ok[0]
    if settings.merge_min_similarity >= 1.0:
        return StoryChoice(best, story)
    group = [(best, story)] + [(sc, st) for sc, st in ok[1:] if same_event(story, st, settings)]
    if len(group) == 1:
        return StoryChoice(best, story)
    win_score, survivor = min(group, key=lambda e: (-e[1].event_count, e[1].first_seen, e[1].story_id))
    absorbed = tuple(st for _, st in group if st is not survivor and (st is story or same_event(survivor, st, settings)))
    return StoryChoice(win_score, survivor, absorbed)


def merge_into(survivor: StoryState, absorbed: Iterable[StoryState], settings: StorySettings = DEFAULT_STORY_SETTINGS) -> None:
    """Fold the ``absorbed`` stories into ``survivor`` (see :func:`choose_story`)."""
    for st in absorbed:
        survivor.absorb(st, settings)


Posting = tuple[str, float]  # (story_id, last filed)


def file_posting(postings: tuple[Posting, ...], story_id: str, ts: float,
                 settings: StorySettings = DEFAULT_STORY_SETTINGS) -> tuple[Posting, ...]:
    """One index key's postings after filing ``story_id``: expired and surplus (oldest) entries go."""
    horizon = ts - settings.max_gap_s
    rest = [(sid, seen) for sid, seen in postings if sid != story_id and seen >= horizon]
    rest.append((story_id, ts))
    rest.sort(key=lambda e: -e[1])
    return tuple(rest[: settings.max_postings])


def rank_candidates(hits: Mapping[str, float], settings: StorySettings = DEFAULT_STORY_SETTINGS,
                    root: Callable[[str], str] | None = None) -> list[str]:
    """The ``max_candidates`` stories with the most index weight shared with the event; with
    ``root``, postings of a merged story count as the story it was merged into (resolved in rank
    order, each story once, as the Redis script does)."""
    ranked = sorted(hits, key=lambda sid: (-hits[sid], sid))
    if root is None:
        return ranked[: settings.max_candidates]
    out: list[str] = []
    for sid in ranked:
        r = root(sid)
        if r not in out:
            out.append(r)
            if len(out) >= settings.max_candidates:
                break
    return out


class StoryClusterer:
    """Single-process story clustering over explicit state (stories, inverted index, counts)."""

    def __init__(self, settings: StorySettings = DEFAULT_STORY_SETTINGS, rarity: Rarity | None = None,
                 scorer: Scorer | None = None) -> None:
        self.settings = settings
        self.scorer = scorer  # None: the shipped coefficients
        self.rarity = rarity if rarity is not None else Rarity(prior_docs=settings.prior_docs)
        self.stories: dict[str, StoryState] = {}
        self.index: dict[str, tuple[Posting, ...]] = {}
        self.merged: dict[str, str] = {}  # absorbed story id -> the story it was merged into

    def root(self, story_id: str) -> str:
        """The story ``story_id`` is now part of (itself unless it was merged)."""
        while story_id in self.merged:
            story_id = self.merged[story_id]
        return story_id

    def assign(self, item: StoryInput, join: str | None = None) -> StoryAssignment:
        """Put the event in its story (or a new one) and update all state.

        ``join``: a story the event is known to belong to (it repeats an event of that story, or
        its source named the story); used when that story is still open, instead of scoring.
        """
        s = self.settings
        features = story_features(item, s)
        self.rarity.observe(features.terms)
        vecs = vectors(features, self.rarity)
        keys = index_keys(features, s)
        hits: dict[str, float] = {}
        for k, w in keys.items():
            for sid, seen in self.index.get(k, ()):
                if self.root(sid) in self.stories and seen >= item.ts - s.max_gap_s:
                    hits[sid] = hits.get(sid, 0.0) + w
        candidates = [self.stories[sid] for sid in rank_candidates(hits, s, self.root) if sid in self.stories]
        best, story, absorbed = choose_story(features, vecs, item.ts, candidates, s,
                                             linked=self.stories.get(self.root(join)) if join is not None else None,
                                             scorer=self.scorer)
        if story is None:
            best, story = None, StoryState(story_id_for(item.event_id), item.ts, item.ts)
            self.stories[story.story_id] = story
        merge_into(story, absorbed, s)
        for st in absorbed:
            self.merged[st.story_id] = story.story_id
            del self.stories[st.story_id]
        story.add(item, features, vecs, s)
        for k in keys:
            self.index[k] = file_posting(self.index.get(k, ()), story.story_id, item.ts, s)
        return StoryAssignment(item.event_id, story.story_id, best is None, best, story.summary(s))

    def expire(self, now: float) -> int:
        """Drop stories and postings unseen for ``max_gap_s``; returns stories dropped."""
        horizon = now - self.settings.max_gap_s
        old = [sid for sid, st in self.stories.items() if st.last_seen < horizon]
        for sid in old:
            del self.stories[sid]
        self.merged = {a: b for a, b in self.merged.items() if self.root(b) in self.stories}
        for k in list(self.index):
            live = tuple(e for e in self.index[k] if e[1] >= horizon)
            if live:
                self.index[k] = live
            else:
                del self.index[k]
        return len(old)
