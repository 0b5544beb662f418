"""Story clustering on hand-enriched fixture events and the two shared samples."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pytest

from core.settings import StorySettings
from pipelines.stages.stories.clustering import (
    FEATURES,
    Rarity,
    StoryClusterer,
    StoryInput,
    StoryState,
    distinctive_quote_shingles,
    index_keys,
    places_with_nationalities,
    quoted_spans,
    stem,
    stem_doc_freq,
    story_features,
    vectors,
)
from pipelines.stages.stories.clustering import evidence as story_evidence
from pipelines.text.normalise import normalise_text
from tests.paths import ARTICLES, SAMPLES


def load_events() -> list[StoryInput]:
    """tests/fixtures/articles/events.json: texts plus the entities/places enrichment would add."""
    out = []
    for ev in json.loads((ARTICLES / "events.json").read_text(encoding="utf-8"))["events"]:
        name = ev["file"]
        path = SAMPLES / name.removeprefix("shared:") if name.startswith("shared:") else ARTICLES / name
        ts = datetime.fromisoformat(ev["received_at"]).timestamp()
        out.append(StoryInput(name, ts, ev["source"], normalise_text(path.read_text(encoding="utf-8")).text,
                              tuple(ev["entities"]), tuple(ev["places"])))
    return out


@pytest.fixture(scope="module")
def assigned() -> tuple[StoryClusterer, dict[str, str]]:
    clusterer = StoryClusterer()
    stories = {item.event_id: clusterer.assign(item).story_id for item in load_events()}
    return clusterer, stories


def test_two_outlets_on_the_same_event_join_one_story(assigned: tuple[StoryClusterer, dict[str, str]]) -> None:
    _, stories = assigned
    assert stories["shared:russia-warns-finland-sweden.txt"] == stories["shared:liveblog-fragment-2-26.txt"]
    assert stories["turku-port-fire.txt"] == stories["turku-port-fire.other-outlet.txt"]


@pytest.mark.parametrize("other", ["russia-gas-transit.txt", "finland-airspace-helicopter.txt",
                                   "kyiv-wheat-exports.txt", "helsinki-tram-line.txt"])
def test_articles_that_merely_share_names_stay_apart(assigned: tuple[StoryClusterer, dict[str, str]],
                                                     other: str) -> None:
    _, stories = assigned
    assert stories[other] != stories["shared:russia-warns-finland-sweden.txt"]


def test_every_event_has_a_story_and_unrelated_ones_are_alone(
        assigned: tuple[StoryClusterer, dict[str, str]]) -> None:
    clusterer, stories = assigned
    assert len(set(stories.values())) == len(stories) - 2
    for event_id in ("stockholm-housing.txt", "tallinn-ferry-strike.txt"):
        assert clusterer.stories[stories[event_id]].event_count == 1


def test_story_summary_counts_events_sources_and_top_names(
        assigned: tuple[StoryClusterer, dict[str, str]]) -> None:
    clusterer, stories = assigned
    story = clusterer.stories[stories["shared:liveblog-fragment-2-26.txt"]].summary()
    assert (story["event_count"], story["source_count"]) == (2, 2)
    assert story["first_seen"] < story["last_seen"]
    top_people = {e["id"] for e in story["top_entities"]}
    assert {"person:vladimir-putin", "person:maria-zakharova", "org:nato"} <= top_people
    assert {"geonames:660013", "geonames:2661886"} <= {p["id"] for p in story["top_places"]}


def test_quotes_survive_cuts_curly_quotes_and_apostrophes() -> None:
    liveblog = normalise_text((SAMPLES / "liveblog-fragment-2-26.txt").read_text(encoding="utf-8")).text
    spans = quoted_spans(liveblog)
    assert any(s.startswith("Finland's accession to @nato would have serious") for s in spans)
    assert any(s.startswith("should not base their security") for s in spans)


def test_shared_names_alone_without_time_proximity_do_not_join() -> None:
    events = {e.event_id: e for e in load_events()}
    article, liveblog = events["turku-port-fire.txt"], events["turku-port-fire.other-outlet.txt"]
    clusterer = StoryClusterer(StorySettings(max_gap_s=24 * 3600.0))
    first = clusterer.assign(article)
    later = StoryInput(liveblog.event_id, article.ts + 30 * 3600.0, liveblog.source, liveblog.text,
                       liveblog.entities, liveblog.places)
    assert clusterer.assign(later).story_id != first.story_id


def test_index_keys_are_content_derived_and_bounded() -> None:
    events = {e.event_id: e for e in load_events()}
    article = story_features(events["shared:russia-warns-finland-sweden.txt"])
    liveblog = story_features(events["shared:liveblog-fragment-2-26.txt"])
    a, b = index_keys(article), index_keys(liveblog)
    settings = StorySettings()
    assert len(a) <= settings.index_terms + settings.index_entities + settings.index_quotes
    assert set(a) & set(b)  # the two outlets meet under at least one key
    assert index_keys(story_features(events["shared:russia-warns-finland-sweden.txt"])) == a


def test_stock_quotes_are_not_distinctive_but_real_quotes_are() -> None:
    for stock in ("I don't think anybody saw it coming", "We have to wait and see what happens next",
                  "As far as I'm concerned it was going to be a difficult day",
                  "Time and time again we have said the same thing"):
        assert not distinctive_quote_shingles(f'The coach was asked about it. "{stock}," he said.')
    liveblog = normalise_text((SAMPLES / "liveblog-fragment-2-26.txt").read_text(encoding="utf-8")).text
    assert len(distinctive_quote_shingles(liveblog)) > 20


def test_state_round_trips_through_json(assigned: tuple[StoryClusterer, dict[str, str]]) -> None:
    clusterer, _ = assigned
    for story in clusterer.stories.values():
        state = json.loads(json.dumps(story.to_state()))
        assert StoryState.from_state(state) == story


def test_expire_drops_stale_stories_and_index_entries() -> None:
    clusterer = StoryClusterer()
    for item in load_events():
        clusterer.assign(item)
    last = max(s.last_seen for s in clusterer.stories.values())
    assert clusterer.expire(now=last + 73 * 3600.0) > 0
    assert not clusterer.stories and not clusterer.index


def test_top_names_split_places_by_id_and_put_the_watchlist_first_among_equals() -> None:
    clusterer = StoryClusterer()
    entities = ({"id": "ner:org:baltic-shipping-union", "name": "Baltic Shipping Union", "type": "org"},
                {"id": "org:nato", "name": "NATO", "type": "org"})
    places = ({"id": "nw:admin1:UA-43", "name": "Crimea", "country_code": "UA"},
              {"id": "geonames:660013", "name": "Finland", "country_code": "FI"})
    text = "The Baltic Shipping Union met NATO officials in Finland about Crimea on Monday."
    story = clusterer.stories[clusterer.assign(StoryInput("a", 1000.0, "wire", text, entities, places)).story_id]
    assert [e["id"] for e in story.top(False, 1)] == ["org:nato"]  # listed before found, at equal counts
    assert [e["id"] for e in story.top(False, 5)] == ["org:nato", "ner:org:baltic-shipping-union"]
    assert {p["id"] for p in story.top(True, 5)} == {"nw:admin1:UA-43", "geonames:660013"}


def test_a_text_naming_many_places_keeps_its_people_in_the_story() -> None:
    clusterer = StoryClusterer(StorySettings(max_story_entities=2))
    entities = ({"id": "person:maria-zakharova", "name": "Maria Zakharova", "type": "person"},
                {"id": "org:nato", "name": "NATO", "type": "org"})
    places = tuple({"id": f"geonames:{660013 + i}", "name": f"Place {i}", "country_code": "FI"} for i in range(5))
    text = "Maria Zakharova warned NATO about five places on Monday, the ministry said."
    story = clusterer.stories[clusterer.assign(StoryInput("a", 1000.0, "wire", text, entities, places)).story_id]
    assert {e["id"] for e in story.top(False, 5)} == {"person:maria-zakharova", "org:nato"}
    assert len(story.top(True, 5)) == 2


def test_the_shipped_join_threshold_is_the_one_chosen_with_the_shipped_coefficients() -> None:
    """bench/train_story_scorer.py picks join_threshold on held-out seeds for the coefficients it
    writes; the setting and config/newswire.yaml must ship that value, not an older one."""
    import orjson
    import yaml

    from tests.paths import REPO

    chosen = orjson.loads((REPO / "pipelines" / "data" / "story_scorer.json").read_bytes())["join_threshold"]
    config = yaml.safe_load((REPO / "config" / "newswire.yaml").read_text(encoding="utf-8"))
    assert StorySettings().join_threshold == chosen
    assert config["pipeline"]["stories"]["join_threshold"] == chosen


def test_stories_read_a_demonym_as_a_mention_of_its_country_as_before_nationalities() -> None:
    # Since 1.6 a demonym is in ``nationalities``; stories fold it back into the places, in the shape
    # enrichment wrote before, so that their decisions stay those measured.
    france = {"id": "geonames:3017382", "name": "France", "country_code": "FR", "feature": "country",
              "lat": 46.0, "lon": 2.0, "mentions": [{"start": 40, "end": 46, "text": "France"}]}
    oslo = {"id": "geonames:3143244", "name": "Oslo", "country_code": "NO", "feature": "city",
            "lat": 59.9, "lon": 10.7, "mentions": [{"start": 20, "end": 24, "text": "Oslo"}]}
    french = {"id": france["id"], "name": "France", "country_code": "FR",
              "mentions": [{"start": 0, "end": 6, "text": "French"}]}
    danish = {"id": "geonames:2623032", "name": "Denmark", "country_code": "DK",
              "mentions": [{"start": 30, "end": 36, "text": "Danish"}]}
    folded = places_with_nationalities({"places": [oslo, france], "nationalities": [french, danish]})
    assert [(p["id"], [m["text"] for m in p["mentions"]]) for p in folded] == [
        (france["id"], ["French", "France"]), (oslo["id"], ["Oslo"]), (danish["id"], ["Danish"])]
    assert folded[2]["feature"] == "country" and folded[0]["lat"] == 46.0
    assert places_with_nationalities({"places": [oslo]}) == (oslo,)
    event = {"event_id": "e1", "source": "s", "text": "x", "places": [oslo], "nationalities": [danish]}
    assert [p["id"] for p in StoryInput.from_event(event, 0.0).places] == [oslo["id"], danish["id"]]


def test_english_content_words_meet_by_stem_with_one_prior_per_stem() -> None:
    settings = StorySettings()
    voted = story_features(StoryInput("a", 0.0, "wire", "Councillors voted against the harbour levy.",
                                      title="Council voted down harbour levy", language="en"))
    voting = story_features(StoryInput("b", 0.0, "radio", "Voting on the harbour levies ended in defeat.",
                                       title="Harbour levies fail in council voting", language="en"))
    shared = set(voted.words) & set(voting.words)
    assert {stem("voted"), stem("harbour"), stem("levies")} <= shared
    assert stem("voted") == stem("voting") == "vote" and stem("levy") == stem("levies")
    for term in shared:  # one prior per stem, whichever form the report used
        assert voted.priors[term] == voting.priors[term] == stem_doc_freq(term, settings.unseen_doc_freq)
    assert stem_doc_freq(stem("voting"), settings.unseen_doc_freq) > stem_doc_freq(stem("levy"), settings.unseen_doc_freq)
    # unknown language reads as English; other languages keep the plural fold
    assert set(story_features(StoryInput("c", 0.0, "wire", "Councillors voted.")).words) == {"councillor", "vote"}
    french = story_features(StoryInput("d", 0.0, "wire", "Les conseillers votaient contre la taxe portuaire.",
                                       language="fr"))
    assert "conseiller" in french.words and "votaient" in french.words


def test_content_weighs_raw_term_frequency_and_text_mass_the_damped_one() -> None:
    item = StoryInput("a", 0.0, "wire", "The ferry operator cancelled crossings. Ferry crews met the ferry operator.",
                      title="Ferry crossings cancelled", language="en")
    features = story_features(item)
    rarity = Rarity()
    vecs = vectors(features, rarity)
    ferry, crews = stem("ferry"), stem("crews")
    idf = {t: rarity.idf(t, features.priors[t]) for t in features.words}
    assert features.words[ferry] > features.words[crews] > 0
    # raw tf: the ratio of two weights is the ratio of tf x idf, not of (1 + log tf) x idf
    ratio = (features.words[ferry] * idf[ferry]) / (features.words[crews] * idf[crews])
    assert vecs.text[ferry] / vecs.text[crews] == pytest.approx(ratio)
    damped = sum(((1 + math.log(tf)) * idf[t]) ** 2 for t, tf in features.words.items()) ** 0.5
    assert vecs.text_norm == pytest.approx(damped)


def test_one_shared_name_alone_is_weaker_name_evidence_than_several() -> None:
    town = {"id": "geonames:1", "name": "Harbourtown"}
    port = {"id": "geonames:2", "name": "Harbourtown Port"}
    mayor = {"id": "person:1", "name": "Edda Marsh"}
    settings = StorySettings()
    rarity = Rarity()

    def name_cos(places: tuple[dict, ...], entities: tuple[dict, ...]) -> float:
        first = StoryInput("a", 0.0, "wire", "Flood barriers went up along the quay.", tuple(entities), tuple(places))
        later = StoryInput("b", 3600.0, "radio", "Barriers held as the tide peaked.", tuple(entities), tuple(places))
        story = StoryState("s", 0.0, 0.0)
        ff = story_features(first, settings)
        story.add(first, ff, vectors(ff, rarity), settings)
        lf = story_features(later, settings)
        return story_evidence(lf, vectors(lf, rarity), later.ts, story)[FEATURES.index("name_cos")]

    assert name_cos((town,), ()) == pytest.approx(0.5)  # one name: k / (k + 1) = 1/2 of a cosine of 1
    assert name_cos((town, port), (mayor,)) == pytest.approx(0.75)
