"""PlaceResolver: toponyms to GeoNames ids and points, context disambiguation, people kept out, focus."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.text import places
from pipelines.text.entities import EntityTagger
from pipelines.text.places import Place, PlaceResolver, PlaceResult, distance_km
from tests.paths import SAMPLES

ROOT = Path(__file__).resolve().parents[2]

REQUIRED_PLACES = ["Finland", "Sweden", "Russia", "Ukraine", "Kyiv", "Crimea", "Belarus", "Minsk", "Lithuania",
                   "Kaliningrad", "Latvia", "Poland", "Black Sea", "Bulgaria", "Romania", "Turkey", "Brussels",
                   "Belgium"]


@pytest.fixture(scope="module")
def resolver() -> PlaceResolver:
    return PlaceResolver()


@pytest.fixture(scope="module")
def tagger() -> EntityTagger:
    return EntityTagger(mode="gazetteer")


def _resolve(resolver: PlaceResolver, tagger: EntityTagger, text: str, language: str = "en") -> PlaceResult:
    result = resolver.resolve(text, language, tagger.tag(text, language))
    for place in (*result.places, *result.nationalities):
        for m in place.mentions:
            assert text[m.start:m.end] == m.text
    return result


def _mentioned(result: PlaceResult) -> dict[str, Place]:
    return {" ".join(m.text.split()): p for p in result.places for m in p.mentions}


def test_article_places_all_resolve_with_ids_and_points(resolver, tagger):
    path = SAMPLES / "russia-warns-finland-sweden.txt"
    if not path.exists():
        pytest.skip(f"{path} not present")
    result = _resolve(resolver, tagger, path.read_text(encoding="utf-8"))
    mentioned = _mentioned(result)
    for name in REQUIRED_PLACES:
        assert name in mentioned, f"{name} not found: {sorted(mentioned)}"
        place = mentioned[name]
        assert place.id and -90 <= place.lat <= 90 and -180 <= place.lon <= 180
    assert mentioned["Kyiv"].id == "geonames:703448"
    assert mentioned["Black Sea"].id == "nw:sea:black-sea" and mentioned["Black Sea"].feature == "sea"
    assert mentioned["Finland"].feature == "country" and mentioned["Finland"].geonameid == 660013
    assert distance_km(mentioned["Minsk"].lat, mentioned["Minsk"].lon, 53.9, 27.57) < 20
    # People and the government are not places.
    assert "Vladimir" not in mentioned and "Kremlin" not in mentioned
    assert result.focus is not None and result.focus.country_code in {"RU", "UA"}


def test_georgia_follows_its_neighbours(resolver, tagger):
    caucasus = _mentioned(_resolve(resolver, tagger, "Protesters marched in Tbilisi, the capital of Georgia."))
    assert caucasus["Georgia"].feature == "country" and caucasus["Georgia"].country_code == "GE"
    south = _mentioned(_resolve(resolver, tagger, "Storms hit Atlanta and Savannah on Sunday, Georgia officials said."))
    assert south["Georgia"].feature == "admin1" and south["Georgia"].country_code == "US"


def test_town_comma_state_picks_the_town_in_that_state(resolver, tagger):
    mentioned = _mentioned(_resolve(resolver, tagger, "The festival in Moscow, Idaho drew 5,000 visitors."))
    moscow = mentioned["Moscow"]
    assert (moscow.country_code, moscow.admin1, moscow.feature) == ("US", "ID", "city")
    assert mentioned["Idaho"].feature == "admin1"
    plain = _mentioned(_resolve(resolver, tagger, "Talks resumed in Moscow on Tuesday."))
    assert plain["Moscow"].id == "geonames:524901"
    abbreviated = _mentioned(_resolve(resolver, tagger, "A plant in Alexandria, La., will close."))
    assert abbreviated["Alexandria"].admin1 == "LA" and abbreviated["La."].name == "Louisiana"


def test_names_inside_people_are_not_places(resolver, tagger):
    text = "Vladimir Putin met Marion Cole; President Lincoln's portrait hung in Washington."
    mentioned = _mentioned(_resolve(resolver, tagger, text))
    assert "Vladimir" not in mentioned and "Marion" not in mentioned and "Lincoln" not in mentioned
    assert mentioned["Washington"].country_code == "US"


def test_other_languages_get_places_too(resolver, tagger):
    text = "Russland griff die Ukraine an; in Kiew und Charkiw heulten die Sirenen. Die Türkei vermittelt."
    result = _resolve(resolver, tagger, text, "de")
    codes = {p.country_code for p in result.places}
    assert {"RU", "UA", "TR"} <= codes
    assert {"Kiew", "Russland"} <= set(_mentioned(result))


def test_raw_text_with_typography_and_empty_text(resolver, tagger):
    text = "‘We are ready,’ said officials in Kyiv’s centre.\u00a0Sweden\u00a0and Finland agreed."
    mentioned = _mentioned(_resolve(resolver, tagger, text))
    assert {"Kyiv", "Sweden", "Finland"} <= set(mentioned)
    assert resolver.resolve("", "en") == PlaceResult(places=(), focus=None)


def test_focus_is_the_most_mentioned_place(resolver, tagger):
    text = ("Floods hit Porto Alegre on Monday. Porto Alegre's mayor asked Brazil for help; "
            "rescuers in Porto Alegre worked through the night.")
    result = _resolve(resolver, tagger, text)
    assert result.focus is not None and result.focus.name == "Porto Alegre"
    as_dict = result.to_dict()
    assert as_dict["focus"] == result.focus.id and as_dict["places"][0]["mentions"][0]["text"] == "Porto Alegre"


def test_disambiguation_work_does_not_grow_with_repeated_mentions(resolver, tagger, monkeypatch):
    # Context for each name comes from the other names' choices; a dense text repeats a few places
    # thousands of times, and comparing every mention with every other one stalled the stream.
    calls = {"distance": 0, "score": 0}
    real_distance, real_score = places.distance_km, PlaceResolver._score

    def counted_distance(*args: float) -> float:
        calls["distance"] += 1
        return real_distance(*args)

    def counted_score(self: PlaceResolver, *args: object) -> float:
        calls["score"] += 1
        return real_score(self, *args)

    monkeypatch.setattr(places, "distance_km", counted_distance)
    monkeypatch.setattr(PlaceResolver, "_score", counted_score)
    sentence = "Officials in Helsinki, Espoo and Vantaa met Georgia delegates from Atlanta and Savannah. "
    work = {}
    for repeats in (200, 400):
        calls.update(distance=0, score=0)
        result = _resolve(resolver, tagger, sentence * repeats)
        assert len(_mentioned(result)) == 6 and all(len(p.mentions) == repeats for p in result.places)
        assert calls["distance"] > 0
        work[repeats] = dict(calls)
    # Twice the text may cost up to twice the work, never four times as before.
    assert work[400]["distance"] <= 2 * work[200]["distance"], work
    assert work[400]["score"] <= 2 * work[200]["score"], work


def test_a_qualifier_picks_the_place_in_that_division_or_abbreviation(resolver, tagger):
    london = _mentioned(_resolve(resolver, tagger, "The plant in London, Ontario, will close."))["London"]
    assert london.country_code == "CA"
    got = _mentioned(_resolve(resolver, tagger, "Talks in Victoria, B.C., ended."))
    assert got["Victoria"].country_code == "CA" and got["B.C."].name == "British Columbia"
    got = _mentioned(_resolve(resolver, tagger, "He moved to Fresno, Calif., last year."))
    assert got["Fresno"].admin1 == "CA" and got["Calif"].name == "California"


def test_acronyms_in_capitals_are_not_towns_but_country_abbreviations_are_places(resolver, tagger):
    text = "The ILO said wages fell in Lima. Ministers from the UAE and NZ met."
    got = _mentioned(_resolve(resolver, tagger, text))
    assert "ILO" not in got
    assert got["UAE"].country_code == "AE" and got["NZ"].country_code == "NZ"
    # A dateline in capitals still names the town.
    assert "LIMA" in _mentioned(_resolve(resolver, tagger, "LIMA 1996-08-30\nPeru said."))


def test_a_demonym_is_a_nationality_of_its_country_not_a_place(resolver, tagger):
    # Named only by demonyms: nationalities, no places, no focus.
    result = _resolve(resolver, tagger, "Icelandic divers and Danish sailors searched the wreck overnight.")
    assert result.places == () and result.focus is None
    assert [(n.country_code, [m.text for m in n.mentions]) for n in result.nationalities] == [
        ("IS", ["Icelandic"]), ("DK", ["Danish"])]
    # Named both ways: the name is the place's mention, the demonym the nationality's, same id.
    result = _resolve(resolver, tagger, "French engineers will inspect the dam, France said on Friday.")
    assert [(p.country_code, [m.text for m in p.mentions]) for p in result.places] == [("FR", ["France"])]
    assert [(n.country_code, [m.text for m in n.mentions]) for n in result.nationalities] == [("FR", ["French"])]
    assert result.nationalities[0].id == result.places[0].id
    as_dict = result.to_dict()
    assert as_dict["nationalities"] == [{"id": result.places[0].id, "name": "France", "country_code": "FR",
                                         "mentions": [{"start": 0, "end": 6, "text": "French"}]}]
    assert as_dict["places"][0]["mentions"] == [{"start": 39, "end": 45, "text": "France"}]


def test_an_enriched_event_with_nationalities_passes_the_event_schema(resolver, tagger):
    from pipelines.text.enrich import enrich_event
    from pipelines.transforms.emit import finish_event

    text = "Estonian and Latvian crews cleared the harbour in Riga."
    event = {"schema": "enriched-event/1", "event_id": "b" * 32, "source": "test:nationalities", "text": text,
             "content_hash": "c" * 32, "language": {"code": "en", "confidence": 1.0}, "duplicate_of": None,
             "received_at": "2026-12-03T15:00:00Z", "origin": {"topic": "news.fragments", "partition": 0,
                                                               "offset": 0, "timestamp_ms": 0}}
    out = finish_event(enrich_event(event, tagger, resolver))  # validates against enriched-event.v1.json
    assert [p["name"] for p in out["places"]] == ["Riga"] and out["focus_place"] == out["places"][0]["id"]
    assert [(n["country_code"], n["mentions"][0]["text"]) for n in out["nationalities"]] == [
        ("EE", "Estonian"), ("LV", "Latvian")]


def test_short_and_former_names_of_countries_and_regions(resolver, tagger):
    text = "Talks on Chechnya and Bosnia echoed the break-up of Yugoslavia and the Soviet Union."
    ids = {name: p.id for name, p in _mentioned(_resolve(resolver, tagger, text)).items()}
    assert ids == {"Chechnya": "nw:admin1:RU-CE", "Bosnia": "geonames:3277605",
                   "Yugoslavia": "nw:region:yugoslavia", "Soviet Union": "nw:region:soviet-union"}


def test_counties_and_parishes_resolve_to_the_county_in_the_texts_state(resolver, tagger):
    text = "Deputies in Harlan County searched the hills near Hazard, Ky. Bossier Parish sent two boats."
    got = _mentioned(_resolve(resolver, tagger, text))
    harlan, bossier = got["Harlan County"], got["Bossier Parish"]
    assert (harlan.feature, harlan.admin1, harlan.id) == ("admin2", "KY", "nw:admin2:US-21095")
    assert (bossier.admin1, bossier.id) == ("LA", "nw:admin2:US-22015")
    # The county's point is its centroid: Harlan County lies around 36.9 N, 83.2 W.
    assert distance_km(harlan.lat, harlan.lon, 36.86, -83.22) < 30
    # "Washington County" alone is the one in the state the text names.
    got = _mentioned(_resolve(resolver, tagger, "Floods closed roads in Washington County, and Oregon sent crews."))
    assert got["Washington County"].admin1 == "OR"


def test_a_bare_county_name_needs_the_text_to_vouch_for_it(resolver, tagger):
    got = _mentioned(_resolve(resolver, tagger, "Rain hit Traverse and Big Stone counties, and Minnesota's "
                                                "governor sent help to Grant County. Grant officials thanked him."))
    assert got["Traverse"].id == "nw:admin2:US-27155" and got["Big Stone"].id == "nw:admin2:US-27011"
    assert got["Grant"].id == got["Grant County"].id == "nw:admin2:US-27051"
    # Without "County" anywhere in the text, a county's name alone is no county.
    got = _mentioned(_resolve(resolver, tagger, "Traverse officials said the river crested in Minnesota."))
    assert all(p.feature != "admin2" for p in got.values())


def test_streets_and_roads_lie_in_the_texts_town(resolver, tagger):
    text = ("A fire on East Main Street in Springfield, Ill., closed Highway 4 and County Road 12. "
            "Crews left North Grand Avenue open. The St. Louis crews helped.")
    result = _resolve(resolver, tagger, text)
    got = _mentioned(result)
    town = got["Springfield"]
    for street in ("East Main Street", "Highway 4", "County Road 12", "North Grand Avenue"):
        assert got[street].feature == "street" and (got[street].lat, got[street].lon) == (town.lat, town.lon)
        assert got[street].id.endswith("@" + town.id)
    assert got["St. Louis"].feature == "city" and result.focus is town
    # With no town or county in the text there is nothing to place a street in.
    assert _resolve(resolver, tagger, "Traffic was slow on Elm Street.").places == ()


def test_a_state_sharing_its_name_with_a_big_city(resolver, tagger):
    assert _mentioned(_resolve(resolver, tagger, "She moved to New York in 2010."))["New York"].feature == "city"
    for text in ("Farms in upstate New York lost crops.", "The state of New York sued.",
                 "Fires spread in Washington state."):
        assert next(iter(_mentioned(_resolve(resolver, tagger, text)).values())).feature == "admin1", text
    # A town in the state of another town of the text is no strong evidence: Boston stays Boston, Mass.
    got = _mentioned(_resolve(resolver, tagger, "He left New York for Boston."))
    assert got["Boston"].admin1 == "MA"


def test_people_and_models_named_like_towns_are_not_places(resolver, tagger):
    text = ("Twin brothers Tyler and Carson Whitcombe of Fargo won. Tyler received a medal. "
            "Police found a 2004 Honda at the scene; the Honda was stolen. Can anyone explain it? Nobody can.")
    got = _mentioned(_resolve(resolver, tagger, text))
    assert set(got) == {"Fargo"}
    # A small town's name before "said" is a person's, there and later; after "in" it stays the town.
    got = _mentioned(_resolve(resolver, tagger, "Bowie said the plant in Austin would close. Bowie left."))
    assert set(got) == {"Austin"}
    assert "Kenner" in _mentioned(_resolve(resolver, tagger, "Officials in Kenner said the levee held in Louisiana."))


def test_everyday_words_languages_and_name_parts_are_not_places(resolver, tagger):
    def names(text: str) -> set[str]:
        return set(_mentioned(_resolve(resolver, tagger, text)))

    # A very frequent English word that names only small towns (or a town by another spelling) is
    # the word, unless "Town, State" says it is the town.
    assert names("“Far too many people came,” the organiser said in Austin, Texas.") == {"Austin", "Texas"}
    assert "Page" in names("She grew up in Page, Ariz., and later moved to Flagstaff.")
    # A sentence's first word that the text also writes in lower case, even a province's name.
    assert "Pool" not in names("Pool safety rules change in Ohio. Every pool must be fenced.")
    # A demonym after a verb of speaking is a language: neither the country nor a nationality.
    assert names("She speaks French and works in Lyon.") == {"Lyon"}
    assert names("He spoke fluent German in Vienna.") == {"Vienna"}
    # "the Lincoln and Grant administrations": people, like "the Lincoln administration".
    assert names("The Lincoln and Grant administrations shaped Nebraska.") == {"Nebraska"}
    # A place word alone ends a longer name; a town before "Heights" or "Hills" names a neighbourhood.
    assert names("Crews cleared Pecan Creek in Austin, Texas.") == {"Austin", "Texas"}
    assert "Plano" not in names("The Plano Heights apartments in Texas were sold.")
    # "Club <town>" is a club, as "Real <town>" is.
    assert "Brugge" not in names("Supporters cheered as Club Brugge won in Ghent.")
    # A small town's name before an adverb and a verb of speech is a person's, as before the verb alone.
    assert "Thompson" not in names("Sheriff Ray Thompson met deputies in Tulsa, Okla. Thompson again urged calm.")


def test_cars_and_clubs_named_after_towns_are_not_places(resolver, tagger):
    def names(text: str) -> set[str]:
        return set(_mentioned(_resolve(resolver, tagger, text)))

    # A colour, a make, a town's name: a car model, there and where the text names it again.
    assert names("Witnesses saw a white Seat Toledo leave Madrid. The Toledo was found later.") == {"Madrid"}
    # A town listed beside a club is a club too, and so wherever the text names it alone.
    assert names("Burnley and Dynamo Kiev will play a friendly in Dublin. Burnley announced the date.") == {"Dublin"}
    # A town listed beside another town stays a town.
    assert names("Floods hit Burnley and Preston, and later Dublin.") == {"Burnley", "Preston", "Dublin"}


def test_demonyms_come_from_the_shipped_table_with_the_yaml_on_top(resolver, tagger):
    from pipelines.text.gazetteer import load_demonyms

    demonyms = load_demonyms()
    # Only in the table built from npm world-countries (bench/build_demonyms.py): read as the country.
    assert demonyms["Bhutanese"] == "BT" and demonyms["Fijians"] == "FJ"
    # The package gives "Dominican" to Dominica; demonyms.yaml says the Dominican Republic, and wins.
    assert demonyms["Dominican"] == "DO"
    result = _resolve(resolver, tagger, "Bhutanese monks marched through the capital.")
    assert result.places == ()
    assert [(n.country_code, m.text) for n in result.nationalities for m in n.mentions] == [("BT", "Bhutanese")]


def test_norwegian_is_norway_although_yaml_reads_a_bare_no_as_false(resolver, tagger, tmp_path):
    from pipelines.text.gazetteer import load_demonyms

    # YAML 1.1 (PyYAML's default) read a bare NO as False, and Norwegians had no country.
    assert load_demonyms()["Norwegian"] == "NO" and load_demonyms()["Norwegians"] == "NO"
    result = _resolve(resolver, tagger, "Norwegian rescuers reached the trawler at dawn.")
    assert [(n.country_code, [m.text for m in n.mentions]) for n in result.nationalities] == [("NO", ["Norwegian"])]
    # The gazetteer loader reads YAML 1.2 booleans: a bare NO is the code, whoever edits the file.
    (tmp_path / "demonyms.yaml").write_text("demonyms:\n  NO: [Norwegian]\n", encoding="utf-8")
    assert load_demonyms(tmp_path)["Norwegian"] == "NO"
    # A key that is no country code is refused by name, not dropped in silence.
    for bad, shown in (("Norway", "'Norway'"), ("false", "False"), ("47", "47")):
        (tmp_path / "demonyms.yaml").write_text(f"demonyms:\n  {bad}: [Norwegian]\n", encoding="utf-8")
        with pytest.raises(ValueError, match=rf"demonyms\.{shown}: a country code must be two capital letters"):
            load_demonyms(tmp_path)
