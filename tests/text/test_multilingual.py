"""Places and entities in French, German and Spanish (pipelines/text/multilingual.py), English unchanged.

The sentences here are written for these tests; the gold articles of tests/fixtures/multilingual/
are only checked for their shape (bench/eval_multilingual.py scores them).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipelines.text.entities import Entity, EntityTagger
from pipelines.text.gazetteer import tokenize
from pipelines.text.multilingual import (
    LanguageNames,
    base_language,
    load_lexicons,
    organisation_spans,
    split_elisions,
)
from pipelines.text.places import PlaceResolver, PlaceResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "multilingual"

GERMANY, FRANCE, SPAIN, ITALY, POLAND = ("geonames:2921044", "geonames:3017382", "geonames:2510769",
                                         "geonames:3175395", "geonames:798544")
MUNICH, COLOGNE, LYON, BILBAO, GDANSK = ("geonames:2867714", "geonames:2886242", "geonames:2996944",
                                         "geonames:3128026", "geonames:3099434")
UN_INDIA = "geonames:1253786"


@pytest.fixture(scope="module")
def resolver() -> PlaceResolver:
    return PlaceResolver()


@pytest.fixture(scope="module")
def tagger(resolver: PlaceResolver) -> EntityTagger:
    return EntityTagger(places=resolver.place_keys())


def _run(resolver: PlaceResolver, tagger: EntityTagger, text: str, language: str) -> tuple[list[Entity], PlaceResult]:
    entities = tagger.tag(text, language)
    result = resolver.resolve(text, language, entities)
    for p in result.places:
        for m in p.mentions:
            assert text[m.start:m.end] == m.text
    return entities, result


def _place_ids(result: PlaceResult) -> set[str]:
    return {p.id for p in result.places}


def _names(entities: list[Entity]) -> dict[str, Entity]:
    return {e.name: e for e in entities}


# --------------------------------------------------------------------------- places

def test_function_words_are_never_places(resolver, tagger):
    # "Un" (a town in Gujarat) is the French and Spanish article; "Auch" (Gers) a German adverb.
    for text, language in [("Un homme a été arrêté jeudi à Lyon.", "fr"),
                           ("Un incendio obligó a evacuar a 300 vecinos de Bilbao.", "es"),
                           ("Auch in Köln fielen am Montag viele Züge aus.", "de")]:
        _, result = _run(resolver, tagger, text, language)
        assert UN_INDIA not in _place_ids(result)
        assert {p.name for p in result.places} & {"Un", "Auch"} == set()
    assert _place_ids(_run(resolver, tagger, "Un homme a été arrêté jeudi à Lyon.", "fr")[1]) == {LYON}


def test_everyday_words_are_not_small_towns(resolver, tagger):
    # "Nähe" (Nahe, Holstein) and "República" (a Brazilian town) are words of the language.
    _, de = _run(resolver, tagger, "In der Nähe von Köln stürzte ein Baum auf die Gleise.", "de")
    assert _place_ids(de) == {COLOGNE}
    _, es = _run(resolver, tagger, "Miles de personas llenaron la plaza de la República en Bilbao.", "es")
    assert _place_ids(es) == {BILBAO}


@pytest.mark.parametrize("text,language,expected", [
    ("Les pompiers de l'Allemagne et de la Pologne sont arrivés à Munich.", "fr", {GERMANY, POLAND, MUNICH}),
    ("Die Regierung in Spanien schickte Hilfe nach Danzig und Köln.", "de", {SPAIN, GDANSK, COLOGNE}),
    ("Alemania e Italia enviaron bomberos a Francia.", "es", {GERMANY, ITALY, FRANCE}),
])
def test_translated_names_resolve_to_the_same_ids(resolver, tagger, text, language, expected):
    assert _place_ids(_run(resolver, tagger, text, language)[1]) == expected


def test_translated_divisions_and_seas(resolver, tagger):
    # Names only the language tables hold: pycountry's translations, curated seas in lower case.
    _, fr = _run(resolver, tagger, "Des orages ont touché la Bavière et la mer Baltique mardi.", "fr")
    assert {"nw:admin1:DE-BY", "nw:sea:baltic-sea"} <= _place_ids(fr)
    _, de = _run(resolver, tagger, "Im Kanton Wallis und an der Ostsee gab es Sturmwarnungen.", "de")
    assert {"nw:admin1:CH-VS", "nw:sea:baltic-sea"} <= _place_ids(de)


def test_designator_picks_the_division(resolver, tagger):
    # "estado de Oaxaca" is the state, and so is every later bare "Oaxaca" of the text.
    text = "Un sismo sacudió el estado de Oaxaca. En Oaxaca no hubo víctimas."
    oaxaca = [p for p in _run(resolver, tagger, text, "es")[1].places if "Oaxaca" in p.name]
    assert [p.id for p in oaxaca] == ["nw:admin1:MX-OAX"] and len(oaxaca[0].mentions) == 2


def test_english_is_unchanged(resolver, tagger):
    # English reads none of the language tables: "en" and an undetermined language give one result,
    # and a French-only name stays unknown in English text.
    text = "Un, a town in Gujarat, and Auch in France were named in the report from Lyon."
    _, en = _run(resolver, tagger, text, "en")
    _, und = _run(resolver, tagger, text, "und")
    assert en.to_dict() == und.to_dict()
    assert UN_INDIA in _place_ids(en)
    assert "nw:sea:baltic-sea" not in _place_ids(_run(resolver, tagger, "Storms hit the mer Baltique.", "en")[1])


# --------------------------------------------------------------------------- entities

def test_watchlist_aliases_per_language(resolver, tagger):
    fr, _ = _run(resolver, tagger, "L'OTAN et l'Union européenne ont répondu à Vladimir Poutine.", "fr")
    assert {"org:nato", "org:european-union", "person:vladimir-putin"} <= {e.id for e in fr}
    de, _ = _run(resolver, tagger, "Wolodymyr Selenskyj traf Vertreter der Vereinten Nationen.", "de")
    assert {"person:volodymyr-zelensky", "org:united-nations"} <= {e.id for e in de}
    es, _ = _run(resolver, tagger, "La ONU y la Comisión Europea pidieron calma.", "es")
    assert {"org:united-nations", "org:european-commission"} <= {e.id for e in es}


def test_titles_and_honorifics_introduce_people(resolver, tagger):
    fr, _ = _run(resolver, tagger, "Selon Mme Claire Dubreuil, la préfète, la situation est grave.", "fr")
    assert _names(fr)["Claire Dubreuil"].type == "person"
    de, _ = _run(resolver, tagger, "Innenministerin Petra Kowalski kündigte Hilfen an.", "de")
    assert _names(de)["Petra Kowalski"].type == "person"
    es, _ = _run(resolver, tagger, "La alcaldesa Lucía Ferrándiz pidió calma a los vecinos.", "es")
    assert _names(es)["Lucía Ferrándiz"].type == "person"


def test_organisation_words_per_language(resolver, tagger):
    fr, _ = _run(resolver, tagger, "Le Conseil constitutionnel a rendu sa décision sur la loi.", "fr")
    assert _names(fr)["Conseil constitutionnel"].type == "org"
    de, _ = _run(resolver, tagger, "Die Gewerkschaft Deutscher Bäcker (GDB) rief zum Streik auf.", "de")
    org = _names(de)["Gewerkschaft Deutscher Bäcker"]
    assert org.type == "org" and [m.text for m in org.mentions] == ["Gewerkschaft Deutscher Bäcker", "GDB"]
    es, _ = _run(resolver, tagger, "El Tribunal Supremo y la Policía Nacional investigan el caso.", "es")
    assert {"Tribunal Supremo", "Policía Nacional"} <= set(_names(es))


def test_a_place_after_a_connector_ends_an_organisation(resolver, tagger):
    # "Gobierno de Cataluña": the government is not an organisation named here, Catalonia is a place.
    text = "El Gobierno de Cataluña declaró la emergencia."
    entities, result = _run(resolver, tagger, text, "es")
    assert "nw:admin1:ES-CT" in _place_ids(result)
    assert not any("Cataluña" in e.name for e in entities)


def test_enrich_stage_passes_the_detected_language(resolver, tagger):
    # The Enrich stage hands the event's language code to both taggers: the same words are a French
    # article's in "fr" and an (undetermined) text's in "und".
    from pipelines.text.enrich import enrich_event

    text = "Un homme a été arrêté près de Lyon, selon l'OTAN."
    french = enrich_event({"text": text, "language": {"code": "fr"}}, tagger, resolver)
    assert [p["id"] for p in french["places"]] == [LYON] and french["focus_place"] == LYON
    assert "org:nato" in {e["id"] for e in french["entities"]}
    undetermined = enrich_event({"text": text, "language": {"code": "und"}}, tagger, resolver)
    assert UN_INDIA in {p["id"] for p in undetermined["places"]}


# --------------------------------------------------------------------------- building blocks

def test_base_language_and_lexicons():
    assert base_language("fr-CA") == "fr" and base_language("no") == "nb" and base_language(None) == "und"
    lexicons = load_lexicons()
    assert "en" not in lexicons
    assert {"un", "une", "le"} <= lexicons["fr"].stop_words
    assert "moskva" not in lexicons["ru"].stop_words and "rossiia" not in lexicons["ru"].stop_words


def test_split_elisions_and_lower_case_names():
    lex = load_lexicons()["fr"]
    text = "l'Allemagne d'abord"
    tokens = split_elisions(text, tokenize(text), lex)
    assert [text[t.start:t.end] for t in tokens] == ["l'", "Allemagne", "d'", "abord"]
    assert tokens[1].capitalised and not tokens[3].capitalised
    names = LanguageNames([("mer Baltique", "sea"), ("Union européenne", "eu")], lower_tail=True)
    text = "la mer Baltique et l'Union européenne, pas la mer baltique"
    found = [text[m.start:m.end] for m in names.find(text, split_elisions(text, tokenize(text), lex))]
    assert found == ["mer Baltique", "Union européenne"]


def test_organisation_spans_skip_articles():
    lex = load_lexicons()["de"]
    text = "Die Deutsche Bahn und der Fahrgastverband meldeten Ausfälle."
    assert [text[s:e] for s, e in organisation_spans(text, tokenize(text), lex, frozenset())] == [
        "Deutsche Bahn", "Fahrgastverband"]


def test_languages_yaml_names_only_watchlist_ids(tmp_path):
    for name in ("stoplists.yaml", "people.yaml", "organisations.yaml", "places.yaml"):
        (tmp_path / name).write_text((Path(__file__).resolve().parents[2] / "config" / "gazetteer" / name)
                                     .read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "languages.yaml").write_text("fr:\n  entities:\n    person:nobody: [Personne]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"'fr.entities' names 'person:nobody'"):
        load_lexicons(tmp_path, entity_ids=["person:vladimir-putin"])
    (tmp_path / "languages.yaml").write_text("fr:\n  titles: [ministre, 3]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"'fr.titles' must be a list of words"):
        load_lexicons(tmp_path)



def test_the_tagger_and_the_resolver_share_one_copy_of_the_shipped_lexicons(resolver: PlaceResolver,
                                                                          tagger: EntityTagger, tmp_path: Path) -> None:
    """One pipeline job held two copies (~40 MB): the resolver's came out of its model cache."""
    assert tagger._lexicons is resolver._lexicons is load_lexicons()
    # A folder of one's own is read afresh each time: its files may have changed.
    (tmp_path / "languages.yaml").write_text("fr:\n  titles: [ministre]\n", encoding="utf-8")
    first = load_lexicons(tmp_path)
    (tmp_path / "languages.yaml").write_text("fr:\n  titles: [ministre, maire]\n", encoding="utf-8")
    assert first["fr"].titles < load_lexicons(tmp_path)["fr"].titles

# --------------------------------------------------------------------------- gold fixtures

def _fixtures() -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(FIXTURES.glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_gold_fixtures_are_well_formed():
    docs = _fixtures()
    by_language: dict[str, int] = {}
    for doc in docs:
        by_language[doc["language"]] = by_language.get(doc["language"], 0) + 1
        for item in doc["places"] + doc["entities"]:
            assert item["mentions"], (doc["id"], item["name"])
            for start, end in item["mentions"]:
                assert doc["text"][start:end] in item["forms"], (doc["id"], item["name"])
    assert all(by_language.get(lang, 0) >= 6 for lang in ("fr", "de", "es"))
    stories: dict[str, set[str]] = {}
    for doc in docs:
        stories.setdefault(doc["story"], set()).add(doc["language"])
    # Two same-event groups with an English report, for the cross-lingual story work.
    assert sum({"en", "fr", "de"} <= langs for langs in stories.values()) >= 2


class _LookupOnly:
    """A collection that answers ``in`` and refuses to be walked."""

    def __init__(self, members: Any) -> None:
        self._members = members

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def __iter__(self) -> Any:
        raise AssertionError("walked the whole shared table")


def test_a_languages_first_text_looks_up_the_shared_tables_and_never_walks_them() -> None:
    # In a job forked from `newswire up`'s launcher, walking a table of the shared heap (the place
    # resolver's 155k records, the 55k well-known place names) touches every member and copies
    # their pages into the job: ~70 MB in one go on a language's first text, as measured. The
    # language's tables must be built from lookups instead.
    resolver = PlaceResolver()
    places = resolver.place_keys()
    tagger = EntityTagger(places=replace(places, well_known=_LookupOnly(places.well_known)))  # type: ignore[arg-type]
    resolver._records = _LookupOnly(resolver._records)  # type: ignore[assignment]
    for text, language in (("Le maire de Lyon a rencontré Emmanuel Macron à Paris.", "fr"),
                           ("Der Bürgermeister von München traf Vertreter der Stadt Köln.", "de"),
                           ("El alcalde de Bilbao se reunió con el Gobierno de España.", "es")):
        _, result = _run(resolver, tagger, text, language)
        assert result.places
    assert {"fr", "de", "es"} <= set(resolver._language_names) and {"fr", "de", "es"} <= set(tagger._language_rules)
