"""Cross-lingual stories (issue 15): the demo's English, German and French storm reports join one
story through the real enrichment and RedisStoryStore (a real redis-server), reports in another
language that share only a country (or one city on another day) stay apart, and novelty stays per
language."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from connectors.redis import RedisServer, make_redis
from pipelines.stages.stories.crosslingual import (
    CROSS_FEATURES,
    cross_evidence,
    cross_features,
    default_cross_scorer,
    fold_profile,
    normalised_numbers,
    rare_names,
    translation_novelty,
    weekdays,
)
from pipelines.stages.stories.state import RedisStoryStore
from pipelines.stages.stories.transform import story_time_s
from pipelines.text.enrich import _models, enrich_event
from pipelines.text.language import detect_language
from pipelines.text.normalise import normalise_text
from tests.paths import REPO

DEMO = REPO / "docs" / "examples" / "demo-fragments.jsonl"
T0 = datetime.fromisoformat("2026-11-24T06:10:00+00:00").timestamp()
ARRIVED = T0 + 9 * 86400.0  # `newswire up --demo` days after the reports were published


@pytest.fixture(scope="module")
def models() -> tuple[Any, Any]:
    return _models("gazetteer", True)


def pipeline_event(n: int, fragment: dict[str, Any], models: tuple[Any, Any], arrived: float = ARRIVED) -> dict[str, Any]:
    """A fragment as Normalise -> Language -> Enrich hand it to the story stage, arriving at ``arrived``."""
    text = normalise_text(fragment["text"]).text
    guess = detect_language(text)
    event = {"event_id": f"{n:032x}", "source": fragment["source"], "title": fragment.get("title") or "",
             "text": text, "language": {"code": guess.code, "confidence": guess.confidence, "hint": None},
             "published_at": fragment.get("published_at"), "origin": {"timestamp_ms": int(arrived * 1000)}}
    return enrich_event(event, *models)


def demo_fragments() -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["id"]: r for r in rows if "id" in r}


def test_the_demo_storm_reports_in_three_languages_join_one_story(
        redis_server: RedisServer, redis_namespace: str, models: tuple[Any, Any]) -> None:
    demo = demo_fragments()
    store = RedisStoryStore(make_redis(redis_server.url), namespace=redis_namespace)
    events = [pipeline_event(i, demo[k], models) for i, k in enumerate(("wa-001", "ag-5512", "af-9001"))]
    assert [e["language"]["code"] for e in events] == ["en", "de", "fr"]
    # Scored on their publication times, as AssignStories does (the demo file gives all three).
    decisions = [store.assign(e, story_time_s(e)) for e in events]
    assert len({d.story_id for d in decisions}) == 1
    assert decisions[0].is_new and not decisions[1].is_new and not decisions[2].is_new
    assert decisions[-1].story["source_count"] == 3 and decisions[-1].story["event_count"] == 3
    # Novelty per language: the German and French reports retell the English one (no new number).
    assert decisions[0].novelty_ratio == 1.0
    assert decisions[1].novelty_ratio == 0.0 and decisions[2].novelty_ratio == 0.0


def test_a_same_country_report_in_another_language_stays_apart(
        redis_server: RedisServer, redis_namespace: str, models: tuple[Any, Any]) -> None:
    demo = demo_fragments()
    store = RedisStoryStore(make_redis(redis_server.url), namespace=redis_namespace)
    storm = store.assign(pipeline_event(0, demo["wa-001"], models), T0)
    # Same countries (Poland, Sweden), same weekday, an hour later: another event.
    other = {"source": "demo:agentur", "title": "Polen und Schweden unterzeichnen Energieabkommen",
             "text": "Die Regierungen von Polen und Schweden haben am Dienstag in Warschau ein Abkommen über "
                     "eine neue Stromleitung unterzeichnet. Die Leitung soll 2031 in Betrieb gehen und "
                     "rund 700 Megawatt übertragen, teilte das Wirtschaftsministerium mit."}
    decision = store.assign(pipeline_event(1, other, models), T0 + 3600)
    assert decision.is_new and decision.story_id != storm.story_id
    # A French report naming one city of the storm, two days later, about something else.
    later = {"source": "demo:agence", "title": "Gdansk : un nouveau musée maritime ouvre ses portes",
             "text": "Un musée consacré à l'histoire des chantiers navals a ouvert jeudi à Gdansk, en Pologne. "
                     "Il a coûté 45 millions d'euros, selon la mairie."}
    decision = store.assign(pipeline_event(2, later, models), T0 + 50 * 3600)
    assert decision.is_new and decision.story_id != storm.story_id


def test_a_country_alone_never_joins_two_languages() -> None:
    a = cross_evidence("en", "Poland votes", "Voters in Poland went to the polls on Tuesday, 12 of them early.",
                       [], [{"id": "geonames:798544", "feature": "country", "country_code": "PL"}])
    b = cross_evidence("de", "Polen", "In Polen wurde am Dienstag gewählt, 12 Parteien traten an.",
                       [], [{"id": "geonames:798544", "feature": "country", "country_code": "PL"}])
    profile: dict[str, Any] = {}
    fold_profile(profile, a)
    x = cross_features(b, profile, 0.0)
    assert x[CROSS_FEATURES.index("country_only")] == 1.0
    assert default_cross_scorer().probability(x) == 0.0


def test_a_city_matches_the_division_that_contains_it_once() -> None:
    # As the demo resolves them: German "Memel" -> Klaipėda city, French "Klaipeda" -> Klaipėda County.
    city = {"id": "geonames:598098", "feature": "city", "country_code": "LT", "admin1": "58", "lat": 55.71, "lon": 21.14}
    county = {"id": "nw:admin1:LT-KL", "feature": "admin1", "country_code": "LT", "admin1": None,
              "lat": 55.71, "lon": 21.135}
    near = {"id": "geonames:598316", "feature": "city", "country_code": "LT", "admin1": "58", "lat": 55.92, "lon": 21.07}
    abroad = {"id": "geonames:554234", "feature": "city", "country_code": "RU", "admin1": "23", "lat": 55.2, "lon": 21.3}
    profile: dict[str, Any] = {}
    fold_profile(profile, cross_evidence("de", "", "", [], [city, near]))
    assert cross_features(cross_evidence("fr", "", "", [], [county]), profile, 0.0)[0] == 0.25  # half a place
    profile = {}
    fold_profile(profile, cross_evidence("de", "", "", [], [abroad]))
    assert cross_features(cross_evidence("fr", "", "", [], [county]), profile, 0.0)[0] == 0.0


def test_language_independent_numbers_weekdays_and_names() -> None:
    assert normalised_numbers("200 000 foyers, 6,8 de magnitude, 3.000 personas, in 2026") == {"200000", "6.8", "3000"}
    assert normalised_numbers("200,000 homes, magnitude 6.8") == {"200000", "6.8"}
    assert weekdays("am Dienstagmorgen") == weekdays("mardi matin") == weekdays("on Tuesday") == {1}
    assert "yvette" in rare_names("Der Sturm, den Forscher Yvette nannten, traf Rügen.")
    assert "der" not in rare_names("Der Sturm traf Rügen.")


def test_a_translation_is_new_only_in_its_new_numbers() -> None:
    profile = {"numbers": ["130"]}
    new, old = translation_novelty(["Böen bis 130 km/h.", "Drei Fähren liegen fest, 42 Lastwagen warten."], profile)
    assert new == ["Drei Fähren liegen fest, 42 Lastwagen warten."] and old == ["Böen bis 130 km/h."]
