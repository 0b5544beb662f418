"""Toponyms resolved to GeoNames places (or curated seas and regions), and a document's focus place.

Recognition is a gazetteer lookup of capitalised names (GeoNames cities of 1,000+ people, countries,
first-level divisions, US counties, continents, plus config/gazetteer/places.yaml), and in English
texts streets and roads by pattern (located at the text's town). Resolution picks, for each name,
the candidate with the best population prior plus context from the rest of the text: a "Town, State"
or "Town, Country" pattern, countries and states the text mentions, and nearness to its other places
(the usual CLAVIN-style heuristics). Names inside a person or organisation ("Vladimir" in "Vladimir
Putin", "Kremlin") are not places.
"""

from __future__ import annotations

import math
import re
import sys
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.text.entities import Entity, Mention
from pipelines.text.gazetteer import (
    DEFAULT_GAZETTEER_DIR,
    PLACES_TABLE,
    NameMatch,
    NameMatcher,
    PlaceKeys,
    PlaceRecord,
    Spans,
    Token,
    load_demonyms,
    load_everyday_words,
    load_places,
    load_state_abbreviations,
    load_stoplist,
    name_key,
    place_keys,
    slug,
    tokenize,
)
from pipelines.text.multilingual import (
    LanguageLexicon,
    LanguageNames,
    base_language,
    designated_feature,
    load_lexicons,
    merge_matches,
    split_elisions,
)
from pipelines.text.names import FIRST_NAMES_TABLE, keeps_place, load_first_names, load_local_bodies
from pipelines.text.prebuilt import cached, files_under, path_label

# Prior for each kind of place before population counts: a country name is nearly always the
# country, a curated sea or region the sea or region, a state name usually the state, and a city
# name depends on how big the city is (log10 of its population, so 1 to 7.5).
_FEATURE_PRIOR = {"country": 12.0, "continent": 11.0, "region": 10.0, "sea": 10.0, "admin1": 7.0, "admin2": 6.0,
                  "city": 0.0}
_CAPITAL_BONUS = 2.0
_TOWN_STATE_BONUS = 1.5  # a candidate in the state of another of the text's towns
_SPECIFICITY = {"city": 4, "admin2": 3, "admin1": 2, "region": 1, "sea": 1, "country": 0, "continent": -1}
# Words after a list of bare county names that make them counties ("Clay and Wilkin counties").
_COUNTY_PLURALS = frozenset({"counties", "parishes", "boroughs"})
_COUNTY_PLURAL_HINT = re.compile(r"(?i:counties|parishes|boroughs)")
_COUNTY_ENDINGS = (" county", " parish", " borough")
# Streets and roads (English texts): capitalised words before one of these ("Cooper Street",
# "40th Avenue South"), or a road word before a number ("Highway 10", "County Road 42", "Interstate 95").
_STREET_WORDS = frozenset({"street", "st", "avenue", "ave", "road", "rd", "drive", "lane", "ln", "boulevard", "blvd",
                           "parkway", "pkwy", "highway", "hwy", "expressway", "freeway", "turnpike", "trail"})
_ROAD_WORDS = frozenset({"highway", "hwy", "interstate", "route", "road", "rd"})
_ROAD_HEADS = frozenset({"state", "county", "us", "u s", "farm", "ranch"})  # "State Highway 3", "U.S. Route 66"
_DIRECTIONS = frozenset({"north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest",
                         "n", "s", "e", "w", "ne", "nw", "se", "sw", "old", "new"})
_STREET_WORDS_MAX = 3  # capitalised words before the street word
# A capital, then the rest in any case ("Street", "STREET"); the lookahead lets the engine skip most
# positions at once (a case-insensitive pattern cost ~0.15 ms per KB, this one ~0.05).
_STREET_HINT = re.compile(r"\b(?=[SARDLBPHETI])(?:" + "|".join(w[0] + "(?i:" + w[1:] + ")" for w in (
    "Street", "St", "Avenue", "Ave", "Road", "Rd", "Drive", "Lane", "Ln", "Boulevard", "Blvd", "Parkway", "Pkwy",
    "Highway", "Hwy", "Expressway", "Freeway", "Turnpike", "Trail", "Interstate", "Route")) + r")\b")
_STATE_BEFORE = frozenset({"upstate", "downstate"})  # "upstate New York": the state
_SAINT_BEFORE = frozenset({"mount", "mt", "port", "fort", "ft", "lake", "point", "cape"})  # "Port St. Lucie"
# A one-word town name before one of these is a person's ("the Fairfax administration", "the
# Harlow and Whitby administrations").
_PERSON_AFTER = frozenset({"administration", "administrations", "presidency", "presidencies", "campaign",
                           "campaigns"})
# A demonym right after one of these (or one word further: "speaks fluent French") names a language.
_SPEAK_VERBS = frozenset({"speak", "speaks", "spoke", "spoken", "speaking", "speaker", "speakers"})
# One-word names that are among the most frequent English words ("Can", "Far", "Hope") name only
# small towns or another town by an alternate spelling: the word, unless "Town, State" says otherwise.
_EVERYDAY_WORDS = 1000
# A small town's one-word name before one of these, not after "in"/"at"/..., is a person's ("Whitby
# said", "Barlow told the council"); a big city may speak for its government ("Moscow said").
_SPEECH_VERBS = frozenset({"said", "says", "told", "tells", "added", "asked", "urged", "explained", "noted",
                           "recalled", "testified", "wrote", "replied"})
# A colour, then a make, then a town's name: a vehicle ("a grey Hyundai Tucson"), there and again in the text.
_COLOURS = frozenset({"red", "blue", "white", "black", "silver", "gray", "grey", "green", "gold", "tan", "maroon",
                      "beige", "brown", "burgundy", "purple", "yellow", "orange", "dark", "light"})
_SPEECH_ADVERBS = frozenset({"also", "again", "later", "then", "once", "never", "still", "further", "previously"})
_PLACE_BEFORE = frozenset({"in", "at", "from", "to", "near", "of", "outside", "across", "into", "toward", "towards"})
_MAX_CANDIDATES = 40
_NEAR_KM = 160.0
# How far from a first-level division's reference point its towns may lie (large provinces, e.g.
# Ontario's point is ~1,000 km from its southern cities) when the table has no division code for them.
_DIVISION_REACH_KM = 1500.0
# A one-word town name smaller than this needs support from the rest of the text (its state or
# country named, a neighbour nearby, "Town, State") to count: most are surnames or ordinary words.
_SMALL_TOWN = 20_000
# A city at least this big keeps its name even next to another capitalised word ("Denver Broncos").
_BIG_CITY = 100_000


#: How every place id starts: GeoNames' own ids, and the project's where GeoNames has no row here
#: (seas, regions, non-US first-level divisions). Entity ids never start so.
PLACE_ID_PREFIXES = ("geonames:", "nw:")


@dataclass(frozen=True)
class Place:
    """A resolved place with every mention of it in one text."""

    id: str  # "geonames:658225", or "nw:sea:black-sea" / "nw:admin1:UA-43" where GeoNames has no row here
    geonameid: int | None
    name: str
    country_code: str | None  # ISO 3166-1 alpha-2
    admin1: str | None  # GeoNames admin1 code where known (US: the state's postal code)
    lat: float
    lon: float
    feature: str  # "country" | "admin1" | "admin2" | "city" | "street" | "continent" | "region" | "sea"
    mentions: tuple[Mention, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form for events."""
        return {"id": self.id, "geonameid": self.geonameid, "name": self.name,
                "country_code": self.country_code, "admin1": self.admin1, "lat": self.lat, "lon": self.lon,
                "feature": self.feature, "mentions": [m.to_dict() for m in self.mentions]}


@dataclass(frozen=True)
class Nationality:
    """A country named by its demonym ("French", "Finnish officials"): the text speaks of its people or
    things, which is a signal about the country but no mention of the place."""

    id: str  # the country's place id, as a Place naming it would have
    name: str
    country_code: str | None
    lat: float  # the country's reference point: not in the event, for evaluations that score demonyms as toponyms
    lon: float
    mentions: tuple[Mention, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form for events."""
        return {"id": self.id, "name": self.name, "country_code": self.country_code,
                "mentions": [m.to_dict() for m in self.mentions]}


@dataclass(frozen=True)
class PlaceResult:
    """All places of one text, the one it is mostly about, and the countries named by demonyms."""

    places: tuple[Place, ...]
    focus: Place | None
    nationalities: tuple[Nationality, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form for events."""
        return {"places": [p.to_dict() for p in self.places],
                "focus": self.focus.id if self.focus else None,
                "nationalities": [n.to_dict() for n in self.nationalities]}


def _joined_space(text: str, left: Token, right: Token) -> bool:
    return text[left.end:right.start] in (" ", "\u00a0")


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(min(1.0, math.sqrt(a)))


@dataclass
class _Toponym:
    match: NameMatch
    key: str
    candidates: list[PlaceRecord]
    within: list[PlaceRecord]  # the place after a comma ("Moscow, Idaho"), if any
    choice: PlaceRecord | None = None
    supported: bool = False  # its choice agrees with other places of the text


def _lat(rec: PlaceRecord) -> float:
    return rec.lat


def _token_start(tok: Token) -> int:
    return tok.start


# Two points under _NEAR_KM apart are less than 1.44 degrees of latitude apart: looking this far
# either side of a place's latitude finds every point near it (and passes _score's 1.5-degree test).
_LAT_WINDOW = 2.0


@dataclass
class _Tally:
    """How many toponyms stand for each place, and for a place in each country and state."""

    places: Counter[str] = field(default_factory=Counter)
    countries: Counter[str] = field(default_factory=Counter)
    states: Counter[tuple[str, str]] = field(default_factory=Counter)  # (country code, admin1 code)
    named_states: Counter[tuple[str, str]] = field(default_factory=Counter)  # the state or a county of it


_NO_TALLY = _Tally()  # read-only stand-in for a key with no choices yet (Counter reads do not insert)


class _Choices:
    """What the toponyms of one text currently stand for, tallied overall and per name key.

    A toponym's context is the choices of the text's other names. A dense text names the same few
    places thousands of times, so rather than scan every toponym for every toponym, the tally
    overall less the tally under the toponym's own key says whether another name chose a place, or
    a place in some country or state; only distinct places are kept for the distance checks.
    """

    def __init__(self) -> None:
        self._all = _Tally()
        self._by_key: dict[str, _Tally] = {}
        self._points: list[PlaceRecord] = []  # distinct chosen cities and states, by latitude
        self._divisions: dict[tuple[str | None, str | None], set[str]] = {}  # codes -> chosen admin1 ids
        self._changes = 0  # how often a key took up a place or let go of its last toponym of one
        self._changes_by_key: Counter[str] = Counter()

    def add(self, key: str, rec: PlaceRecord) -> None:
        """One more toponym under `key` stands for `rec`."""
        self._count(key, rec, 1)

    def remove(self, key: str, rec: PlaceRecord) -> None:
        """One toponym under `key` no longer stands for `rec`."""
        self._count(key, rec, -1)

    def others_changes(self, key: str) -> int:
        """Grows whenever the set of places chosen under keys other than `key` changes."""
        return self._changes - self._changes_by_key[key]

    def other_country(self, key: str, code: str) -> bool:
        """Another key stands for a place in country `code`."""
        return self._all.countries[code] > self._mine(key).countries[code]

    def other_state(self, key: str, state: tuple[str, str]) -> bool:
        """Another key stands for a place in `state` (country code, admin1 code)."""
        return self._all.states[state] > self._mine(key).states[state]

    def other_named_state(self, key: str, state: tuple[str, str]) -> bool:
        """Another key stands for the state `state` itself or for one of its counties."""
        return self._all.named_states[state] > self._mine(key).named_states[state]

    def other_points(self, key: str, lat: float) -> list[PlaceRecord]:
        """Cities and states chosen under other keys within _LAT_WINDOW degrees of latitude `lat`."""
        lo = bisect_left(self._points, lat - _LAT_WINDOW, key=_lat)
        hi = bisect_right(self._points, lat + _LAT_WINDOW, key=_lat)
        mine = self._mine(key).places
        return [p for p in self._points[lo:hi] if self._all.places[p.id] > mine[p.id]]

    def other_divisions(self, key: str, country_code: str | None, admin1: str) -> list[str]:
        """Ids of first-level divisions with these codes chosen under other keys."""
        mine = self._mine(key).places
        return [i for i in self._divisions.get((country_code, admin1), ()) if self._all.places[i] > mine[i]]

    def _mine(self, key: str) -> _Tally:
        return self._by_key.get(key) or _NO_TALLY

    def _count(self, key: str, rec: PlaceRecord, step: int) -> None:
        before = 0 if step > 0 else 1  # the count at which this step adds or drops a distinct place
        mine = self._by_key.get(key)
        if mine is None:
            mine = self._by_key[key] = _Tally()
        if mine.places[rec.id] == before:
            self._changes += 1
            self._changes_by_key[key] += 1
        distinct = self._all.places[rec.id] == before
        for tally in (mine, self._all):
            tally.places[rec.id] += step
            if rec.country_code:
                tally.countries[rec.country_code] += step
            if rec.admin1:
                tally.states[(rec.country_code or "", rec.admin1)] += step
                if rec.feature in ("admin1", "admin2"):
                    tally.named_states[(rec.country_code or "", rec.admin1)] += step
        if not distinct:
            return
        if rec.feature in ("city", "admin1", "admin2"):
            if step > 0:
                insort(self._points, rec, key=_lat)
            else:
                at = bisect_left(self._points, rec.lat, key=_lat)
                self._points.pop(next(i for i in range(at, len(self._points)) if self._points[i].id == rec.id))
        if rec.feature == "admin1":
            ids = self._divisions.get((rec.country_code, rec.admin1))
            if ids is None:
                ids = self._divisions[(rec.country_code, rec.admin1)] = set()
            if step > 0:
                ids.add(rec.id)
            else:
                ids.discard(rec.id)


class PlaceResolver:
    """Finds and resolves toponyms; load once per worker (the constructor reads the place table)."""

    def __init__(self, gazetteer_dir: Path | None = None, demonyms: bool = True) -> None:
        gazetteer_dir = (gazetteer_dir or DEFAULT_GAZETTEER_DIR).resolve()
        # The tables (_build) derive from the gazetteer folder and the data tables only: built once,
        # then read back from the model cache (prebuilt.py; ~8 s of CPU -> ~2).
        self.__dict__.update(cached(f"resolver-{path_label(gazetteer_dir)}-{int(demonyms)}",
                                    files_under(gazetteer_dir, PLACES_TABLE.parent),
                                    lambda: self._build(gazetteer_dir, demonyms)))
        # Texts in other languages: their stop words, everyday words and extra place names; not in
        # the cached tables, so that this process's entity tagger and resolver share one copy.
        self._lexicons = load_lexicons(gazetteer_dir)
        # The records the languages' names point to, found in one pass here (~0.03 s) rather than on
        # a language's first text: that pass touches every one of the 155k records, and in a job
        # forked from `newswire up`'s launcher it copied ~70 MB of the shared heap into the job
        # (bench/RESULTS.md "Copy-on-write").
        wanted = {pid for lex in self._lexicons.values() for _, pid in lex.place_names}
        self._lexicon_records = {r.id: r for r in self._records if r.id in wanted}

    def _build(self, gazetteer_dir: Path, demonyms: bool) -> dict[str, Any]:
        """Build the tables from the files; returns the attributes (what the model cache stores)."""
        self._stop = load_stoplist(gazetteer_dir)
        self._states = load_state_abbreviations(gazetteer_dir)
        self._titles = frozenset(t.split()[-1] for t in self._stop.person_titles)
        self._local_bodies = load_local_bodies(gazetteer_dir)
        self._first_names = load_first_names(FIRST_NAMES_TABLE)  # cached: the entities stage reads it too
        self._everyday = load_everyday_words(_EVERYDAY_WORDS)
        self._matcher = NameMatcher()
        # record id -> keys of its main name: a tuple (one or two keys), the matcher's own strings
        # (155k records: sets and copies of the strings were ~38 MB of every job's memory)
        self._canonical: dict[str, tuple[str, ...]] = {}
        records = load_places(gazetteer_dir)
        self._admin1: dict[tuple[str, str], PlaceRecord] = {}
        # A county's name without "County" ("Otter Tail") only where the text gives evidence (places
        # below): a matcher of its own, run only on such texts.
        self._county_names = NameMatcher()
        for rec in records:
            for n in rec.names:
                self._matcher.add(n, rec)
            if rec.feature == "admin2":
                self._county_names.add(rec.name.rsplit(" ", 1)[0], rec)
            main, first = sys.intern(name_key(rec.name)), sys.intern(name_key(rec.names[0]))
            self._canonical[rec.id] = (main,) if main == first else (main, first)
            if rec.feature == "admin1" and rec.country_code and rec.admin1:
                self._admin1[(rec.country_code, rec.admin1)] = rec
        self._countries = {r.country_code: r for r in records if r.feature == "country" and r.country_code}
        self._records = records
        self._priors: dict[str, float] = {}  # record id -> _compute_prior, filled as names are seen
        self._ranked_by_key: dict[str, tuple[tuple[PlaceRecord, ...], list[PlaceRecord]]] = {}
        self._state_and_town: dict[str, bool] = {}  # key -> names a state and a town (English texts)
        self._demonyms: frozenset[str] = frozenset()  # keys of the demonyms matched as their country
        if demonyms:
            words = {word: code for word, code in load_demonyms(gazetteer_dir).items() if code in self._countries}
            for word, code in words.items():
                self._matcher.add(word, self._countries[code])
            self._demonyms = frozenset(name_key(w) for w in words)
        self._language_names: dict[str, LanguageNames] = {}  # built on a language's first text
        self._place_keys = place_keys(records)
        return dict(self.__dict__)

    # ------------------------------------------------------------------ public API

    def place_keys(self) -> PlaceKeys:
        """The names of this resolver's places, for EntityTagger(places=...): the table is read once."""
        return self._place_keys

    def resolve(self, text: str, language: str, entities: Sequence[Entity] = (),
                tokens: list[Token] | None = None) -> PlaceResult:
        """Places named in `text`; `entities` (from EntityTagger) keep people and organisations out.
        `tokens`: tokenize(text), when the caller already has them (shared with entity tagging)."""
        # Names are matched in every language (the table carries translated names); a text in another
        # language than English also gets that language's names and word lists (multilingual.py).
        lex = self._lexicon(language)
        if tokens is None:
            tokens = tokenize(text)
        if lex is not None:
            tokens = split_elisions(text, tokens, lex)  # "l'Allemagne": the name is a word of its own
        # Watchlisted names and people are never places; an organisation found by NER often holds
        # one ("Fargo City Commission"), so it does not block the place inside it.
        # A town's team found by the name rules ("Leicestershire beat Somerset") is not the town.
        # Nor is a place inside a team's, a company's or a newsroom's name found by the rules ("Denver
        # Marmots", "Air Malta"), while a local public body keeps it ("Tulsa Police Department").
        blocked = [(m.start, m.end) for e in entities if e.source == "gazetteer" or e.type == "person"
                   or (e.source == "rule" and name_key(e.name) in self._matcher) for m in e.mentions]
        # A demonym opening such a name stays a nationality ("Finnish" in "Finnish Meteorological Institute").
        blocked += [(self._after_demonym(m), m.end) for e in entities if e.source == "rule"
                    and name_key(e.name) not in self._matcher and not keeps_place(e.name, *self._local_bodies)
                    for m in e.mentions]
        if lex is not None:
            # Outside English the name rules find organisations by their head or last word, and a
            # place inside one is part of its name ("Banque de France", "Météo-France").
            blocked += [(m.start, m.end) for e in entities if e.source == "rule" and e.type == "org" for m in e.mentions]
        # First names of the people found ("Charlotte Graham"): that name alone is the person's too.
        first_names = {k for k in (name_key(e.name).split()[0] for e in entities if e.type == "person" and " " in e.name)
                       if k in self._first_names} if lex is None else set()
        toponyms = self._recognise(text, tokens, blocked, lex, first_names)
        if lex is not None:
            toponyms = [t for t in toponyms if not self._everyday_word(t, lex)]
            self._designate(tokens, toponyms, lex)
        streets = self._streets(text, tokens, blocked) if lex is None else []
        if streets:
            inside = Spans(streets)
            toponyms = [t for t in toponyms if not inside.overlaps(t.match.start, t.match.end)]
        self._disambiguate(toponyms)
        return self._result(text, toponyms, streets)

    def _streets(self, text: str, tokens: list[Token], blocked: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Character spans of streets and roads ("North Cooper Street", "Highway 10", "County Road 42")."""
        spans: list[tuple[int, int]] = []
        n = len(tokens)
        # Most texts hold no street word: one regex scan finds the few tokens worth a look.
        for hit in _STREET_HINT.finditer(text):
            i = bisect_left(tokens, hit.start(), key=_token_start)
            if i == 0 or i >= n or tokens[i].start != hit.start():
                continue
            tok = tokens[i]
            if not tok.capitalised or (tok.key not in _STREET_WORDS and tok.key not in _ROAD_WORDS):
                continue
            first = last = i
            after = tokens[i + 1] if i + 1 < n and _joined_space(text, tok, tokens[i + 1]) else None
            if tok.key in _ROAD_WORDS and after is not None and after.key.isdigit():
                last = i + 1  # "Highway 10"
                while first > 0 and tokens[first - 1].key in _ROAD_HEADS and tokens[first - 1].capitalised \
                        and _joined_space(text, tokens[first - 1], tokens[first]):
                    first -= 1
            elif tok.key in _STREET_WORDS:
                if tok.key == "st" and after is not None and after.capitalised and (
                        not tokens[i - 1].capitalised or tokens[i - 1].key in _SAINT_BEFORE):
                    continue  # "St. Louis", "Port St. Lucie": a saint
                j = i - 1
                while j >= 0 and i - j <= _STREET_WORDS_MAX and _joined_space(text, tokens[j], tokens[j + 1]) and (
                        tokens[j].capitalised
                        or (tokens[j].key[:1].isdigit() and tokens[j].key.endswith(("st", "nd", "rd", "th")))):
                    j -= 1
                first = j + 1
                # A sentence's first word that is no name ("Crews", "The") is not the street's.
                while first < i and tokens[first].sentence_start and tokens[first].key in self._stop.not_names \
                        and tokens[first].key not in _DIRECTIONS:
                    first += 1
                if first == i:
                    continue
                if after is not None and after.capitalised and after.key in _DIRECTIONS:
                    last = i + 1  # "40th Avenue South"
            else:
                continue
            start, end = tokens[first].start, tokens[last].end
            if tokens[last].key.isdigit() and text[end - 1] == ".":
                end -= 1  # "County Road 12." ends a sentence
            if spans and start < spans[-1][1]:
                continue
            # Inside a person's or an organisation's name ("Wall Street Journal") it is no street; a
            # name found inside the street ("Highway" read as an organisation) does not count.
            if not any(s < end and start < e and (s < start or e > end) for s, e in blocked):
                spans.append((start, end))
        return spans

    def _after_demonym(self, mention: Mention) -> int:
        """Where a mention starts, past a leading demonym ("Finnish ...") if it has one."""
        first, _, rest = mention.text.partition(" ")
        if rest and name_key(first) in self._demonyms:
            return mention.end - len(rest)
        return mention.start

    # ------------------------------------------------------------------ other languages than English

    def _lexicon(self, language: str) -> LanguageLexicon | None:
        lang = base_language(language)
        return None if lang == "en" else self._lexicons.get(lang)

    def _names_of(self, lex: LanguageLexicon) -> LanguageNames:
        names = self._language_names.get(lex.language)
        if names is None:
            by_id = self._lexicon_records
            names = LanguageNames((n, by_id[pid]) for n, pid in lex.place_names if pid in by_id)
            self._language_names[lex.language] = names
        return names

    def _with_table_values(self, tokens: list[Token], m: NameMatch) -> tuple[PlaceRecord, ...]:
        # "Hambourg" names the state in the language's table and the city in the place table: both.
        table = self._matcher.get(" ".join(t.key for t in tokens[m.first:m.last + 1]))
        return (*m.values, *(r for r in table if r not in m.values))

    @staticmethod
    def _designate(tokens: list[Token], toponyms: list[_Toponym], lex: LanguageLexicon) -> None:
        # "Kanton Wallis", "estado de Oaxaca": the word before the name says which kind of place it
        # is, there and wherever the text repeats the name.
        features: dict[str, str] = {}
        for t in toponyms:
            feature = designated_feature(tokens, t.match.first, lex)
            if feature and any(c.feature == feature for c in t.candidates):
                features.setdefault(t.key, feature)
        for t in toponyms:
            if t.key in features:
                t.candidates = [c for c in t.candidates if c.feature == features[t.key]]

    @staticmethod
    def _everyday_word(t: _Toponym, lex: LanguageLexicon) -> bool:
        # One everyday word of the language ("Nähe", "República") that names only towns smaller than
        # _BIG_CITY is the word, unless written "Town, State"; a nearby place is no proof ("in der
        # Nähe von Hamburg" is not Nahe, Holstein). Dropped before disambiguation, so that it lends
        # no context to the text's other names either.
        return (t.match.first == t.match.last and t.key in lex.common_words and not t.within
                and all(c.feature == "city" and c.population < _BIG_CITY for c in t.candidates))

    # ------------------------------------------------------------------ recognition

    def _recognise(self, text: str, tokens: list[Token], blocked: list[tuple[int, int]],
                   lex: LanguageLexicon | None = None, first_names: set[str] | None = None) -> list[_Toponym]:
        """`first_names`: first names of the text's people (English texts), grown here."""
        ordinary: frozenset[str] = frozenset()
        if lex is None:
            matches = self._matcher.find(text, tokens, blocked)
        else:
            # The language's own names first ("mer Baltique"), then the table's around them.
            own = [NameMatch(m.first, m.last, m.start, m.end, self._with_table_values(tokens, m))
                   for m in self._names_of(lex).find(text, tokens, blocked)]
            matches = merge_matches(own, self._matcher.find(text, tokens, [*blocked, *((m.start, m.end) for m in own)]))
            ordinary = lex.ordinary
        index_of = {m.first: m for m in matches}
        name_words = self._name_words(text, tokens, index_of, ordinary)
        toponyms: list[_Toponym] = []
        first_names = set() if first_names is None else first_names  # names the text gives people or things
        lower: list[frozenset[str]] = []  # keys of the text's lower-case words, made when first needed
        vehicles: set[str] = set()  # models of cars this text names
        for m in matches:
            key = " ".join(t.key for t in tokens[m.first:m.last + 1])
            if key in self._stop.not_places:
                continue
            # "Creek" in "Willow Creek": a place word alone is the end of a longer name.
            if m.first == m.last and key in self._stop.place_words:
                continue
            # A function word, a month or a title of the text's language is never a place ("Un", "Mai").
            if lex is not None and m.first == m.last and key in lex.never_places and not (
                    tokens[m.first].upper and len(key) > 2):  # "USA" in capitals is no Spanish "usa"
                continue
            if lex is None and self._first_name(text, tokens, m, index_of):
                first_names.add(key)
                continue
            prv = m.first - 1
            if lex is None and m.first == m.last and self._speaks(text, tokens, m.last) \
                    and not (prv >= 0 and tokens[prv].key in _PLACE_BEFORE) and self._small_towns_only(m.values):
                first_names.add(key)  # "Whitby said", "Whitby again urged": a person, and so again in this text
                continue
            if lex is None and m.first == m.last and prv >= 0 and len(tokens[prv].key) == 4 \
                    and tokens[prv].key.isdigit() and 1900 <= int(tokens[prv].key) < 2100 \
                    and _joined_space(text, tokens[prv], tokens[m.first]) and self._small_towns_only(m.values):
                first_names.add(key)  # "a red 1991 Honda": a make or model, and so again in this text
                continue
            if lex is None and m.first == m.last and prv >= 1 and tokens[prv].capitalised \
                    and not tokens[prv - 1].capitalised and tokens[prv - 1].key in _COLOURS \
                    and _joined_space(text, tokens[prv - 1], tokens[prv]) and _joined_space(text, tokens[prv], tokens[m.first]) \
                    and not self._major(m.values, divisions=False):
                vehicles.add(key)  # "a grey Hyundai Tucson": a make and model, and so again in this text
                continue
            if lex is None and m.first == m.last and tokens[m.first].sentence_start and not self._major(m.values, divisions=False) \
                    and all(c.population < _BIG_CITY or key not in self._canonical[c.id] for c in m.values) \
                    and key in self._lower_keys(tokens, lower):
                # "Reading lists ...", "Mobile phones ...": the word, written in lower case elsewhere
                # (a province named by an everyday word too: only countries, capitals and big cities stay).
                continue
            if lex is None and key in self._demonyms and self._language_named(tokens, m.first):
                continue  # "she speaks French": the language, neither the country nor a nationality
            if self._part_of_other_name(text, tokens, m, key, m.values, index_of, name_words, ordinary):
                continue
            within = self._container(text, tokens, m, index_of)
            if lex is None and m.first == m.last and not within and key in self._everyday and all(
                    c.feature == "city" and (c.population < _BIG_CITY or key not in self._canonical[c.id])
                    for c in m.values):
                continue  # "Hope remains" -> Hope, "Can" -> Caen: an everyday word, not a town
            candidates = self._ranked(key, m.values)
            if lex is None:
                mixed = self._state_and_town.get(key)
                if mixed is None:
                    mixed = self._state_and_town[key] = any(c.feature == "admin1" for c in candidates) and any(
                        c.feature == "city" for c in candidates)
                if mixed:
                    candidates = self._state_or_city(tokens, m, candidates)
            toponyms.append(_Toponym(m, key, candidates, within))
            if within and within[0].id.startswith("geonames:") and m.last + 1 not in index_of:
                # "Alexandria, La.": the state abbreviation is a toponym too.
                after = tokens[m.last + 1]
                state = NameMatch(m.last + 1, m.last + 1, after.start, after.end, (within[0],))
                toponyms.append(_Toponym(state, after.key, [within[0]], []))
        if first_names:
            # One sense per text: once "Lindsay Graham" is a person, "Lindsay" alone is her too.
            toponyms = [t for t in toponyms if not (t.key in first_names and t.match.first == t.match.last
                                                    and not t.within and not self._major(t.candidates))]
        if vehicles:
            toponyms = [t for t in toponyms if not (t.key in vehicles and t.match.first == t.match.last
                                                    and not t.within and not self._major(t.candidates, divisions=False))]
        return self._bare_counties(text, tokens, blocked, toponyms)

    @staticmethod
    def _speaks(text: str, tokens: list[Token], i: int) -> bool:
        """A verb of speech follows token i, maybe past one adverb ("Whitby later told")."""
        j = i + 1
        if j + 1 < len(tokens) and not tokens[j].capitalised and (
                tokens[j].key in _SPEECH_ADVERBS or tokens[j].key.endswith("ly")) \
                and _joined_space(text, tokens[i], tokens[j]):
            i, j = j, j + 1
        return j < len(tokens) and tokens[j].key in _SPEECH_VERBS and _joined_space(text, tokens[i], tokens[j])

    @staticmethod
    def _lower_keys(tokens: list[Token], made: list[frozenset[str]]) -> frozenset[str]:
        if not made:
            made.append(frozenset(t.key for t in tokens if not t.capitalised))
        return made[0]

    @staticmethod
    def _small_towns_only(candidates: Sequence[PlaceRecord]) -> bool:
        return all(c.feature == "city" and c.population < _BIG_CITY for c in candidates)

    @staticmethod
    def _major(candidates: Sequence[PlaceRecord], divisions: bool = True) -> bool:
        """A country, continent, sea or region, a capital or a city of a million among the candidates;
        with `divisions`, a state or county too."""
        minor = ("city",) if divisions else ("city", "admin1", "admin2")
        return any(c.feature not in minor or c.capital or c.population >= 1_000_000 for c in candidates)

    @staticmethod
    def _language_named(tokens: list[Token], i: int) -> bool:
        """Token i follows a verb of speaking, maybe past one word ("spoke only French")."""
        if i >= 1 and tokens[i - 1].key in _SPEAK_VERBS:
            return True
        return i >= 2 and tokens[i - 2].key in _SPEAK_VERBS and not tokens[i - 1].capitalised

    def _first_name(self, text: str, tokens: list[Token], m: NameMatch, index_of: dict[int, NameMatch]) -> bool:
        """A one-word town name that is a first name, before a capitalised word that starts no place
        ("Nadia Moayyad"), or before "and" and such a name ("Lindsay and Charlotte Graham"): a person's,
        unless the place is a major one (a country, state, capital or city of a million)."""
        if m.first != m.last or tokens[m.first].key not in self._first_names or self._major(m.values):
            return False
        nxt = m.last + 1
        if nxt + 2 < len(tokens) and tokens[nxt].key == "and" and tokens[nxt + 1].key in self._first_names \
                and _joined_space(text, tokens[m.last], tokens[nxt]) \
                and _joined_space(text, tokens[nxt], tokens[nxt + 1]):
            nxt += 2  # "Lindsay and Charlotte Graham": look past "and Charlotte"
        if nxt >= len(tokens) or not _joined_space(text, tokens[nxt - 1], tokens[nxt]):
            return False
        after = tokens[nxt]
        return (after.capitalised and not after.upper and nxt not in index_of and after.key not in self._stop.not_names
                and after.key not in self._stop.place_words)

    @staticmethod
    def _state_or_city(tokens: list[Token], m: NameMatch, candidates: list[PlaceRecord]) -> list[PlaceRecord]:
        """A state sharing its name with a town: "Washington state", "the state of New York", "upstate
        New York" are the state; otherwise a namesake city of a million in that state ("New York")
        is the city, as news means it. Other cases are left to disambiguation."""
        states = [c for c in candidates if c.feature == "admin1"]
        if not states or len(states) == len(candidates):
            return candidates
        nxt, prv = m.last + 1, m.first - 1
        if (nxt < len(tokens) and tokens[nxt].key == "state") or (prv >= 0 and tokens[prv].key in _STATE_BEFORE) \
                or (prv >= 1 and tokens[prv].key == "of" and tokens[prv - 1].key == "state"):
            return states
        namesake = [c for c in candidates if c.feature == "city" and c.population >= 1_000_000 and any(
            c.country_code == s.country_code and (c.admin1 == s.admin1 if s.admin1 else
                                                  distance_km(c.lat, c.lon, s.lat, s.lon) < _DIVISION_REACH_KM)
            for s in states)]
        return [c for c in candidates if c.feature != "admin1"] if namesake else candidates

    def _bare_counties(self, text: str, tokens: list[Token], blocked: list[tuple[int, int]],
                       toponyms: list[_Toponym]) -> list[_Toponym]:
        """A county's name without its designator, where the text vouches for it: the text also names
        "Douglas County" (then "Douglas" is that county, unless a city of _BIG_CITY people has the
        name or "Douglas, Minn." says it is a town), or lists names before "counties" ("Clay and
        Wilkin counties", "Otter Tail/Grant counties")."""
        named: dict[str, list[PlaceRecord]] = {}  # bare key -> the counties the text names in full
        full_key: dict[str, str] = {}  # bare key -> the full name's key: one name, so no mutual support
        for t in toponyms:
            if t.match.last > t.match.first and t.key.endswith(_COUNTY_ENDINGS):
                for c in t.candidates:
                    if c.feature == "admin2":
                        named.setdefault(t.key.rsplit(" ", 1)[0], []).append(c)
                        full_key.setdefault(t.key.rsplit(" ", 1)[0], t.key)
        plural = [i for i, tok in enumerate(tokens) if tok.key in _COUNTY_PLURALS and i > 0] \
            if _COUNTY_PLURAL_HINT.search(text) else []
        if not named and not plural:
            return toponyms
        found = self._county_names.find(text, tokens, blocked)
        if not found:
            return toponyms
        ending = {m.last: m for m in found}
        listed: set[int] = set()  # first tokens of the names listed before "counties"
        for k in plural:
            m = ending.get(k - 1)
            if m is None or text[m.end:tokens[k].start].strip():
                continue
            while m is not None:
                listed.add(m.first)
                j = m.first - 1
                if j >= 0 and tokens[j].key in ("and", "or"):
                    j -= 1
                prev = ending.get(j)
                if prev is None or text[prev.end:m.start].replace(" and ", " ").replace(" or ", " ").strip() \
                        not in ("", ",", "/", "&"):
                    break
                m = prev
        taken = Spans((t.match.start, t.match.end) for t in toponyms if any(c.feature == "admin2" for c in t.candidates))
        by_start = {t.match.start: t for t in toponyms}
        added: list[_Toponym] = []
        for m in found:
            key = " ".join(tok.key for tok in tokens[m.first:m.last + 1])
            if taken.overlaps(m.start, m.end):
                continue  # the name inside "Douglas County"
            if m.first in listed:
                counties = list(m.values)
            elif key in named:
                counties = [c for c in m.values if c in named[key]]
                nxt, prv = m.last + 1, m.first - 1
                if nxt < len(tokens) and tokens[nxt].capitalised and _joined_space(text, tokens[m.last], tokens[nxt]):
                    continue  # "Douglas Smith"
                if prv >= 0 and tokens[prv].capitalised and not tokens[m.first].sentence_start \
                        and _joined_space(text, tokens[prv], tokens[m.first]):
                    continue  # "Kirk Douglas"
                other = by_start.get(m.start)
                if other is not None and (other.within or any(
                        c.feature != "city" or c.population >= _BIG_CITY for c in other.candidates)):
                    continue  # "Douglas, Minn.", or a big city's name ("Dallas" beside "Dallas County")
            else:
                continue
            added.append(_Toponym(m, full_key.get(key, key), sorted(counties, key=self._prior, reverse=True), []))
        if not added:
            return toponyms
        spans = Spans((t.match.start, t.match.end) for t in added)
        kept = [t for t in toponyms if not spans.overlaps(t.match.start, t.match.end)]
        return sorted(kept + added, key=lambda t: t.match.start)

    def _name_words(self, text: str, tokens: list[Token], index_of: dict[int, NameMatch],
                    ordinary: frozenset[str] = frozenset()) -> set[str]:
        # Last words of capitalised runs that are not places ("Jane Campbell"): in this text, that
        # word alone is a surname, not the town of the same name.
        words: set[str] = set()
        inside = {i for m in index_of.values() for i in range(m.first, m.last + 1)}
        for i in range(1, len(tokens)):
            prev, tok = tokens[i - 1], tokens[i]
            if not (tok.capitalised and prev.capitalised and not tok.upper) or i - 1 in inside \
                    or (i in inside and i not in index_of) or (i in index_of and index_of[i].last > i):
                continue
            if text[prev.end:tok.start] not in (" ", "\u00a0"):
                continue
            if prev.key in self._stop.not_names and prev.key not in self._stop.person_titles:
                continue
            if prev.key in ordinary:
                continue  # a German noun or a sentence's first word before a name: no surname after it
            if tok.key not in self._stop.place_words and not (i + 1 < len(tokens) and tokens[i + 1].capitalised
                                                             and _joined_space(text, tok, tokens[i + 1])):
                words.add(tok.key)
        return words

    def _own_name(self, key: str, rec: PlaceRecord, upper: bool) -> bool:
        """`key` is the place's own name, a shortening of it ("Quebec City" for Québec, sharing a
        word) or an abbreviation written in capitals ("D.C."), not an unrelated alternate name."""
        own = self._canonical[rec.id]
        return key in own or upper or any(w in n.split() for n in own for w in key.split())

    def _part_of_other_name(self, text: str, tokens: list[Token], m: NameMatch, key: str, candidates: Sequence[PlaceRecord],
                            index_of: dict[int, NameMatch], name_words: set[str],
                            ordinary: frozenset[str] = frozenset()) -> bool:
        """The match is a piece of a longer name: a person ("Vladimir Putin"), a river, a county.
        `ordinary`: words of the text's language that are no name's part (German nouns, function words)."""
        nxt, prv = m.last + 1, m.first - 1
        after = tokens[nxt] if nxt < len(tokens) and _joined_space(text, tokens[m.last], tokens[nxt]) else None
        before = tokens[prv] if prv >= 0 and _joined_space(text, tokens[prv], tokens[m.first]) else None
        if ordinary:
            after = None if after is not None and after.key in ordinary else after
            before = None if before is not None and before.key in ordinary else before
        # "Red River", "Tarrant County", "Lake Vermont": another kind of place this table does not hold.
        if (after and after.key in self._stop.place_words) or (before and before.key in self._stop.place_words):
            return True
        if any(c.feature != "city" for c in candidates):
            return False
        # "President Lincoln", "Mayor Jackson": a title before a one-word name, whatever the town's size.
        if m.first == m.last and before is not None and before.key in self._titles:
            return True
        # Only a city that bears the name as its own (or an abbreviation or a shortening of it) makes
        # the name a big city's: a name is no big city's for being an old, colonial-era name of one abroad.
        biggest = max((c.population for c in candidates if self._own_name(key, c, tokens[m.first].upper)), default=0)
        if m.first == m.last and tokens[m.first].key in name_words and biggest < _BIG_CITY:
            return True
        if m.first == m.last and after is not None and self._before_person_word(text, tokens, nxt):
            return True
        if biggest >= _BIG_CITY:
            return False
        # "Islamic Republic", "Jane Smith": after another capitalised word.
        if before and before.capitalised and prv not in index_of and not before.sentence_start:
            return True
        # "Vladimir Putin", "George W. Bush": before another capitalised word or an initial.
        return bool(after and after.capitalised and nxt not in index_of and after.key not in self._stop.not_names
                    and (not after.upper or len(after.key) == 1))

    @staticmethod
    def _before_person_word(text: str, tokens: list[Token], i: int) -> bool:
        """Token i is an "administration"-like word, or "and" and another name before one ("the
        Fairfax and Harlow administrations")."""
        if not tokens[i].capitalised and tokens[i].key in _PERSON_AFTER:
            return True
        if tokens[i].key != "and":
            return False
        j = i + 1
        while j < len(tokens) and j <= i + 3 and tokens[j].capitalised and _joined_space(text, tokens[j - 1], tokens[j]):
            j += 1
        return j > i + 1 and j < len(tokens) and not tokens[j].capitalised and tokens[j].key in _PERSON_AFTER \
            and _joined_space(text, tokens[j - 1], tokens[j])

    def _container(self, text: str, tokens: list[Token], m: NameMatch,
                   index_of: dict[int, NameMatch]) -> list[PlaceRecord]:
        # "Moscow, Idaho" / "Alexandria, La." / "Minsk, Belarus": the place after a comma contains this one.
        nxt = m.last + 1
        if nxt >= len(tokens) or text[tokens[m.last].end:tokens[nxt].start].strip() != ",":
            return []
        after = tokens[nxt]
        if nxt in index_of:
            return [r for r in index_of[nxt].values if r.feature in ("admin1", "country")]
        raw = text[after.start:after.end]
        # The tokenizer leaves the dot out of a longer abbreviation ("Calif."): look one character on.
        dotted = "." in raw or text[after.end:after.end + 1] == "."
        code = self._states.get(after.key) if dotted else (raw if len(raw) == 2 and raw.isupper() else None)
        state = self._admin1.get(("US", code)) if code else None
        return [state] if state else []

    # ------------------------------------------------------------------ disambiguation

    def _ranked(self, key: str, values: tuple[PlaceRecord, ...]) -> list[PlaceRecord]:
        """The best _MAX_CANDIDATES of a name's places by prior (a fresh list: disambiguation narrows it)."""
        ranked = self._ranked_by_key.get(key)
        if ranked is None or ranked[0] != values:
            ranked = values, sorted(values, key=self._prior, reverse=True)[:_MAX_CANDIDATES]
            self._ranked_by_key[key] = ranked
        return list(ranked[1])

    def _prior(self, rec: PlaceRecord) -> float:
        prior = self._priors.get(rec.id)
        if prior is None:
            prior = self._priors[rec.id] = self._compute_prior(rec)
        return prior

    def _compute_prior(self, rec: PlaceRecord) -> float:
        prior = _FEATURE_PRIOR.get(rec.feature, 0.0) + math.log10(rec.population + 1) / (
            1.0 if rec.feature == "city" else 10.0)
        if rec.feature == "admin1" and rec.country_code == "US":
            prior += 0.5  # US states are named far more often than same-named provinces elsewhere
        if rec.capital:
            prior += _CAPITAL_BONUS
        return prior

    @staticmethod
    def _inside(rec: PlaceRecord, container: PlaceRecord) -> bool:
        if container.feature == "country":
            return rec.country_code == container.country_code and rec.id != container.id
        if container.feature == "admin1":
            if rec.country_code != container.country_code or rec.id == container.id:
                return False
            if container.admin1:
                return rec.admin1 == container.admin1
            # Divisions outside the US carry no GeoNames code here: a place of that country within
            # reach of the division's point ("London, Ontario", "Victoria, B.C.") is taken as inside.
            return distance_km(rec.lat, rec.lon, container.lat, container.lon) < _DIVISION_REACH_KM
        return False

    def _disambiguate(self, toponyms: list[_Toponym]) -> None:
        choices = _Choices()
        for t in toponyms:
            inside = [c for c in t.candidates if any(self._inside(c, w) for w in t.within)]
            if inside:
                t.candidates = inside
            t.choice = t.candidates[0] if t.candidates else None
            if t.choice is not None:
                choices.add(t.key, t.choice)
        # Toponyms with the same key and candidates get the same best candidate while the other
        # keys' choices stay the same: (key, candidate ids) -> (others_changes, index of the best).
        best_of: dict[tuple[str, tuple[str, ...]], tuple[int, int]] = {}
        candidate_ids = [tuple(c.id for c in t.candidates) for t in toponyms]
        for _ in range(3):
            changed = False
            for t, ids in zip(toponyms, candidate_ids):
                stamp = choices.others_changes(t.key)
                known = best_of.get((t.key, ids))
                if known is None or known[0] != stamp:
                    scores = [self._score(c, t.key, choices) for c in t.candidates]
                    known = stamp, scores.index(max(scores))  # the first best, as max() picks
                    best_of[(t.key, ids)] = known
                best = t.candidates[known[1]]
                if best is not t.choice:
                    if t.choice is not None:
                        choices.remove(t.key, t.choice)
                    choices.add(t.key, best)
                    t.choice, changed = best, True
            if not changed:
                break
        agrees: dict[tuple[str, str], bool] = {}  # the choices are final now
        for t in toponyms:
            if t.choice is not None and not t.within and (t.key, t.choice.id) not in agrees:
                agrees[(t.key, t.choice.id)] = self._agrees(t.choice, t.key, choices)
            t.supported = t.choice is not None and (bool(t.within) or agrees[(t.key, t.choice.id)])
        # Small one-word towns with nothing else in the text pointing at them are most often a
        # surname or an ordinary word ("Warden", "Research"): drop them.
        toponyms[:] = [t for t in toponyms if t.choice is not None and (
            t.supported or t.choice.feature != "city" or t.match.first != t.match.last
            or max(c.population for c in t.candidates) >= _SMALL_TOWN)]

    @staticmethod
    def _agrees(rec: PlaceRecord, key: str, choices: _Choices) -> bool:
        # Another name of the text chose the state `rec` lies in, or a city near it.
        if rec.admin1 is not None and any(
                i != rec.id for i in choices.other_divisions(key, rec.country_code, rec.admin1)):
            return True
        return rec.feature == "city" and any(
            p.feature in ("city", "admin2") and distance_km(rec.lat, rec.lon, p.lat, p.lon) < _NEAR_KM
            for p in choices.other_points(key, rec.lat))

    def _score(self, rec: PlaceRecord, key: str, choices: _Choices) -> float:
        score = self._prior(rec)
        if key in self._canonical.get(rec.id, ()):
            score += 1.0  # the place's own name rather than one of its alternate names
        if rec.country_code and choices.other_country(key, rec.country_code):
            score += 3.0
        if rec.admin1 and choices.other_state(key, (rec.country_code or "", rec.admin1)):
            # A state holding the text's towns, or a town in a state (or county of it) the text names:
            # strong; a town in the state of another town only: weaker ("New York ... Boston" is no
            # Boston, N.Y.).
            score += 3.0 if rec.feature != "city" or choices.other_named_state(
                key, (rec.country_code or "", rec.admin1)) else _TOWN_STATE_BONUS
        if rec.feature == "city" and any(abs(rec.lat - p.lat) < 1.5 and p.id != rec.id
                                         and distance_km(rec.lat, rec.lon, p.lat, p.lon) < _NEAR_KM
                                         for p in choices.other_points(key, rec.lat)):
            score += 2.0
        return score

    # ------------------------------------------------------------------ output

    def _result(self, text: str, toponyms: list[_Toponym], streets: Sequence[tuple[int, int]] = ()) -> PlaceResult:
        # A demonym resolved to its country is a nationality, apart from the place's name mentions: a
        # country named only so is no place of the text (nor its focus).
        grouped: dict[str, tuple[PlaceRecord, list[Mention], list[Mention]]] = {}  # names, demonyms
        for t in toponyms:
            if t.choice is None:
                continue
            _, names, demonyms = grouped.setdefault(t.choice.id, (t.choice, [], []))
            nationality = t.key in self._demonyms and t.choice.feature == "country"
            (demonyms if nationality else names).append(Mention(t.match.start, t.match.end,
                                                                text[t.match.start:t.match.end]))
        places: list[Place] = []
        candidates: list[tuple[Place, list[Mention]]] = []
        nationalities: list[Nationality] = []
        for rec, names, demonyms in grouped.values():
            if names:
                place = Place(id=rec.id, geonameid=rec.geonameid, name=rec.name, country_code=rec.country_code,
                              admin1=rec.admin1, lat=rec.lat, lon=rec.lon, feature=rec.feature,
                              mentions=tuple(names))
                places.append(place)
                candidates.append((place, demonyms))
            if demonyms:
                nationalities.append(Nationality(id=rec.id, name=rec.name, country_code=rec.country_code,
                                                 lat=rec.lat, lon=rec.lon, mentions=tuple(demonyms)))
        focus = self._focus(text, candidates)
        if streets:
            places += self._street_places(text, places, streets)
        places.sort(key=lambda p: p.mentions[0].start)
        nationalities.sort(key=lambda n: n.mentions[0].start)
        return PlaceResult(places=tuple(places), focus=focus, nationalities=tuple(nationalities))

    @staticmethod
    def _street_places(text: str, places: list[Place], streets: Sequence[tuple[int, int]]) -> list[Place]:
        # A street lies in the town (else the county) the text names most: the table has no streets,
        # so its point is that town's; with no town or county in the text it is left out.
        local = [p for p in places if p.feature in ("city", "admin2")]
        if not local:
            return []
        town = max(local, key=lambda p: (p.feature == "city", len(p.mentions), -p.mentions[0].start))
        grouped: dict[str, list[Mention]] = {}
        for start, end in streets:
            name = " ".join(text[start:end].split())
            grouped.setdefault(name, []).append(Mention(start, end, text[start:end]))
        return [Place(id=f"nw:street:{slug(name)}@{town.id}", geonameid=None, name=name,
                      country_code=town.country_code, admin1=town.admin1, lat=town.lat, lon=town.lon,
                      feature="street", mentions=tuple(mentions)) for name, mentions in grouped.items()]

    @staticmethod
    def _focus(text: str, candidates: list[tuple[Place, list[Mention]]]) -> Place | None:
        # Most mentioned, a head start for places named in the opening lines, the more specific on a tie.
        # A country's demonyms count for it as mentions when its name is there too ("Russia ... Russian
        # officials"): the text is about it; one named only by demonyms is no candidate.
        if not candidates:
            return None
        lead = min(len(text), 300)

        def weight(candidate: tuple[Place, list[Mention]]) -> tuple[float, int]:
            p, demonyms = candidate
            early = 0.5 if min([p.mentions[0].start, *(m.start for m in demonyms)]) < lead else 0.0
            return len(p.mentions) + len(demonyms) + early, _SPECIFICITY.get(p.feature, 0)

        return max(candidates, key=weight)[0]
