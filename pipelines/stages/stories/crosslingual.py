"""Cross-lingual stories: language-independent evidence that reports in two languages tell one event.

The story scorer (:mod:`pipelines.stages.stories.clustering`) compares words, so an English and a
German report of one storm share almost nothing it can see. Every event with a known language
also gets a :class:`CrossEvidence` (pure functions here), and every story folds its members' into a
*profile* (``StoryState.lingual``): what any language would write the same way.

* **places**: specific place ids (cities, first-level divisions, seas, regions; GeoNames ids or
  ``nw:...``), and a city matches the first-level division that contains it, at half weight
  ("Memel" resolves to Klaipėda city, "Klaipeda" to Klaipėda County): same country and the same
  GeoNames admin1 code where the division has one (US states), else the city within
  :data:`DIVISION_KM` of the division's centre (the divisions from ``countrystatecity`` carry no
  GeoNames admin1 code; a centre is the best containment test the table allows). A shared country
  is *not* place evidence (``country_only`` says it is all the pair shares);
* **entities**: canonical entity ids (watchlist ids are the same in every language);
* **names**: capitalised, accent-folded words of the body that are not at a sentence start and are
  rare in English ("Yvette", "Rügen", "Albers"), the proper names a translation keeps;
* **numbers** in a form that does not depend on the language's separators ("200 000", "200,000" and
  "200.000" are 200000; "6,8" and "6.8" are 6.8; years are left out), and whether both sides have
  numbers and none agree;
* **weekdays** named in en/fr/de/es/it/pt/nl ("mardi", "Dienstagmorgen", "Tuesday" are day 1);
* **time** between the event and the story's span.

:func:`cross_probability` combines them with a logistic regression whose coefficients
(pipelines/data/crosslingual_scorer.json) bench/train_crosslingual_scorer.py fits on the generated
training stream (bench/story_streams.py ``training_stream``), with the text features withheld: the
same features computed on English pairs, never on the multilingual fixtures it is measured on. It is
used only when the story has members in another language than the event's (the event's probability
is then the higher of the two scorers'). Whatever the weights say, a pair scores 0 when it shares a
country and nothing specific (no place below country level, no entity, no rare name), or fewer
than :data:`MIN_SHARED` specific things in all (one city named in both is not one event).

Novelty stays per language: sentences are compared as text, so a report is only ever "repeated"
against reports in its own language; the first report of a story in a new language (a translation
or a foreign outlet's copy) counts as new only in the sentences that carry a number the story has
not had yet (:func:`translation_novelty`). See docs/stories.md.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from core.settings import StorySettings
from pipelines.stages.stories.prior import doc_freq

_DATA = Path(__file__).resolve().parents[2] / "data"
_UNSEEN_DOC_FREQ = StorySettings().unseen_doc_freq  # the prior of a word the table lacks

#: Weekday names (lower case, Monday first) per language; a word that starts with one counts
#: ("Dienstagmorgen", "mardi-soir").
WEEKDAYS: Mapping[str, tuple[str, ...]] = {
    "en": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "de": ("montag", "dienstag", "mittwoch", "donnerstag", "freitag", "samstag", "sonntag"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "it": ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"),
    "pt": ("segunda-feira", "terça-feira", "quarta-feira", "quinta-feira", "sexta-feira", "sábado", "domingo"),
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
}
_WEEKDAY_INDEX = {n: i for names in WEEKDAYS.values() for i, n in enumerate(names)}
_WEEKDAY_HEADS = {n[:4] for n in _WEEKDAY_INDEX}
_WEEKDAY_LENGTHS = sorted({len(n) for n in _WEEKDAY_INDEX}, reverse=True)
_LOWER_WORD_RE = re.compile(r"[^\W\d_][^\W\d_-]*(?:-feira)?")

# A number: digit groups of three after a separator (thousands: "200 000", "200,000", "200.000"),
# or a plain number with an optional decimal part ("6,8", "6.8", "148").
# (As r"(?<![\w.,])(\d{1,3}(?:[ \u00a0\u202f.,]\d{3})+|\d+(?:[.,]\d+)?)(?![\d])", opening with its first
# digit so that the regex engine skips to digits in C: see clustering._NUMBER_RE.)
_NUM_RE = re.compile(r"(\d(?<![\w.,]\d)(?:\d{0,2}(?:[ \u00a0\u202f.,]\d{3})+|\d*(?:[.,]\d+)?))(?!\d)")
_WORD_RE = re.compile(r"[^\W\d_][^\W\d_'’-]*")
_OPENERS = ".!?:»«\"“”'‘’(-–—"
# A word as _WORD_RE finds it (a run of letters) that does not open with a-z: the only ones that can
# be capitalised, found without looking at every lower-case word. (As r"(?<![^\W\d_])[^\W\d_a-z][^\W\d_]*",
# the test of the character before made after the first letter: see clustering._NUMBER_RE.)
_NAME_START_RE = re.compile(r"[^\W\d_a-z](?<![^\W\d_][^\W\d_a-z])[^\W\d_]*")
# What str.splitlines() splits at (rare_names looks at a word's line)
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
#: A city this close to a division's centre (same country) counts as inside it (see module doc).
DIVISION_KM = 120.0
#: A word is a "rare name" when its English prior document frequency is below this.
NAME_MAX_DOC_FREQ = 0.002
_PLACE_PREFIXES = ("geonames:", "nw:")

CROSS_FEATURES = ("places", "entities", "names", "numbers", "numbers_differ", "weekday", "country_only",
                  "breadth", "log_gap_h")
#: How many shared specific things (places, entities, rare names, numbers) a pair needs at least.
MIN_SHARED = 2

# Caps on a story's profile (each list keeps its first entries; stories are hours to days long).
_MAX_PROFILE = 64


@functools.lru_cache(maxsize=1 << 15)
def _fold(word: str) -> str:
    """Lower case without accents: "Rügen" -> "rugen"."""
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


def normalised_numbers(text: str) -> frozenset[str]:
    """Numbers as values, whatever the language's separators: thousands groups joined, a decimal
    comma made a point; years (1900-2099) and single digits left out."""
    out: set[str] = set()
    for m in _NUM_RE.finditer(text):
        raw = m.group(1)
        if re.fullmatch(r"\d{1,3}(?:[ \u00a0\u202f.,]\d{3})+", raw):
            value = re.sub(r"\D", "", raw)
        else:
            value = raw.replace(",", ".")
            if "." in value:
                value = value.rstrip("0").rstrip(".")
        if len(value) < 2 or (len(value) == 4 and value.isdigit() and 1900 <= int(value) <= 2099):
            continue
        out.add(value)
    return frozenset(out)


def weekdays(text: str) -> frozenset[int]:
    """Weekdays the text names (0 = Monday), in any of :data:`WEEKDAYS`' languages."""
    out: set[int] = set()
    for w in _LOWER_WORD_RE.findall(text.lower()):
        if len(w) >= 5 and w[:4] in _WEEKDAY_HEADS:  # cheap test first: most words are no weekday
            for n in _WEEKDAY_LENGTHS:
                if w[:n] in _WEEKDAY_INDEX:
                    out.add(_WEEKDAY_INDEX[w[:n]])
                    break
    return frozenset(out)


def rare_names(text: str, known: Iterable[str] = ()) -> frozenset[str]:
    """Accent-folded capitalised words of at least four letters, not opening a sentence, that are
    rare in English (see module doc) and are no word of ``known`` (the names of the places and
    entities found, which their ids already compare)."""
    skip = {_fold(w) for name in set(known) for w in _WORD_RE.findall(name)}
    out: set[str] = set()
    for m in _NAME_START_RE.finditer(text):  # the words _WORD_RE finds, less those opening in a-z
        w = m.group(0)
        if len(w) < 4 or not w[0].isupper() or w.isupper():
            continue
        j = m.start() - 1  # the line's last character before the word that is not a space
        while j >= 0 and text[j].isspace() and text[j] not in _LINE_BREAKS:
            j -= 1
        if j < 0 or text[j] in _LINE_BREAKS or text[j] in _OPENERS:
            continue  # a sentence's first word is capitalised in every language
        folded = _fold(w)
        if folded not in skip and doc_freq(folded, _UNSEEN_DOC_FREQ) < NAME_MAX_DOC_FREQ:
            out.add(folded)
    return frozenset(out)


Point = tuple[str, str, float, float]  # (country code, GeoNames admin1 code or "", lat, lon)


def _distance_km(a: Point, b: Point) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a[2], a[3], b[2], b[3]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 12742.0 * math.asin(min(1.0, math.sqrt(h)))


def contains(division: Point, city: Point) -> bool:
    """Whether a first-level division contains a city (module doc: code, else distance)."""
    if division[0] != city[0]:
        return False
    if division[1]:
        return division[1] == city[1]
    return _distance_km(division, city) <= DIVISION_KM


@dataclass(frozen=True)
class CrossEvidence:
    """An event's language-independent evidence (see module doc)."""

    language: str
    places: frozenset[str]      # specific place ids (not countries)
    cities: frozenset[Point]    # for containment in divisions
    divisions: frozenset[Point]
    countries: frozenset[str]
    entities: frozenset[str]
    names: frozenset[str]
    numbers: frozenset[str]
    weekdays: frozenset[int]


def cross_evidence(language: str, title: str, text: str, entities: Iterable[Mapping[str, Any]],
                   places: Iterable[Mapping[str, Any]]) -> CrossEvidence:
    """The evidence of one event (``places`` / ``entities`` as the enrichment stage writes them)."""
    places = list(places)
    specific: set[str] = set()
    cities: set[Point] = set()
    divisions: set[Point] = set()
    countries: set[str] = set()
    for p in places:
        pid, feature, cc = p.get("id"), p.get("feature"), p.get("country_code")
        if not pid:
            continue
        if feature in ("country", "continent"):
            if cc:
                countries.add(str(cc))
            continue
        specific.add(str(pid))
        if cc:
            countries.add(str(cc))
            if feature in ("city", "admin1") and p.get("lat") is not None and p.get("lon") is not None:
                point = (str(cc), str(p.get("admin1") or ""), round(float(p["lat"]), 2), round(float(p["lon"]), 2))
                (cities if feature == "city" else divisions).add(point)
    entities = list(entities)
    ents = {str(e["id"]) for e in entities if e.get("id") and not str(e["id"]).startswith(_PLACE_PREFIXES)}
    known = [str(m.get("text") or "") for group in (places, entities) for x in group for m in x.get("mentions") or ()]
    known += [str(x.get("name") or "") for group in (places, entities) for x in group]
    return CrossEvidence(language, frozenset(specific), frozenset(cities), frozenset(divisions), frozenset(countries),
                         frozenset(ents), rare_names(text, known), normalised_numbers(f"{title}\n{text}"),
                         weekdays(f"{title}\n{text}"))


def fold_profile(profile: dict[str, Any], ev: CrossEvidence) -> None:
    """Add one member's evidence to a story's profile (``StoryState.lingual``), within caps."""
    langs = profile.setdefault("langs", {})
    langs[ev.language] = langs.get(ev.language, 0) + 1
    for key, values in (("places", ev.places), ("cities", ev.cities), ("divisions", ev.divisions),
                        ("countries", ev.countries),
                        ("entities", ev.entities), ("names", ev.names), ("numbers", ev.numbers),
                        ("weekdays", ev.weekdays)):
        have = profile.setdefault(key, [])
        seen = {tuple(v) if isinstance(v, list) else v for v in have}
        for v in sorted(values):
            if len(have) >= _MAX_PROFILE:
                break
            if v not in seen:
                have.append(list(v) if isinstance(v, tuple) else v)


def merge_profiles(profile: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Fold another story's profile into ``profile`` (a late merge of two stories), within caps."""
    langs = profile.setdefault("langs", {})
    for lang, n in other.get("langs", {}).items():
        langs[lang] = langs.get(lang, 0) + n
    for key, values in other.items():
        if key == "langs":
            continue
        have = profile.setdefault(key, [])
        seen = {tuple(v) if isinstance(v, list) else v for v in have}
        for v in values:
            if len(have) >= _MAX_PROFILE:
                break
            if (tuple(v) if isinstance(v, list) else v) not in seen:
                have.append(v)


def other_languages(profile: Mapping[str, Any], language: str) -> bool:
    """Whether the story has members in a language other than ``language``."""
    return any(lang != language for lang in profile.get("langs", {}))


def cross_features(ev: CrossEvidence, profile: Mapping[str, Any], gap_s: float) -> tuple[float, ...]:
    """The cross scorer's inputs (:data:`CROSS_FEATURES`) for an event against a story's profile."""
    exact = len(ev.places & set(profile.get("places", ())))
    cities = [tuple(c) for c in profile.get("cities", ())]
    divisions = [tuple(d) for d in profile.get("divisions", ())]
    # Each division counts once, however many of the other side's cities it contains.
    inside = (sum(any(contains(d, c) for c in cities) for d in ev.divisions)  # type: ignore[arg-type]
              + sum(any(contains(d, c) for c in ev.cities) for d in divisions))  # type: ignore[arg-type]
    place = min(1.0, (exact + 0.5 * inside) / 2.0)
    n_ents = len(ev.entities & set(profile.get("entities", ())))
    n_names = len(ev.names & set(profile.get("names", ())))
    ents, names = min(1.0, n_ents / 2.0), min(1.0, n_names / 3.0)
    nums = ev.numbers
    story_nums = set(profile.get("numbers", ()))
    shared = len(nums & story_nums)
    numbers = shared / min(len(nums), 6) if nums else 0.0
    differ = float(bool(nums) and bool(story_nums) and not shared)
    day = float(bool(ev.weekdays & set(profile.get("weekdays", ()))))
    country_only = float(bool(ev.countries & set(profile.get("countries", ()))) and not place and not ents
                         and not names)
    breadth = min(1.0, (exact + inside + n_ents + n_names + shared) / 4.0)
    return (place, ents, names, numbers, differ, day, country_only, breadth, math.log1p(gap_s / 3600.0))


@dataclass(frozen=True)
class CrossScorer:
    """Logistic regression over :data:`CROSS_FEATURES` (pipelines/data/crosslingual_scorer.json)."""

    weights: tuple[float, ...]
    bias: float
    threshold: float = 0.5  # below it the probability counts as 0 (see the training script)

    def probability(self, x: Sequence[float]) -> float:
        """The join probability, 0 below ``threshold``, and 0 whenever the pair shares no place below
        country level, no entity and no rare name (a country alone never joins two languages) or
        fewer than :data:`MIN_SHARED` specific things (one city alone does not either)."""
        if not (x[0] or x[1] or x[2]) or x[7] < MIN_SHARED / 4.0:
            return 0.0
        z = self.bias + sum(w * v for w, v in zip(self.weights, x, strict=True))
        p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
        return p if p >= self.threshold else 0.0


@functools.cache
def default_cross_scorer() -> CrossScorer:
    """The shipped coefficients."""
    raw = orjson.loads((_DATA / "crosslingual_scorer.json").read_bytes())
    if tuple(raw["features"]) != CROSS_FEATURES:
        raise ValueError(f"crosslingual_scorer.json: features {raw['features']} != {CROSS_FEATURES}")
    return CrossScorer(tuple(raw["weights"]), float(raw["bias"]), float(raw["join_threshold"]))


def cross_probability(ev: CrossEvidence | None, profile: Mapping[str, Any], gap_s: float,
                      scorer: CrossScorer | None = None) -> float:
    """The join probability from language-independent evidence, or 0 when it does not apply (the
    event's language is unknown, or the story has no member in another language)."""
    if ev is None or not ev.language or not other_languages(profile, ev.language):
        return 0.0
    return (scorer or default_cross_scorer()).probability(cross_features(ev, profile, gap_s))


def first_in_language(profile: Mapping[str, Any], language: str) -> bool:
    """Whether a story (before the event joins) has members, none of them in ``language``."""
    langs = profile.get("langs", {})
    return bool(langs) and bool(language) and language not in langs


def translation_novelty(sentences: Sequence[str], profile: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(new, repeated) sentences of the first report of a story in a new language: a sentence is new
    only when it carries a number the story has not had (its other sentences retell the story)."""
    known = set(profile.get("numbers", ()))
    new: list[str] = []
    old: list[str] = []
    for s in sentences:
        (new if normalised_numbers(s) - known else old).append(s)
    return new, old
