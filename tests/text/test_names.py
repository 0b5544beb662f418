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


@pytest.fixture(scope="module")
def resolver_and_tagger():
    from pipelines.text.places import PlaceResolver

    resolver = PlaceResolver()
    return resolver, EntityTagger(places=resolver.place_keys())


def _orgs(tagger: EntityTagger, text: str) -> list[str]:
    return [m.text for e in tagger.tag(text, "en") if e.type == "org" for m in e.mentions]


def test_fixture_lists_and_tables_in_capitals_name_teams(resolver_and_tagger):
    resolver, tagger = resolver_and_tagger
    assert _orgs(tagger, "Fixtures next season:\nJune 3 v Kent (two days)") == ["Kent"]
    # Standings in capitals with a decimal column; a fixture line "VISITORS AT HOSTS": the hosts'
    # name stays the place where they play; a dateline stays a place too.
    text = "DENVER 70 61 .534 -\nTULSA 66 65 .504 4\nFixtures:\nTULSA AT OMAHA\nDENVER 2026-03-14"
    entities = tagger.tag(text, "en")
    assert [m.text for e in entities if e.type == "org" for m in e.mentions] == ["DENVER", "TULSA", "TULSA"]
    assert {m.text for p in resolver.resolve(text, "en", entities).places for m in p.mentions} == {"OMAHA", "DENVER"}
    # A name nobody listed in a standings row or a results line is a team, not a bowler's figures.
    assert _orgs(tagger, "Table:\nQarvel 12 8 2 .600\nMostrin 12 7 3 .583") == ["Qarvel", "Mostrin"]
    assert _orgs(tagger, "Bowling: Quennick 9-1-41-2, Halvery 6-0-30-1") == []


def test_a_towns_name_before_a_players_role_is_its_team_throughout_the_text(resolver_and_tagger):
    resolver, tagger = resolver_and_tagger
    text = "Devon captain Tom Brandt made 80. Devon need 120 more to win. Rain fell in Devon."
    entities = tagger.tag(text, "en")
    assert [m.text for e in entities if e.type == "org" for m in e.mentions] == ["Devon", "Devon"]
    places = resolver.resolve(text, "en", entities).places
    assert [m.start for p in places for m in p.mentions] == [text.rindex("Devon")]
    # National sides stay places, as countries do.
    assert _orgs(tagger, "Wales captain Tom Brandt made 80.") == []
    # A plural verb after a town's name: its team, unless the town follows a preposition.
    assert _orgs(tagger, "Kent need 120 runs to win.") == ["Kent"]
    assert _orgs(tagger, "Schools in Kent are shut.") == []


def test_business_context_makes_an_organisation(resolver_and_tagger):
    _, tagger = resolver_and_tagger
    text = "Shares in Quorvex rose 5 percent on Monday. Profits doubled, Quorvex said."
    assert _orgs(tagger, text) == ["Quorvex", "Quorvex"]
    assert _orgs(tagger, "The Lagos-based Zentrik bought the plant.") == ["Zentrik"]
    assert _orgs(tagger, "Dorrin & Falk said the offer was fair.") == ["Dorrin & Falk"]
    # An abbreviation's dot belongs to the name mid-sentence, not at the sentence's end.
    assert _orgs(tagger, "Brightwater Corp., the seller, agreed.") == ["Brightwater Corp."]
    assert _orgs(tagger, "The seller was Brightwater Corp.") == ["Brightwater Corp"]


def test_a_towns_team_and_companies_keep_their_town_out_of_places_but_public_bodies_do_not(resolver_and_tagger):
    resolver, tagger = resolver_and_tagger
    text = "The Denver Marmots beat the visitors, said the Denver Police Department."
    entities = tagger.tag(text, "en")
    assert "Denver Marmots" in {e.name for e in entities if e.type == "org"}
    places = resolver.resolve(text, "en", entities).places
    assert [m.start for p in places for m in p.mentions] == [text.rindex("Denver")]
    # A demonym opening such a name stays its country's nationality.
    text = "The Finnish Meteorological Institute kept its warning."
    result = resolver.resolve(text, "en", tagger.tag(text, "en"))
    assert result.places == ()
    assert [(n.country_code, m.text) for n in result.nationalities for m in n.mentions] == [("FI", "Finnish")]


def test_people_in_results_lines_after_a_nationality_and_clubs(resolver_and_tagger):
    resolver, tagger = resolver_and_tagger
    people = {e.name for e in tagger.tag("Results:\n3. Quillon Varga (Hungary) 10.21", "en") if e.type == "person"}
    assert people == {"Quillon Varga"}
    people = {e.name for e in tagger.tag("The bout pits Mexican Rosa Quintero against Anna Hill.", "en")
              if e.type == "person"}
    assert people == {"Rosa Quintero", "Anna Hill"}
    # Clubs named after their town: the club, and not the town.
    text = "Dynamo Kiev beat Sporting Lisbon, and Stoke City lost."
    assert _orgs(tagger, text) == ["Dynamo Kiev", "Sporting Lisbon", "Stoke City"]
    assert resolver.resolve(text, "en", tagger.tag(text, "en")).places == ()
    assert _orgs(tagger, "Flights to Kansas City resumed.") == []
    # A city of a million or a capital opens no person's name, nor ends a club's ("Real Lima").
    assert [e for e in tagger.tag("Real Lima drew again.", "en") if e.type == "person"] == []
