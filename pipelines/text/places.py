"""Toponyms resolved to GeoNames places (or curated seas and regions), and a document's focus place.

Recognition is a gazetteer lookup of capitalised names (GeoNames cities of 1,000+ people, countries,
first-level divisions, continents, plus config/gazetteer/places.yaml). Resolution picks, for each name,
the candidate with the best population prior plus context from the rest of the text: a "Town, State"
or "Town, Country" pattern, countries and states the text mentions, and nearness to its other places
(the usual CLAVIN-style heuristics). Names inside a person or organisation ("Vladimir" in "Vladimir
Putin", "Kremlin") are not places.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.text.entities import Entity, Mention
from pipelines.text.gazetteer import (
    DEFAULT_GAZETTEER_DIR,
    NameMatch,
    NameMatcher,
    PlaceRecord,
    Token,
    load_places,
    load_state_abbreviations,
    load_stoplist,
    name_key,
    tokenize,
)

# Prior for each kind of place before population counts: a country name is nearly always the
# country, a state name usually the state, and a city name depends on how big the city is.
_FEATURE_PRIOR = {"country": 9.0, "continent": 8.5, "admin1": 7.0, "region": 6.0, "sea": 6.0, "city": 0.0}
_SPECIFICITY = {"city": 3, "admin1": 2, "region": 1, "sea": 1, "country": 0, "continent": -1}
_MAX_CANDIDATES = 40
_NEAR_KM = 160.0


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
    feature: str  # "country" | "admin1" | "city" | "continent" | "region" | "sea"
    mentions: tuple[Mention, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form for events."""
        return {"id": self.id, "geonameid": self.geonameid, "name": self.name,
                "country_code": self.country_code, "admin1": self.admin1, "lat": self.lat, "lon": self.lon,
                "feature": self.feature, "mentions": [m.to_dict() for m in self.mentions]}


@dataclass(frozen=True)
class PlaceResult:
    """All places of one text and the one it is mostly about."""

    places: tuple[Place, ...]
    focus: Place | None

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form for events."""
        return {"places": [p.to_dict() for p in self.places],
                "focus": self.focus.id if self.focus else None}


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


class PlaceResolver:
    """Finds and resolves toponyms; load once per worker (the constructor reads the place table)."""

    def __init__(self, gazetteer_dir: Path | None = None) -> None:
        gazetteer_dir = gazetteer_dir or DEFAULT_GAZETTEER_DIR
        self._stop = load_stoplist(gazetteer_dir)
        self._states = load_state_abbreviations(gazetteer_dir)
        self._matcher = NameMatcher()
        self._canonical: dict[str, set[str]] = {}  # record id -> keys of its main name
        records = load_places(gazetteer_dir)
        self._admin1: dict[tuple[str, str], PlaceRecord] = {}
        for rec in records:
            for n in rec.names:
                self._matcher.add(n, rec)
            self._canonical[rec.id] = {name_key(rec.name), name_key(rec.names[0])}
            if rec.feature == "admin1" and rec.country_code and rec.admin1:
                self._admin1[(rec.country_code, rec.admin1)] = rec
        self._countries = {r.country_code: r for r in records if r.feature == "country" and r.country_code}

    # ------------------------------------------------------------------ public API

    def resolve(self, text: str, language: str, entities: Sequence[Entity] = ()) -> PlaceResult:
        """Places named in `text`; `entities` (from EntityTagger) keep people and organisations out."""
        del language  # names are matched in every language; the table carries translated country names
        tokens = tokenize(text)
        blocked = [(m.start, m.end) for e in entities for m in e.mentions]
        toponyms = self._recognise(text, tokens, blocked)
        self._disambiguate(toponyms)
        return self._result(text, toponyms)

    # ------------------------------------------------------------------ recognition

    def _recognise(self, text: str, tokens: list[Token], blocked: list[tuple[int, int]]) -> list[_Toponym]:
        matches = self._matcher.find(text, tokens, blocked)
        index_of = {m.first: m for m in matches}
        toponyms: list[_Toponym] = []
        for m in matches:
            key = " ".join(t.key for t in tokens[m.first:m.last + 1])
            if key in self._stop.not_places:
                continue
            candidates: list[PlaceRecord] = list(m.values)
            if self._looks_like_person(text, tokens, m, candidates, index_of):
                continue
            within = self._container(text, tokens, m, index_of)
            candidates.sort(key=self._prior, reverse=True)
            toponyms.append(_Toponym(m, key, candidates[:_MAX_CANDIDATES], within))
        return toponyms

    def _looks_like_person(self, text: str, tokens: list[Token], m: NameMatch, candidates: list[PlaceRecord],
                           index_of: dict[int, NameMatch]) -> bool:
        if m.first != m.last or any(c.feature != "city" for c in candidates):
            return False
        first = tokens[m.first]
        # "President Jackson", "Mr Lincoln": a title before a one-word name.
        if m.first > 0 and tokens[m.first - 1].key in self._stop.person_titles:
            return True
        # "Vladimir Putin", "Jackson Smith": a town name followed by another capitalised word that is
        # neither a place nor a word like "County" is a first name.
        nxt = m.last + 1
        if nxt < len(tokens) and text[tokens[m.last].end:tokens[nxt].start] in (" ", "\u00a0"):
            after = tokens[nxt]
            if after.capitalised and not after.upper and nxt not in index_of \
                    and after.key not in self._stop.place_words and after.key not in self._stop.not_names:
                return True
        # A small town's name opening a sentence is more often an ordinary word.
        return first.sentence_start and max(c.population for c in candidates) < 20_000

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
        code = self._states.get(after.key) if "." in raw else (raw if len(raw) == 2 and raw.isupper() else None)
        state = self._admin1.get(("US", code)) if code else None
        return [state] if state else []

    # ------------------------------------------------------------------ disambiguation

    def _prior(self, rec: PlaceRecord) -> float:
        prior = _FEATURE_PRIOR.get(rec.feature, 0.0) + math.log10(rec.population + 1) / (
            1.0 if rec.feature == "city" else 10.0)
        if rec.feature == "admin1" and rec.country_code == "US":
            prior += 0.5  # US states are named far more often than same-named provinces elsewhere
        return prior

    @staticmethod
    def _inside(rec: PlaceRecord, container: PlaceRecord) -> bool:
        if container.feature == "country":
            return rec.country_code == container.country_code and rec.id != container.id
        if container.feature == "admin1":
            return rec.country_code == container.country_code and rec.admin1 is not None \
                and rec.admin1 == container.admin1 and rec.id != container.id
        return False

    def _disambiguate(self, toponyms: list[_Toponym]) -> None:
        for t in toponyms:
            inside = [c for c in t.candidates if any(self._inside(c, w) for w in t.within)]
            if inside:
                t.candidates = inside
            t.choice = t.candidates[0] if t.candidates else None
        for _ in range(3):
            changed = False
            for t in toponyms:
                others = [o.choice for o in toponyms if o.key != t.key and o.choice is not None]
                countries = Counter(c.country_code for c in others if c.country_code)
                states = Counter((c.country_code, c.admin1) for c in others if c.admin1)
                points = [c for c in others if c.feature in ("city", "admin1")]
                best = max(t.candidates, key=lambda c: self._score(c, t.key, countries, states, points))
                if best is not t.choice:
                    t.choice, changed = best, True
            if not changed:
                break

    def _score(self, rec: PlaceRecord, key: str, countries: Counter[str], states: Counter[tuple[str, str]],
               points: list[PlaceRecord]) -> float:
        score = self._prior(rec)
        if key in self._canonical.get(rec.id, ()):
            score += 1.0  # the place's own name rather than one of its alternate names
        if rec.country_code and countries[rec.country_code]:
            score += 3.0
        if rec.admin1 and states[(rec.country_code or "", rec.admin1)]:
            score += 3.0
        if rec.feature == "city" and any(
                distance_km(rec.lat, rec.lon, p.lat, p.lon) < _NEAR_KM for p in points if p.id != rec.id):
            score += 2.0
        return score

    # ------------------------------------------------------------------ output

    def _result(self, text: str, toponyms: list[_Toponym]) -> PlaceResult:
        grouped: dict[str, tuple[PlaceRecord, list[Mention]]] = {}
        for t in toponyms:
            if t.choice is None:
                continue
            rec, mentions = grouped.setdefault(t.choice.id, (t.choice, []))
            mentions.append(Mention(t.match.start, t.match.end, text[t.match.start:t.match.end]))
        places = [Place(id=rec.id, geonameid=rec.geonameid, name=rec.name, country_code=rec.country_code,
                        admin1=rec.admin1, lat=rec.lat, lon=rec.lon, feature=rec.feature,
                        mentions=tuple(mentions)) for rec, mentions in grouped.values()]
        places.sort(key=lambda p: p.mentions[0].start)
        return PlaceResult(places=tuple(places), focus=self._focus(text, places))

    @staticmethod
    def _focus(text: str, places: list[Place]) -> Place | None:
        # Most mentioned, a head start for places named in the opening lines, the more specific on a tie.
        if not places:
            return None
        lead = min(len(text), 300)

        def weight(p: Place) -> tuple[float, int]:
            early = 0.5 if p.mentions[0].start < lead else 0.0
            return len(p.mentions) + early, _SPECIFICITY.get(p.feature, 0)

        return max(places, key=weight)
