"""Names nobody listed (pipelines/text/names.py through EntityTagger's gazetteer mode), on sentences
written for these tests, and the token shape bugs they depend on."""

from __future__ import annotations

import pytest

from pipelines.text.entities import Entity, EntityTagger
from pipelines.text.gazetteer import tokenize
from pipelines.text.names import capitalised_runs, load_name_cues


@pytest.fixture(scope="module")
def tagger() -> EntityTagger:
    return EntityTagger(mode="gazetteer")


def _names(entities: list[Entity]) -> dict[str, tuple[str, str, str]]:
    return {e.name: (e.type, e.id, e.source) for e in entities}


def test_unlisted_person_with_a_first_name_and_later_surname(tagger):
    text = "Tomas Lindgren, who runs the depot, said trucks were late. Lindgren blamed the snow."
    entities = tagger.tag(text, "en")
    person = next(e for e in entities if e.name == "Tomas Lindgren")
    assert (person.type, person.id, person.source) == ("person", "ner:person:tomas-lindgren", "rule")
    assert [m.text for m in person.mentions] == ["Tomas Lindgren", "Lindgren"]


def test_an_initial_opens_a_persons_name(tagger):
    names = _names(tagger.tag("The goal came from J. Okafor after the break.", "en"))
    assert names["J. Okafor"][0] == "person"
    assert "St. Louis" not in _names(tagger.tag("He met St. Louis officials.", "en"))


def test_unlisted_organisations_by_their_words_and_acronyms(tagger):
    text = ("Shares of Brightwater Holdings fell after the Bank of Lagos cut rates, "
            "and the dockworkers' union FNV called a strike.")
    names = _names(tagger.tag(text, "en"))
    assert names["Brightwater Holdings"][:2] == ("org", "ner:org:brightwater-holdings")
    assert names["Bank of Lagos"][0] == "org"
    assert names["FNV"][0] == "org"


def test_places_and_nationalities_are_not_people(tagger):
    text = "Maria went from New York City to Port Said with a Sri Lankan Muslim group."
    assert [e for e in tagger.tag(text, "en") if e.type == "person"] == []


def test_sentence_words_and_headlines_in_capitals_are_left_alone(tagger):
    assert tagger.tag("PRICES RISE AS DAVID LEE QUITS\nThe market fell.", "en") == []
    names = _names(tagger.tag("Officials said Anna Berg arrived. The talks ended.", "en"))
    assert list(names) == ["Anna Berg"]


def test_digits_are_not_capitalised_words(tagger):
    # A title before "Ace 22" once made "22" a surname, and then every bare "22" that person.
    assert not tokenize("22 May")[0].capitalised
    text = "Striker Ace 22 scored twice. Later 22 players left."
    assert all("22" not in m.text for e in tagger.tag(text, "en") for m in e.mentions)


def test_runs_join_capitalised_words_and_connectors_only():
    text = "the Bank of England and Acme, Inc"
    tokens = tokenize(text)
    runs = [text[tokens[a].start:tokens[b].end] for a, b in capitalised_runs(text, tokens, load_name_cues().connectors)]
    assert runs == ["Bank of England", "Acme", "Inc"]


def test_an_acronym_in_brackets_is_the_organisation_it_spells(tagger):
    text = ("The Northern Grain Traders Association (NGTA) met on Monday. "
            "NGTA members voted to strike.")
    orgs = [e for e in tagger.tag(text, "en") if e.type == "org"]
    assert len(orgs) == 1
    assert orgs[0].id == "ner:org:northern-grain-traders-association"
    assert [m.text for m in orgs[0].mentions] == ["Northern Grain Traders Association", "NGTA", "NGTA"]


def test_a_towns_team_in_a_match_report_is_an_organisation_not_the_town():
    from pipelines.text.places import PlaceResolver

    resolver = PlaceResolver()
    tagger = EntityTagger(places=resolver.place_keys())
    text = "Galway beat Limerick in the final.\nResults: Bolton 2 Preston 1\nFans in Galway celebrated."
    entities = tagger.tag(text, "en")
    teams = {m.text for e in entities if e.type == "org" for m in e.mentions}
    assert {"Galway", "Limerick", "Bolton", "Preston"} <= teams
    places = resolver.resolve(text, "en", entities)
    assert [m.text for p in places.places for m in p.mentions] == ["Galway"]  # the town, in the last line
    # A country's name stays a place, and a town with no match around it stays a town.
    entities = tagger.tag("Brazil beat Chile. Talks in Preston ended.", "en")
    assert [e for e in entities if e.type == "org"] == []


def test_a_name_without_cues_is_a_person_when_its_last_word_recurs_alone(tagger):
    text = "The deal was signed by Qwyllo Kowalczyk on Monday. Later Kowalczyk said it was fair."
    person = _names(tagger.tag(text, "en"))["Qwyllo Kowalczyk"]
    assert person[0] == "person"
    # Without the later bare surname there is no evidence either way: nothing is tagged.
    assert tagger.tag("The deal was signed by Qwyllo Kowalczyk on Monday.", "en") == []


def test_a_standings_row_names_a_team():
    from pipelines.text.places import PlaceResolver

    resolver = PlaceResolver()
    tagger = EntityTagger(places=resolver.place_keys())
    text = "Standings:\nBolton 12 8 2 2 26\nPreston 12 7 3 2 24"
    teams = {e.name for e in tagger.tag(text, "en") if e.type == "org"}
    assert teams == {"Bolton", "Preston"}
