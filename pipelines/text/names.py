"""Names nobody listed: runs of capitalised words read as people or organisations by cheap cues.

A run ("Phil Simmons", "Acme Holdings", "Bank of Lagos", "ILO") is a person when its first word is a
common first name (the shipped first-name table) and it has two or three words, an organisation
when its last word is an organisation word ("Holdings", "Party") or its first word heads an "X of Y"
name, and a short all-capital word is an organisation's acronym. A run that is a place name is left
to the places stage unless sports or business context makes it a team or a club ("Devon need 120",
"Devon captain", "Dynamo Kiev"); names in standings rows, results lines and business context
("shares in Acme") are organisations, and one sense holds per text. Lines written all in capitals
(headlines) give no case evidence and are skipped, except for tables. Cues live in
config/gazetteer/name_rules.yaml (docs/enrichment.md lists them); the first-name table in pipelines/data/.

`python -m pipelines.text.names build` regenerates pipelines/data/first_names.txt.gz from the
`names-dataset` package (build-time only, see pipelines/data/README.md).
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

from pipelines.text.gazetteer import (
    DEFAULT_GAZETTEER_DIR,
    PlaceKeys,
    Token,
    load_demonyms,
    name_key,
    read_yaml,
    words_joined,
)
from pipelines.text.prebuilt import cached, path_label

FIRST_NAMES_TABLE = Path(__file__).resolve().parents[1] / "data" / "first_names.txt.gz"


@dataclass(frozen=True)
class NameCues:
    """What the rules read: first names, organisation words and name connectors, as name_key()s."""

    first_names: frozenset[str]
    org_last_words: frozenset[str]
    org_heads: frozenset[str]
    connectors: frozenset[str]
    nationalities: frozenset[str]  # demonyms ("Lankan", "Nigerians"): never part of a person's name
    team_verbs: frozenset[str]  # "beat", "drew", "v": a town's name next to one is a team
    team_roles: frozenset[str]  # "captain", "striker": a town's name right before one is a team
    team_plural_verbs: frozenset[str]  # "are", "need": "Devon need 120 to win" (a town is singular)
    club_heads: frozenset[str]  # "Dynamo", "Real": before a town's name, a club's
    club_tails: frozenset[str]  # "City", "Town": after a town's name (that is not one whole place), a club's
    national_sides: frozenset[str]  # places other than countries whose teams are national sides ("Wales")
    org_context_before: frozenset[str]  # "shares in", "analyst at": the name after them is a company's
    org_context_after: frozenset[str]  # "shares", "CEO": a name right before one is a company's


@cache
def load_first_names(table: Path = FIRST_NAMES_TABLE) -> frozenset[str]:
    """The shipped first-name table as name_key()s (read once per process: both stages use it)."""
    if not table.exists():
        raise FileNotFoundError(f"{table} is missing; it ships with the repository "
                                f"(regenerate it with `python -m pipelines.text.names build`)")

    def build() -> frozenset[str]:
        with gzip.open(table, "rt", encoding="utf-8") as fh:
            return frozenset(name_key(line) for line in fh if line.strip())

    return cached(f"first-names-{path_label(table)}", [table], build)  # prebuilt.py: keyed once, then read back


def load_name_cues(gazetteer_dir: Path = DEFAULT_GAZETTEER_DIR, table: Path = FIRST_NAMES_TABLE) -> NameCues:
    """name_rules.yaml, the first-name table and the demonyms."""
    doc = read_yaml(gazetteer_dir / "name_rules.yaml")

    def keys(field: str) -> frozenset[str]:
        return frozenset(name_key(str(w)) for w in doc.get(field) or ())

    return NameCues(first_names=load_first_names(table), org_last_words=keys("org_last_words"),
                    org_heads=keys("org_heads"), connectors=keys("connectors"),
                    nationalities=frozenset(name_key(w) for w in load_demonyms(gazetteer_dir)),
                    team_verbs=keys("team_verbs"), team_roles=keys("team_roles"),
                    team_plural_verbs=keys("team_plural_verbs"), club_heads=keys("club_heads"),
                    club_tails=keys("club_tails"),
                    national_sides=keys("national_sides"), org_context_before=keys("org_context_before"),
                    org_context_after=keys("org_context_after"))


def load_local_bodies(gazetteer_dir: Path = DEFAULT_GAZETTEER_DIR) -> tuple[frozenset[str], frozenset[str]]:
    """name_rules.yaml's `local_bodies` and `org_heads` as name_key()s (see keeps_place)."""
    doc = read_yaml(gazetteer_dir / "name_rules.yaml")
    return (frozenset(name_key(str(w)) for w in doc.get("local_bodies") or ()),
            frozenset(name_key(str(w)) for w in doc.get("org_heads") or ()))


def keeps_place(name: str, local_bodies: frozenset[str], org_heads: frozenset[str]) -> bool:
    """An organisation found by the rules that still names its place: a local public body ("Tulsa
    Police Department", "University of Tulsa"), unlike a team, a company or a newsroom ("Denver
    Marmots", "Air Malta", "Oslo Newsroom"), whose place name is not a toponym there."""
    words = name_key(name).split()
    return bool(words) and (words[-1] in local_bodies or (words[0] in org_heads and "of" in words))


def _caps_lines(text: str) -> Callable[[int], bool]:
    """Whether the line holding a character offset has no lower-case letter (a headline in capitals)."""
    cache: dict[int, bool] = {}

    def caps(offset: int) -> bool:
        start = text.rfind("\n", 0, offset) + 1
        hit = cache.get(start)
        if hit is None:
            end = text.find("\n", offset)
            line = text[start:end if end != -1 else len(text)]
            hit = cache[start] = line == line.upper()
        return hit

    return caps


_FIXTURE_MARKS = frozenset({"v", "vs"})  # "Kent v Essex"
_LIST_GAPS = frozenset({", ", " and ", " & ", " or "})  # between two names of one list


def _dateline(text: str, tokens: list[Token], first: int, last: int) -> bool:
    """The run opens a line and a comma or a date follows it ("OSLO 2026-03-14", "PARIS, May 3")."""
    if not tokens[first].sentence_start or text[tokens[first].start - 1:tokens[first].start] not in ("\n", ""):
        return False
    return text[tokens[last].end:tokens[last].end + 1] == "," or (
        last + 1 < len(tokens) and tokens[last + 1].key.isdigit() and len(tokens[last + 1].key) == 4)


# In fixtures written in capitals, "V" stands between two teams ("ENGLAND V PAKISTAN") and "AT"
# between the visitors and where they play ("TULSA AT OMAHA"): neither is part of a name there.
_CAPS_FIXTURE_WORDS = frozenset({"v", "vs", "at"})


# "in Boston", "at Boston": the town itself, even in a text that names its team elsewhere.
_LOCATIVES = frozenset({"in", "at", "from", "near", "to", "outside", "across", "around"})


def _visitors(text: str, tokens: list[Token], last: int) -> bool:
    """A fixture line in capitals, "TULSA AT OMAHA": the run before "AT" is the visiting team
    (the name after it is where they play)."""
    return last + 2 < len(tokens) and tokens[last + 1].key == "at" and tokens[last + 1].upper \
        and words_joined(text, tokens[last], tokens[last + 1]) and _name_word(tokens[last + 2])


def _name_word(tok: Token) -> bool:
    return tok.capitalised and tok.key[:1].isalpha()


def _score(tok: Token) -> bool:
    return tok.key.isdigit() and len(tok.key) <= 3


def _club(run_keys: list[str], cues: NameCues, is_place: Callable[[str], bool]) -> bool:
    """A club named after its town: "Dynamo Kiev", "Club Brugge", "Stoke City"."""
    return len(run_keys) >= 2 and (run_keys[0] in cues.club_heads and is_place(" ".join(run_keys[1:]))
                                   or run_keys[-1] in cues.club_tails and is_place(" ".join(run_keys[:-1])))


def _listed_with_club(text: str, tokens: list[Token], runs: list[tuple[int, int]], clubs: list[bool], at: int) -> bool:
    """Run `at` is listed next to a club ("Chelsea and Dynamo Kiev", "Real Madrid, Chelsea"): a team too."""
    first, last = runs[at]
    if at > 0 and clubs[at - 1] and text[tokens[runs[at - 1][1]].end:tokens[first].start] in _LIST_GAPS:
        return True
    return at + 1 < len(runs) and clubs[at + 1] and text[tokens[last].end:tokens[runs[at + 1][0]].start] in _LIST_GAPS


def _team(text: str, tokens: list[Token], first: int, last: int, verbs: frozenset[str],
          roles: frozenset[str] = frozenset()) -> bool:
    """The run stands for a team: next to a match verb ("Essex beat Kent", "Kent v Essex"), before a
    player's role ("Devon captain"), followed by a score on a line that has another "Name score"
    pair ("Barcelona 2 Valencia 1"), or by a standings row."""
    n = len(tokens)
    before = tokens[first - 1] if first > 0 and words_joined(text, tokens[first - 1], tokens[first]) else None
    after = tokens[last + 1] if last + 1 < n and words_joined(text, tokens[last], tokens[last + 1]) else None
    if after is not None and after.key in roles and not after.capitalised:
        return True
    # "Galway beat Limerick": a capitalised name on the verb's other side too ("Idaho drew 5,000
    # visitors" is no match report).
    if before is not None and before.key in verbs and (
            before.key in _FIXTURE_MARKS or first >= 2 and _name_word(tokens[first - 2])):
        return True  # "v Kent" in a fixture list needs no other name: "June 3 v Kent"
    if after is not None and after.key in verbs and last + 2 < n and _name_word(tokens[last + 2]):
        return True
    if after is None or not _score(after):
        return False
    # A standings row: the name and then three or more numbers ("Bolton 12 8 2 2 26", "Denver 70 61 .534").
    if last + 3 < n and all(_score(tokens[i]) and (words_joined(text, tokens[i - 1], tokens[i])
                                                   or text[tokens[i - 1].end:tokens[i].start] == " .")
                            for i in range(last + 1, last + 4)):
        return True
    line_start = text.rfind("\n", 0, tokens[first].start) + 1
    line_end = text.find("\n", tokens[last].end)
    line_end = len(text) if line_end == -1 else line_end
    for i in range(first - 1, -1, -1):  # an earlier pair on the line
        if tokens[i].start < line_start:
            break
        if i + 1 < first and _score(tokens[i + 1]) and tokens[i].capitalised and tokens[i].key[:1].isalpha():
            return True
    for i in range(last + 2, n - 1):  # or a later one
        if tokens[i].start >= line_end:
            break
        if tokens[i].capitalised and tokens[i].key[:1].isalpha() and _score(tokens[i + 1]) \
                and tokens[i + 1].start < line_end:
            return True
    return False


def _sentence_ends_at(text: str, i: int) -> bool:
    """Nothing but blanks and then a line break, the end, or a capital letter follows offset i."""
    rest = text[i:i + 3].lstrip(" ")
    return not rest or rest[0] == "\n" or rest[0].isupper()


def _org_context(text: str, tokens: list[Token], first: int, last: int, cues: NameCues) -> bool:
    """Business-news context around a name: "Lagos-based Acme", "shares in Acme", "Acme shares"."""
    if first >= 2 and tokens[first - 1].key == "based" and text[tokens[first - 2].end:tokens[first - 1].start] == "-" \
            and words_joined(text, tokens[first - 1], tokens[first]):
        return True
    if first >= 2 and f"{tokens[first - 2].key} {tokens[first - 1].key}" in cues.org_context_before \
            and words_joined(text, tokens[first - 2], tokens[first - 1]) \
            and words_joined(text, tokens[first - 1], tokens[first]):
        return True
    nxt = last + 1
    return nxt < len(tokens) and tokens[nxt].key in cues.org_context_after \
        and text[tokens[last].end:tokens[nxt].start] in (" ", "'s ", "’s ")


_BRACKETED = re.compile(r" \(([^()\n]{2,40})\)")


def _country_after(text: str, end: int, countries: frozenset[str]) -> bool:
    """A country's name in brackets right after offset `end`: "Jan Novak (Slovakia)"."""
    m = _BRACKETED.match(text, end)
    return m is not None and name_key(m.group(1)) in countries


def _plural_verb_after(text: str, tokens: list[Token], first: int, last: int, verbs: frozenset[str]) -> bool:
    """A town's name as the subject of a plural verb is its team ("Devon need 120", "Kent were
    bowled out"); not after a preposition ("schools in Kent are shut")."""
    nxt = last + 1
    if nxt >= len(tokens) or tokens[nxt].key not in verbs or not words_joined(text, tokens[last], tokens[nxt]):
        return False
    return first == 0 or tokens[first].sentence_start or not tokens[first - 1].key.isalpha() \
        or not (tokens[first - 1].key in _LOCATIVES or tokens[first - 1].key in ("of", "for", "and", "or", "with", "by"))


def _team_nickname(tok: Token, key: str, cues: NameCues, is_place: Callable[[str], bool],
                   not_names: frozenset[str], place_words: frozenset[str]) -> bool:
    """A team's plural nickname after its town's name ("Marmots", "Otters"): a plural word that is no
    first name, place or place word ("Heights", "Falls" continue a place name)."""
    return len(key) > 3 and key.endswith("s") and not key.endswith("ss") and not tok.upper \
        and key not in cues.first_names and not is_place(key) and key not in not_names \
        and key not in place_words and key not in cues.nationalities


def _table_team(text: str, tokens: list[Token], first: int, last: int) -> bool:
    """A name in a standings row ("Qarvel 50 41 2 .549") or a results line with another "Name score"
    pair ("Qarvel 2 Mostrin 1"): scores standing alone, not a bowler's "9-1-41-2" or a batsman's "3-31"."""
    n = len(tokens)

    def alone(i: int) -> bool:  # a whole number between blanks (or a decimal column: " .569")
        if i >= n or not _score(tokens[i]) or text[tokens[i - 1].end:tokens[i].start] not in (" ", " .") \
                or not text[tokens[i].start:tokens[i].end].isdigit():  # "9.06" is a price, not a score
            return False
        return text[tokens[i].end:tokens[i].end + 1] in ("", " ", "\n")

    if not alone(last + 1):
        return False
    if alone(last + 2) and alone(last + 3):
        return True
    line_end = text.find("\n", tokens[last].end)
    line_end = len(text) if line_end == -1 else line_end
    for i in range(last + 2, n - 1):  # a later "Name score" pair on the line
        if tokens[i].start >= line_end:
            break
        if _name_word(tokens[i]) and alone(i + 1) and tokens[i + 1].start < line_end:
            return True
    line_start = text.rfind("\n", 0, tokens[first].start) + 1
    for i in range(first - 2, -1, -1):  # or an earlier one
        if tokens[i].start < line_start:
            break
        if _name_word(tokens[i]) and alone(i + 1) and i + 1 < first:
            return True
    return False


def capitalised_runs(text: str, tokens: list[Token], connectors: frozenset[str],
                     breaks: frozenset[str] = frozenset()) -> Iterator[tuple[int, int]]:
    """(first, last) token indices of runs of capitalised words joined by spaces or name connectors;
    a word in capitals whose key is in `breaks` ends a run ("TULSA AT OMAHA" is two names)."""
    n = len(tokens)
    cap = [t.capitalised and t.key[:1].isalpha() and not (t.upper and t.key in breaks) for t in tokens]
    resume = 0  # the first token after the last run
    for i in [i for i, c in enumerate(cap) if c]:
        if i < resume:
            continue
        last = j = i
        while j + 1 < n and (words_joined(text, tokens[j], tokens[j + 1])
                             or cap[j] and cap[j + 1] and text[tokens[j].end:tokens[j + 1].start] == " & "):
            j += 1
            if cap[j]:
                last = j
            elif not (tokens[j].key in connectors and j + 1 < n and cap[j + 1]):
                break
        yield i, last
        resume = last + 1


def unlisted_names(text: str, tokens: list[Token], cues: NameCues, not_names: frozenset[str],
                   titles: frozenset[str], place_words: frozenset[str], places: PlaceKeys) -> list[tuple[int, int, str]]:
    """(start, end, "person" | "org") for runs of capitalised words the cues point at; `not_names`,
    `titles` and `place_words` are the stoplists' ("County", "River": the run names a place)."""
    caps = _caps_lines(text)
    is_place, is_major = places.all.__contains__, places.major.__contains__
    # Words this text also writes in lower case ("Officials said ..." and later "officials") are
    # ordinary words when they open a sentence.
    lower_words = {t.key for t in tokens if not t.capitalised}
    found: list[tuple[int, int, str]] = []
    unknown: list[tuple[int, int]] = []  # runs of 2-3 words no cue spoke for
    teams: set[str] = set()  # names this text uses for a team or a company
    elsewhere: list[tuple[int, int, str]] = []  # names not (yet) seen as one: (start, end, key)
    caps_verbs = cues.team_verbs | _FIXTURE_MARKS
    runs = list(capitalised_runs(text, tokens, cues.connectors, _CAPS_FIXTURE_WORDS))
    clubs = [_club(" ".join(t.key for t in tokens[first:last + 1]).split(), cues, is_place) for first, last in runs]
    for at, (first, last) in enumerate(runs):
        in_caps = caps(tokens[first].start)
        whole_run = " ".join(t.key for t in tokens[first:last + 1])
        if is_place(whole_run):
            # A place name as a whole ("New York City", "Port Said") is the places stage's, unless
            # it is a town's or county's team in a match report (results and standings in capitals
            # too: "TULSA AT OMAHA", "DENVER 70 61 .534").
            if whole_run in places.countries or whole_run in cues.national_sides or whole_run in not_names:
                continue
            if _team(text, tokens, first, last, caps_verbs if in_caps else cues.team_verbs, cues.team_roles) \
                    or (not in_caps and _plural_verb_after(text, tokens, first, last, cues.team_plural_verbs)) \
                    or (in_caps and _visitors(text, tokens, last)) or _listed_with_club(text, tokens, runs, clubs, at):
                found.append((tokens[first].start, tokens[last].end, "org"))
                teams.add(whole_run)
            elif not (first > 0 and tokens[first - 1].key in _LOCATIVES) and not (in_caps and _dateline(text, tokens, first, last)):
                elsewhere.append((tokens[first].start, tokens[last].end, whole_run))
            continue
        if clubs[at]:
            found.append((tokens[first].start, tokens[last].end, "org"))  # "Dynamo Kiev", "Stoke City"
            continue
        if in_caps:
            if _table_team(text, tokens, first, last) and not any(
                    tokens[i].key in not_names or tokens[i].key in cues.first_names for i in range(first, last + 1)):
                found.append((tokens[first].start, tokens[last].end, "org"))
                teams.add(whole_run)
                continue
            elsewhere.append((tokens[first].start, tokens[last].end, whole_run))
            continue  # no case evidence
        # Leading sentence words, titles and calendar words are not part of the name, unless they
        # head an organisation's name ("University of ...", "Party of ...").
        # In an organisation's name, ordinary words past the sentence's start belong to it
        # ("the Northern Grain Traders Association", "the Police Federation").
        org_run = last > first and tokens[last].key in cues.org_last_words
        while first <= last and not (tokens[first].key in cues.org_heads and first < last) and (
                (tokens[first].key in not_names and (not org_run or tokens[first].sentence_start))
                or tokens[first].key in titles or (tokens[first].sentence_start and tokens[first].key in lower_words)):
            first += 1
        # "Shares of Acme Holdings": a sentence's first word before a connector is not the name's.
        if first + 1 < last and tokens[first].sentence_start and tokens[first + 1].key in cues.connectors \
                and tokens[first].key not in cues.org_heads:
            first += 2
        # "... in Benson These highways": a sentence word after a line break lost; but a common word
        # after a first name that the text never writes in lower case is a surname ("Anna Hill").
        surname_ok = last == first + 1 and tokens[first].key in cues.first_names
        while last > first and (tokens[last].key in cues.connectors or (
                tokens[last].key in not_names and tokens[last].key not in cues.org_last_words
                and not (surname_ok and tokens[last].key not in lower_words and tokens[last].key not in titles))):
            last -= 1
        if first > last:
            continue
        words = tokens[first:last + 1]
        keys = [t.key for t in words]
        whole = " ".join(keys)
        if whole in not_names:
            continue
        start, end = words[0].start, words[-1].end
        if len(words) == 1:
            tok = words[0]
            letters = tok.key.replace(" ", "")
            # In capitals amid ordinary text, a short word is an acronym even where a town has that
            # name ("the ILO"), unless a place goes by that acronym ("UAE").
            acronym = tok.upper and 2 <= len(letters) <= 5 and letters.isalpha() and whole not in places.acronyms
            # A word the text never writes in lower case, in a results table or in business context.
            named = len(letters) > 1 and whole not in lower_words and whole not in cues.nationalities
            if acronym or named and (_table_team(text, tokens, first, last)
                                     or not is_place(whole) and _org_context(text, tokens, first, last, cues)):
                found.append((start, end, "org"))
                teams.add(whole)
            elif whole not in lower_words:
                elsewhere.append((start, end, whole))  # an organisation if the text names it so elsewhere
            continue
        if keys[-1] in cues.org_last_words or (keys[0] in cues.org_heads and "of" in keys) \
                or any(text[a.end:b.start] == " & " for a, b in pairwise(words)):
            # "Acme Corp., the ...": an abbreviation's dot belongs to the name unless it ends the sentence.
            if text[end:end + 1] == "." and len(keys[-1]) <= 4 and keys[-1] in cues.org_last_words \
                    and not _sentence_ends_at(text, end + 1):
                end += 1
            found.append((start, end, "org"))
            continue
        if len(keys) >= 2 and is_place(" ".join(keys[:-1])) and _team_nickname(words[-1], keys[-1], cues, is_place,
                                                                               not_names, place_words):
            found.append((start, end, "org"))  # "the Denver Marmots", "Tulsa Otters": a town's team
            continue
        # "Mexican Rosa Quintero": a nationality before a name is not part of it.
        while len(keys) > 2 and keys[0] in cues.nationalities:
            words, keys = words[1:], keys[1:]
            start = words[0].start
        if 2 <= len(words) <= 3 and _country_after(text, end, places.countries) and not any(
                t.upper or k in not_names or k in cues.connectors or k in cues.nationalities
                for t, k in zip(words, keys)) and not is_place(" ".join(keys)):
            found.append((start, end, "person"))  # "Jan Novak (Slovakia) beat ...": a results line
            continue
        if is_place(whole) or any(k in cues.nationalities for k in (" ".join(keys), *keys, *map(" ".join, pairwise(keys)))):
            continue  # "Sri Lankan Muslim": a nationality, not a name
        # An initial ("J. Okafor", "A.B. Sen") opens a person's name as a first name does.
        initial = len(keys[0].replace(" ", "")) <= 2 and text[words[0].end:words[0].end + 1] == "." \
            or text[words[0].start:words[0].end].endswith(".") and len(keys[0]) <= 3
        if (keys[0] in cues.first_names or initial) and len(words) <= 3 \
                and not any(t.upper and len(t.key) > 1 for t in words) \
                and not is_major(keys[0]) and not (len(keys) > 1 and is_major(keys[-1])) \
                and not any(k in cues.connectors or k in place_words for k in keys):
            # A major place first ("Dallas Police", "Jordan Valley") is not read as a first name, nor
            # is a club or company named after one ("Real Lima").
            found.append((start, end, "person"))
        elif len(words) <= 3 and (_table_team(text, tokens, first, last) or _org_context(text, tokens, first, last, cues)) \
                and not any(k in not_names or k in cues.nationalities or len(k) < 2 for k in keys):
            # A name nobody listed in a results table or a standings row is a team ("Qarvel 50 41 2 .549").
            found.append((start, end, "org"))
            teams.add(whole)
        elif 2 <= len(words) <= 3 and not any(t.upper or is_place(k) or k in cues.connectors or k in place_words
                                              or k in not_names for t, k in zip(words, keys)):
            unknown.append((first, last))
    found += _named_again(text, tokens, unknown)
    # One sense per text: a town or a name that this text calls a team or a company elsewhere ("Devon
    # beat Kent ... Devon captain ...", "shares in Acme ... Acme said") is that wherever it stands alone.
    found += [(start, end, "org") for start, end, key in elsewhere if key in teams]
    return found


def _named_again(text: str, tokens: list[Token], runs: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """People among names no cue spoke for: "Ewa Kowalczyk ... Kowalczyk said": a name whose last
    word the text uses alone elsewhere (not inside another capitalised name) is a person's."""
    if not runs:
        return []
    bare: dict[str, list[int]] = {}
    n = len(tokens)
    for i, tok in enumerate(tokens):
        if not tok.capitalised or tok.sentence_start or len(tok.key) < 3:
            continue
        prev, nxt = (tokens[i - 1] if i else None), (tokens[i + 1] if i + 1 < n else None)
        # A sentence's first word before it ("Later Kowalczyk said") does not make it part of a name.
        if prev is not None and prev.capitalised and not prev.sentence_start and words_joined(text, prev, tok):
            continue
        if nxt is not None and nxt.capitalised and words_joined(text, tok, nxt):
            continue
        bare.setdefault(tok.key, []).append(i)
    return [(tokens[first].start, tokens[last].end, "person") for first, last in runs
            if any(not first <= i <= last for i in bare.get(tokens[last].key, ()))]


_ACRONYM_AFTER = re.compile(r"\s*\(([A-Z][A-Za-z.&]{1,9})\)")


def acronym_after(text: str, name: str, end: int, connectors: frozenset[str]) -> str | None:
    """The acronym in brackets right after a name, when it spells the name's initials:
    "International Labour Organization (ILO)" -> "ILO"."""
    m = _ACRONYM_AFTER.match(text, end)
    if m is None:
        return None
    initials = "".join(w[0] for w in name.split() if name_key(w) not in connectors and name_key(w) != "the")
    letters = m.group(1).replace(".", "")
    return m.group(1) if letters.upper() == initials.upper() else None


# --------------------------------------------------------------------------- build (maintainers only)

def _first_names(max_rank: int) -> Iterator[str]:
    from importlib.util import find_spec

    # names-dataset is build-time only; its data file is read without importing the package (whose
    # import pulls in pycountry and loads both 25 MB tables).
    spec = find_spec("names_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install names-dataset==3.3.1 first (extra: gazetteer-build)")
    path = Path(next(iter(spec.submodule_search_locations))) / "v3" / "first_names.pkl.gz"
    with gzip.open(path, "rb") as fh:
        table = pickle.load(fh)  # the package's own data file (a dict name -> country/gender/rank)
    for name, info in table.items():
        ranks = info.get("rank") or {}
        if name.isalpha() and len(name) >= 2 and name[0].isupper() and name[1:].islower() \
                and ranks and min(ranks.values()) <= max_rank:
            yield name


def build_first_names(out: Path = FIRST_NAMES_TABLE, max_rank: int = 1000) -> int:
    """Write the first names ranked within `max_rank` in some country; returns how many."""
    names = sorted(set(_first_names(max_rank)))
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(out, "wb", mtime=0) as fh:
        fh.write(("\n".join(names) + "\n").encode("utf-8"))
    return len(names)


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m pipelines.text.names build [--max-rank N]`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="regenerate pipelines/data/first_names.txt.gz")
    build.add_argument("--out", type=Path, default=FIRST_NAMES_TABLE)
    build.add_argument("--max-rank", type=int, default=1000,
                       help="keep names among the N most common of at least one country")
    args = parser.parse_args(argv)
    n = build_first_names(args.out, args.max_rank)
    print(f"wrote {n} first names to {args.out} ({args.out.stat().st_size / 1e3:.0f} KB)")


if __name__ == "__main__":
    main()
