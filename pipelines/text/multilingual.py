"""Per-language tables and rules for places and entities in texts that are not English.

English keeps its own tables (stoplists.yaml, name_rules.yaml) and rules; nothing here runs on
English text. For any other language the places and entities stages read:
- stop words (PyPI `stopwordsiso`) and the most frequent words (PyPI `wordfreq`) of the language,
  from pipelines/data/language_words.tsv.gz: a function word is never a place ("Un" in French is not
  Un, India), and an everyday word ("Nähe", "República") is a small town's name only when the rest of
  the text points at that town;
- names of countries and first-level divisions in the language (PyPI `pycountry`'s ISO 3166
  translations), from pipelines/data/place_names.tsv.gz ("Bavière", "Wallis", "Katalonien"), plus
  curated names of seas and regions and watchlist aliases from config/gazetteer/languages.yaml;
- titles, honorifics and organisation words per language (config/gazetteer/languages.yaml) for
  names nobody listed: "ministre Laurent Nuñez", "Assemblée nationale", "Deutscher Wetterdienst".

Places and entities found this way carry the same ids as in English (GeoNames ids, watchlist ids),
so reports of one event in several languages name the same places and people.

`python -m pipelines.text.multilingual build` regenerates both data files (build-time packages:
extra `multilingual-build`, see pipelines/data/README.md).
"""

from __future__ import annotations

import argparse
import gzip
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pipelines.text.gazetteer import (
    DEFAULT_GAZETTEER_DIR,
    NameMatch,
    Spans,
    Token,
    name_key,
    read_yaml,
    tokenize,
    words_joined,
)
from pipelines.text.prebuilt import cached, path_label

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
LANGUAGE_WORDS_TABLE = DATA_DIR / "language_words.tsv.gz"
PLACE_NAMES_TABLE = DATA_DIR / "place_names.tsv.gz"
LANGUAGES_FILE = "languages.yaml"

#: How many of a language's most frequent words count as everyday words (wordfreq's ranking).
COMMON_WORDS = 5000
#: place_names.tsv.gz rows for texts in any language but English (native names of divisions).
ANY_LANGUAGE = "*"
_ALIASES = {"no": "nb", "nn": "nb", "zh-cn": "zh", "zh-tw": "zh"}


def base_language(code: str | None) -> str:
    """ISO 639-1 base of a language tag: "fr-CA" -> "fr", "no" -> "nb", None -> "und"."""
    code = (code or "und").lower().replace("_", "-")
    code = _ALIASES.get(code, code)
    return _ALIASES.get(code.split("-")[0], code.split("-")[0])


@dataclass(frozen=True)
class LanguageLexicon:
    """Everything the non-English rules read for one language; word sets hold name_key()s."""

    language: str
    stop_words: frozenset[str]
    common_words: frozenset[str]
    calendar: frozenset[str]
    titles: frozenset[str]
    title_suffixes: tuple[str, ...]
    honorifics: frozenset[str]
    org_heads: frozenset[str]
    org_adjectives: frozenset[str]
    org_last_words: frozenset[str]
    org_suffixes: tuple[str, ...]
    connectors: frozenset[str]
    admin_designators: frozenset[str]
    city_designators: frozenset[str]
    elisions: frozenset[str]  # "l", "d", "dell": elided words written onto the next ("l'Allemagne")
    place_names: tuple[tuple[str, str], ...]  # (name, place id)
    entity_aliases: tuple[tuple[str, str], ...]  # (alias, watchlist id)
    #: Words that are never a name on their own: function, everyday, calendar and title words.
    ordinary: frozenset[str] = frozenset()
    #: Words that are never a place: `ordinary` less the everyday words (a big city may be one: "Essen").
    never_places: frozenset[str] = frozenset()

    def is_title(self, key: str) -> bool:
        """A title word, or a compound ending in one ("bundeskanzler", "ministerprasidentin")."""
        return key in self.titles or any(key.endswith(s) and len(key) > len(s) + 2 for s in self.title_suffixes)

    def is_org_compound(self, key: str) -> bool:
        """One word that names an organisation by its ending ("bundesinnenministerium")."""
        return any(key.endswith(s) and len(key) > len(s) + 3 for s in self.org_suffixes)


# --------------------------------------------------------------------------- loading

def _read_table(path: Path) -> Iterator[list[str]]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; it ships with the repository "
                                f"(regenerate it with `python -m pipelines.text.multilingual build`)")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        next(fh, None)  # header
        for line in fh:
            yield line.rstrip("\n").split("\t")


@cache
def _language_words(path: Path) -> dict[str, dict[str, frozenset[str]]]:
    return cached(f"language-words-{path_label(path)}", [path], lambda: _read_language_words(path))


def _read_language_words(path: Path) -> dict[str, dict[str, frozenset[str]]]:
    words: dict[str, dict[str, set[str]]] = {}
    for lang, kind, key in _read_table(path):  # stored as name_key()s: no work per word at start-up
        words.setdefault(lang, {}).setdefault(kind, set()).add(key)
    return {lang: {kind: frozenset(ws) for kind, ws in kinds.items()} for lang, kinds in words.items()}


@cache
def _place_names(path: Path) -> dict[str, tuple[tuple[str, str], ...]]:
    return cached(f"place-names-{path_label(path)}", [path], lambda: _read_place_names(path))


def _read_place_names(path: Path) -> dict[str, tuple[tuple[str, str], ...]]:
    names: dict[str, list[tuple[str, str]]] = {}
    for lang, place_id, name in _read_table(path):
        names.setdefault(lang, []).append((name, place_id))
    return {lang: tuple(v) for lang, v in names.items()}


def load_lexicons(gazetteer_dir: Path = DEFAULT_GAZETTEER_DIR, words_table: Path = LANGUAGE_WORDS_TABLE,
                  names_table: Path = PLACE_NAMES_TABLE,
                  entity_ids: Iterable[str] | None = None) -> dict[str, LanguageLexicon]:
    """A lexicon for every language with stop words or a section in languages.yaml (never "en").
    `entity_ids`: the watchlist's ids, to check that languages.yaml names only existing ones.

    The shipped files' lexicons are built once per process and shared (the entity tagger and the
    place resolver each held a copy, ~40 MB per pipeline job): treat the result as read-only."""
    shipped = (gazetteer_dir.resolve(), words_table, names_table) == (
        DEFAULT_GAZETTEER_DIR.resolve(), LANGUAGE_WORDS_TABLE, PLACE_NAMES_TABLE)
    lexicons = _shipped_lexicons() if shipped else _build_lexicons(gazetteer_dir, words_table, names_table)
    if entity_ids is not None:
        known = set(entity_ids)
        for lang, lexicon in lexicons.items():
            for _, eid in lexicon.entity_aliases:
                if eid not in known:
                    raise ValueError(f"{gazetteer_dir / LANGUAGES_FILE}: '{lang}.entities' names '{eid}', which is "
                                     f"not a watchlist id (people.yaml / organisations.yaml ids look like "
                                     f"person:vladimir-putin)")
    return lexicons


@cache
def _shipped_lexicons() -> dict[str, LanguageLexicon]:
    return _build_lexicons(DEFAULT_GAZETTEER_DIR, LANGUAGE_WORDS_TABLE, PLACE_NAMES_TABLE)


def _build_lexicons(gazetteer_dir: Path, words_table: Path, names_table: Path) -> dict[str, LanguageLexicon]:
    path = gazetteer_dir / LANGUAGES_FILE
    doc = read_yaml(path) if path.exists() else {}
    words = _language_words(words_table)
    names = _place_names(names_table)
    lexicons: dict[str, LanguageLexicon] = {}
    for lang in sorted((set(words) | set(doc) | set(names)) - {"en", ANY_LANGUAGE}):
        raw = doc.get(lang) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: '{lang}' must be a mapping of tables, got {type(raw).__name__}")  # noqa: TRY004

        def keys(field: str, raw: dict[str, Any] = raw, lang: str = lang) -> frozenset[str]:
            value = raw.get(field) or []
            if not isinstance(value, list) or any(not isinstance(w, str) for w in value):
                raise ValueError(f"{path}: '{lang}.{field}' must be a list of words (quote YAML booleans "
                                 f"such as \"No\"), got {value!r}")
            return frozenset(name_key(w) for w in value)

        designators = raw.get("place_designators") or {}
        if not isinstance(designators, dict) or set(designators) - {"admin1", "city"}:
            raise ValueError(f"{path}: '{lang}.place_designators' takes 'admin1' and 'city' lists, got {designators!r}")
        places = [(str(n), str(pid)) for pid, ns in (raw.get("places") or {}).items() for n in ns or ()]
        aliases: list[tuple[str, str]] = []
        for eid, alias_list in (raw.get("entities") or {}).items():
            aliases += [(str(a), str(eid)) for a in alias_list or ()]
        lang_words = words.get(lang, {})
        stop, common = lang_words.get("stop", frozenset()), lang_words.get("common", frozenset())
        calendar, titles, honorifics = keys("calendar"), keys("titles"), keys("honorifics")
        admin = frozenset(name_key(w) for w in designators.get("admin1") or ())
        city = frozenset(name_key(w) for w in designators.get("city") or ())
        lexicons[lang] = LanguageLexicon(
            language=lang, stop_words=stop, common_words=common, calendar=calendar, titles=titles,
            title_suffixes=tuple(sorted(keys("title_suffixes"))), honorifics=honorifics,
            org_heads=keys("org_heads"), org_adjectives=keys("org_adjectives"),
            org_last_words=keys("org_last_words"), org_suffixes=tuple(sorted(keys("org_suffixes"))),
            connectors=keys("connectors"), admin_designators=admin, city_designators=city,
            elisions=keys("elisions"),
            place_names=tuple(names.get(lang, ())) + tuple(names.get(ANY_LANGUAGE, ())) + tuple(places),
            entity_aliases=tuple(aliases),
            ordinary=stop | common | calendar | titles | honorifics | admin | city,
            never_places=stop | calendar | titles | honorifics | admin | city)
    return lexicons


# --------------------------------------------------------------------------- matching names

class LanguageNames:
    """Longest-match lookup of one language's extra names; unlike NameMatcher, a name written with a
    lower-case first word ("mer Baltique", "bande de Gaza") matches as written, in lower case, and with
    `lower_tail` a name of several words may end in a lower-case one ("Union européenne")."""

    def __init__(self, names: Iterable[tuple[str, Any]], lower_tail: bool = False) -> None:
        self._values: dict[str, list[Any]] = {}
        self._lower_start: set[str] = set()  # keys whose first word is written in lower case
        self._acronyms: set[str] = set()  # keys that must be written in capitals ("UE", "ONU")
        self._longest: dict[str, int] = {}
        self._lower_tail = lower_tail
        for name, value in names:
            words = [t.key for t in tokenize(name)]
            if not words:
                continue
            key = " ".join(words)
            bucket = self._values.setdefault(key, [])
            if value not in bucket:
                bucket.append(value)
            if name[:1].islower():
                self._lower_start.add(key)
            letters = name.replace(".", "")
            if letters.isalpha() and letters.isupper() and len(letters) <= 4:
                self._acronyms.add(key)
            self._longest[words[0]] = max(self._longest.get(words[0], 0), len(words))

    def find(self, text: str, tokens: list[Token], blocked: Iterable[tuple[int, int]] = ()) -> list[NameMatch]:
        """Non-overlapping longest matches, left to right; the last word of a match is capitalised."""
        spans = Spans(blocked)
        matches: list[NameMatch] = []
        n, resume = len(tokens), 0
        for i, tok in enumerate(tokens):
            longest = self._longest.get(tok.key) if i >= resume else None
            if not longest:
                continue
            j = i
            while j + 1 < n and j + 1 - i < longest and words_joined(text, tokens[j], tokens[j + 1]):
                j += 1
            for last in range(j, i - 1, -1):
                key = " ".join(t.key for t in tokens[i:last + 1])
                if key not in self._values:
                    continue
                if not tokens[last].capitalised and not (self._lower_tail and last > i and tok.capitalised):
                    continue
                if not tok.capitalised and key not in self._lower_start:
                    continue
                if key in self._acronyms and not all(t.upper for t in tokens[i:last + 1]):
                    continue
                if spans.overlaps(tok.start, tokens[last].end):
                    continue
                matches.append(NameMatch(i, last, tok.start, tokens[last].end, tuple(self._values[key])))
                resume = last + 1
                break
        return matches


def split_elisions(text: str, tokens: list[Token], lex: LanguageLexicon) -> list[Token]:
    """Tokens with an elided article or preposition split off the word it is written onto:
    "l'Allemagne" -> "l'", "Allemagne"; "dell'Ucraina" -> "dell'", "Ucraina"."""
    if not lex.elisions:
        return tokens
    out: list[Token] = []
    for tok in tokens:
        word = text[tok.start:tok.end]
        cut = max(word.find("'"), word.find("’"))
        if cut > 0 and cut + 1 < len(word) and name_key(word[:cut]) in lex.elisions and word[cut + 1].isalpha():
            rest = word[cut + 1:]
            letters = [c for c in rest if c.isalpha()]
            out.append(Token(tok.start, tok.start + cut + 1, name_key(word[:cut + 1]), tok.capitalised, False,
                             tok.sentence_start))
            out.append(Token(tok.start + cut + 1, tok.end, name_key(rest), rest[0].isupper(),
                             all(c.isupper() for c in letters), False))
        else:
            out.append(tok)
    return out


def merge_matches(first: list[NameMatch], second: list[NameMatch]) -> list[NameMatch]:
    """Two non-overlapping match lists as one, in text order."""
    return sorted(first + second, key=lambda m: m.first)


# --------------------------------------------------------------------------- places

def designated_feature(tokens: list[Token], first: int, lex: LanguageLexicon) -> str | None:
    """"admin1" or "city" when the words before token `first` say what kind of place follows
    ("Kanton Wallis", "estado de Oaxaca", "canton du Valais", "ville de Lyon"), else None."""
    i = first - 1
    while i >= 0 and tokens[i].key in lex.connectors and first - i <= 2:
        i -= 1
    if i < 0:
        return None
    key = tokens[i].key
    if key in lex.admin_designators:
        return "admin1"
    if key in lex.city_designators:
        return "city"
    return None


# --------------------------------------------------------------------------- entities

def titled_people(text: str, tokens: list[Token], lex: LanguageLexicon,
                  not_names: frozenset[str]) -> list[tuple[int, int]]:
    """(start, end) of two or three capitalised words right after a title or honorific of the
    language ("ministre Laurent Nuñez", "Ministerpräsidentin Manuela Schwesig", "Sra. Ana Ruiz")."""
    found: list[tuple[int, int]] = []
    for t, title in enumerate(tokens):
        if not (lex.is_title(title.key) or title.key in lex.honorifics):
            continue
        words: list[Token] = []
        i = t + 1
        while i < len(tokens) and len(words) < 3:
            tok = tokens[i]
            if not (tok.capitalised and tok.key[:1].isalpha() and not tok.upper
                    and words_joined(text, tokens[i - 1], tok) and "-" not in text[tokens[i - 1].end:tok.start]):
                break
            if tok.key in not_names or lex.is_title(tok.key):
                break
            words.append(tok)
            i += 1
        if len(words) >= 2:
            found.append((words[0].start, words[-1].end))
    return found


def _name_like(text: str, tok: Token) -> bool:
    """A capitalised word (split_elisions has cut "l'Intérieur" in two)."""
    return tok.capitalised and tok.key[:1].isalpha()


def _connects(text: str, tokens: list[Token], j: int, lex: LanguageLexicon) -> bool:
    """Token j and at most one more connector lead to a capitalised word."""
    for k in (j + 1, j + 2):
        if k >= len(tokens) or not words_joined(text, tokens[k - 1], tokens[k]):
            return False
        if _name_like(text, tokens[k]):
            return True
        if tokens[k].key not in lex.connectors:
            return False
    return False


def acronym_spans(text: str, tokens: list[Token], lex: LanguageLexicon,
                  place_acronyms: frozenset[str]) -> list[tuple[int, int]]:
    """(start, end) of organisations' acronyms: a word of 2-5 capitals amid ordinary text ("SNCF",
    "ÖVP"), not a place's acronym and not a function word written in capitals."""
    found: list[tuple[int, int]] = []
    for i, tok in enumerate(tokens):
        letters = tok.key.replace(" ", "")
        if not tok.upper or not 2 <= len(letters) <= 5 or not letters.isalpha() or tok.key in place_acronyms \
                or tok.key in lex.stop_words:
            continue
        neighbours = [tokens[j] for j in (i - 1, i + 1) if 0 <= j < len(tokens)]
        if any(not t.upper and any(c.islower() for c in text[t.start:t.end]) for t in neighbours):
            found.append((tok.start, tok.end))
    return found


def organisation_spans(text: str, tokens: list[Token], lex: LanguageLexicon, not_names: frozenset[str],
                       place_names: Container[str] = frozenset()) -> list[tuple[int, int]]:
    """(start, end) of organisation names the language's cues point at:
    - a head word and what continues it: lower-case adjectives of the lexicon, connectors before a
      capitalised word, capitalised words ("Assemblée nationale", "Ministère de l'Intérieur",
      "Agencia Estatal de Meteorología", "Deutscher Wetterdienst", "Kantonspolizei Wallis");
    - capitalised words ending in an organisation word or compound ("Deutsche Bahn AG",
      "Fahrgastverband", "Bundesinnenministerium").
    A well-known place after a connector ends the name before it: "Gobierno de Cataluña" is Catalonia's
    government, and the place stays the places stage's (`place_names`: PlaceKeys.well_known)."""
    found: list[tuple[int, int]] = []
    n = len(tokens)
    i = 0
    while i < n:
        tok = tokens[i]
        # A run starts at a capitalised word that is not a function word ("Die", "La") or a month.
        if not _name_like(text, tok) or tok.upper or (tok.key in lex.never_places and tok.key not in lex.org_heads):
            i += 1
            continue
        last = i
        j = i + 1
        while j < n and words_joined(text, tokens[j - 1], tokens[j]):
            t = tokens[j]
            if (t.key in lex.org_adjectives and not t.capitalised) or (
                    _name_like(text, t) and not t.upper and t.key not in lex.never_places):
                last = j
            elif t.key in lex.connectors and _connects(text, tokens, j, lex):
                pass  # connectors count only with a name word after them ("Congreso de los Diputados")
            else:
                break
            j += 1
        for c in range(i + 1, last):
            if tokens[c].key in lex.connectors and " ".join(
                    t.key for t in tokens[c + 1:last + 1] if t.key not in lex.connectors) in place_names:
                last = c - 1
                break
        keys = [t.key for t in tokens[i:last + 1]]
        head = keys[0] in lex.org_heads and last > i
        tail = keys[-1] in lex.org_last_words and last > i
        compound = lex.is_org_compound(keys[-1]) and (last > i or not tok.sentence_start)
        if (head or tail or compound) and " ".join(keys) not in not_names:
            found.append((tok.start, tokens[last].end))
            i = last + 1
            continue
        i += 1
    return found


# --------------------------------------------------------------------------- build (maintainers only)

_STOPWORDS_CODES = {"nb": ("no",)}  # stopwordsiso's code where it is not ISO 639-1's


def _build_words(languages: Iterable[str], common: int) -> Iterator[tuple[str, str, str]]:
    import stopwordsiso  # build-time only
    import wordfreq

    from pipelines.text.gazetteer import load_places

    # Some lists hold names of places ("россия", "москва" in Russian's): a country's name, or a big
    # capital's name in another script than Latin, stays a name.
    names_kept = {name_key(n) for r in load_places() for n in r.names
                  if r.feature == "country" or (r.capital and r.population >= 1_000_000 and not n.isascii())}
    freq_languages = set(wordfreq.available_languages())
    for lang in sorted(set(languages) - {"en"}):
        source = next((code for code in (lang, *_STOPWORDS_CODES.get(lang, ())) if stopwordsiso.has_lang(code)), None)
        stop = sorted(stopwordsiso.stopwords(source)) if source else []
        keys = {name_key(w) for w in stop if w.strip() and "\t" not in w} - names_kept
        yield from ((lang, "stop", k) for k in sorted(keys) if k)
        if lang in freq_languages:
            keys = {name_key(w) for w in wordfreq.top_n_list(lang, common) if w.isalpha()}
            yield from ((lang, "common", k) for k in sorted(keys) if k)


def _native_division_names(ids: set[str]) -> Iterator[tuple[str, str]]:
    import json
    from importlib import resources

    csc = resources.files("countrystatecity_countries") / "data" / "by-country"  # build-time only
    for country_dir in sorted(csc.iterdir(), key=lambda p: p.name):
        states_file = country_dir / "states.json"
        if not states_file.is_file():
            continue
        for state in json.loads(states_file.read_text("utf-8")):
            pid = f"nw:admin1:{state.get('iso3166_2')}"
            native = (state.get("native") or "").strip()
            if pid in ids and native and len(native) >= 3 and "\t" not in native:
                yield pid, native


def _build_place_names(languages: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    import gettext

    import pycountry  # build-time only

    from pipelines.text.gazetteer import load_places

    records = load_places()
    ids = {r.id for r in records}
    country_ids = {r.country_code: r.id for r in records if r.feature == "country" and r.country_code}
    us_states = {f"US-{r.admin1}": r.id for r in records if r.feature == "admin1" and r.country_code == "US"}
    known = {r.id: {name_key(n) for n in r.names} for r in records}
    # Divisions by their own name in their own language ("Cataluña", "Comunidad valenciana"), for
    # texts in any language: the table has their English name.
    for pid, native in _native_division_names(ids):
        if name_key(native) not in known[pid]:
            known[pid].add(name_key(native))
            yield ANY_LANGUAGE, pid, native
    for lang in sorted(set(languages) - {"en"}):
        countries = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang], fallback=True)
        divisions = gettext.translation("iso3166-2", pycountry.LOCALES_DIR, languages=[lang], fallback=True)
        rows: list[tuple[str, str]] = []
        for c in pycountry.countries:
            country = country_ids.get(c.alpha_2)
            if country:
                rows += [(country, countries.gettext(getattr(c, "common_name", None) or c.name)),
                         (country, countries.gettext(c.name))]
        for s in pycountry.subdivisions:
            pid = us_states.get(s.code) or f"nw:admin1:{s.code}"
            if pid in ids:
                rows.append((pid, divisions.gettext(s.name)))
        for pid, raw in rows:
            # "Catalunya [Cataluña]", "Bolivia, Plurinational State of": every plain form.
            forms = [f.strip() for f in raw.replace("]", "").split("[")]
            forms = [f for f in forms if f and "," not in f and "(" not in f and len(f) >= 3]
            for form in forms:
                if name_key(form) not in known[pid]:
                    known[pid].add(name_key(form))
                    yield lang, pid, form


def _write(path: Path, header: str, rows: Iterable[tuple[str, ...]]) -> int:
    n = 0
    with gzip.GzipFile(path, "wb", mtime=0) as raw:
        raw.write((header + "\n").encode("utf-8"))
        for row in rows:
            raw.write(("\t".join(row) + "\n").encode("utf-8"))
            n += 1
    return n


def build(languages: Iterable[str], common: int = COMMON_WORDS) -> tuple[int, int]:
    """Write language_words.tsv.gz and place_names.tsv.gz; returns their row counts."""
    languages = sorted(set(languages))
    words = _write(LANGUAGE_WORDS_TABLE, "language\tkind\tword", _build_words(languages, common))
    names = _write(PLACE_NAMES_TABLE, "language\tplace_id\tname", _build_place_names(languages))
    return words, names


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m pipelines.text.multilingual build [--common N]`."""
    from langdetect.detector_factory import PROFILES_DIRECTORY  # the languages detection can answer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("build", help="regenerate pipelines/data/language_words.tsv.gz and place_names.tsv.gz")
    cmd.add_argument("--common", type=int, default=COMMON_WORDS, help="how many frequent words per language")
    args = parser.parse_args(argv)
    languages = {base_language(p.name) for p in Path(PROFILES_DIRECTORY).iterdir() if not p.name.startswith(".")}
    words, names = build(languages, args.common)
    print(f"wrote {words} words to {LANGUAGE_WORDS_TABLE} and {names} place names to {PLACE_NAMES_TABLE}")


if __name__ == "__main__":
    main()
