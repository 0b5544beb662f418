"""EntityTagger: watchlisted and unlisted names, one entity per person, offsets, modes and languages."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from pipelines.text.entities import Entity, EntityTagger
from pipelines.text.gazetteer import DEFAULT_GAZETTEER_DIR, Spans
from tests.paths import SAMPLES

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

REQUIRED = {
    "Vladimir Putin": "person", "Maria Zakharova": "person", "Joe Biden": "person",
    "Jens Stoltenberg": "person", "Volodymyr Zelensky": "person", "Dmitry Peskov": "person",
    "NATO": "org", "Kremlin": "org", "Pentagon": "org", "CNN": "org", "European Union": "org",
}


@pytest.fixture(scope="module")
def gazetteer_tagger() -> EntityTagger:
    return EntityTagger(mode="gazetteer")


@pytest.fixture(scope="module")
def spacy_tagger() -> EntityTagger:
    return EntityTagger(mode="spacy")


def _sample(name: str) -> str:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} not present (shared samples live next to the repository)")
    return path.read_text(encoding="utf-8")


def _by_name(entities: list[Entity]) -> dict[str, Entity]:
    return {e.name: e for e in entities}


def _assert_offsets(text: str, entities: list[Entity]) -> None:
    for e in entities:
        assert e.mentions, e
        for m in e.mentions:
            assert text[m.start:m.end] == m.text


@pytest.mark.parametrize("mode", ["gazetteer", "spacy"])
def test_article_lists_the_people_and_organisations_it_names(mode, gazetteer_tagger, spacy_tagger):
    tagger = gazetteer_tagger if mode == "gazetteer" else spacy_tagger
    text = _sample("russia-warns-finland-sweden.txt")
    entities = tagger.tag(text, "en")
    names = _by_name(entities)
    for name, etype in REQUIRED.items():
        assert name in names, f"{name} missing in {mode} mode: {sorted(names)}"
        assert names[name].type == etype
    assert any(n.startswith("Gitanas Naus") for n in names)
    _assert_offsets(text, entities)


def test_all_forms_of_a_name_are_one_entity_with_a_stable_id(gazetteer_tagger):
    text = _sample("russia-warns-finland-sweden.txt")
    putin = [e for e in gazetteer_tagger.tag(text, "en") if "Putin" in e.name]
    assert len(putin) == 1
    assert putin[0].id == "person:vladimir-putin"
    forms = {" ".join(m.text.split()) for m in putin[0].mentions}
    assert {"Putin", "Vladimir Putin"} <= forms
    # "President Vladimir Putin": the title is not part of the name, but the mention is found.
    president = text.index("President Vladimir Putin")
    assert any(m.start == president + len("President ") for m in putin[0].mentions)


def test_kremlin_is_the_government_not_a_place(gazetteer_tagger):
    kremlin = _by_name(gazetteer_tagger.tag("The Kremlin said on Friday it was ready to talk.", "en"))["Kremlin"]
    assert (kremlin.type, kremlin.id, kremlin.source) == ("org", "org:kremlin", "gazetteer")


def test_surname_alone_links_to_the_full_name_seen_earlier(gazetteer_tagger):
    text = "Boris Johnson spoke first. Later, Johnson declined to comment."
    johnson = _by_name(gazetteer_tagger.tag(text, "en"))["Boris Johnson"]
    assert [m.text for m in johnson.mentions] == ["Boris Johnson", "Johnson"]
    # Without the full name, a common surname is nobody in particular.
    assert gazetteer_tagger.tag("Johnson declined to comment.", "en") == []


def test_unlisted_person_found_by_ner_and_by_surname(spacy_tagger):
    text = ("Regional governor Olena Kovalchuk said the bridge at Zatoka would reopen on Monday. "
            "Kovalchuk added that the Odesa Port Authority had approved the repairs.")
    entities = spacy_tagger.tag(text, "en")
    people = [e for e in entities if e.type == "person"]
    assert len(people) == 1
    person = people[0]
    assert (person.id, person.name, person.source) == ("ner:person:olena-kovalchuk", "Olena Kovalchuk", "ner")
    assert [m.text for m in person.mentions] == ["Olena Kovalchuk", "Kovalchuk"]
    _assert_offsets(text, entities)


def test_gazetteer_mode_finds_titled_unlisted_people(gazetteer_tagger):
    text = "Deputy mayor Sofia Lindqvist said the ferry would run. Lindqvist gave no date."
    person = _by_name(gazetteer_tagger.tag(text, "en"))["Sofia Lindqvist"]
    assert person.source == "title" and person.id == "ner:person:sofia-lindqvist"
    assert len(person.mentions) == 2


def test_ner_only_runs_on_english(spacy_tagger):
    text = "Wladimir Putin warnte die NATO. Der Sprecher Anton Gruber aus Graz widersprach."
    entities = spacy_tagger.tag(text, "de")
    assert {e.source for e in entities} == {"gazetteer"}
    assert {"Vladimir Putin", "NATO"} <= set(_by_name(entities))


def test_tag_many_matches_tag(spacy_tagger):
    items = [("NATO Secretary General Jens Stoltenberg met Tomas Berglund in Oslo.", "en"),
             ("Le Kremlin a répondu à l'OTAN.", "fr"),
             ("", "en")]
    assert spacy_tagger.tag_many(items) == [spacy_tagger.tag(t, lang) for t, lang in items]


def test_span_overlap_check_agrees_with_a_scan_of_every_span():
    # Spans.overlaps looks at a few neighbours instead of every span: it must answer as the scan does,
    # nested, repeated and empty spans included.
    rng = random.Random(7)
    for _ in range(200):
        held = [(s, s + rng.choice([0, 1, 2, 5, 30])) for s in (rng.randrange(100) for _ in range(rng.randrange(12)))]
        spans = Spans(held[:3])
        for s, e in held[3:]:
            spans.add(s, e)
        for start in range(0, 110, 3):
            for end in (start, start + 1, start + 4, start + 40):
                assert spans.overlaps(start, end) == any(s < end and start < e for s, e in held), (held, start, end)


def test_dense_text_tags_every_repetition_alike(gazetteer_tagger):
    sentence = "NATO chief Jens Stoltenberg met Vladimir Putin in Moscow. Stoltenberg spoke first. "
    once = gazetteer_tagger.tag(sentence, "en")
    many = gazetteer_tagger.tag(sentence * 300, "en")
    assert [(e.id, len(e.mentions) * 300) for e in once] == [(e.id, len(e.mentions)) for e in many]
    assert [m.text for m in many[1].mentions[:3]] == ["Jens Stoltenberg", "Stoltenberg", "Jens Stoltenberg"]


def test_gold_fixtures_are_recalled(gazetteer_tagger):
    # Quality floor on the hand-written gold (bench/eval_entities.py prints the full P/R/F1).
    for path in sorted(FIXTURES.glob("entities_gold_*.json")):
        fixture = json.loads(path.read_text(encoding="utf-8"))
        entities = gazetteer_tagger.tag(_sample(fixture["sample"]), "en")
        found = {m.text.casefold() for e in entities for m in e.mentions} | {e.name.casefold() for e in entities}
        people = [g for g in fixture["entities"] if g["type"] == "person"]
        hits = [g for g in people if {n.casefold() for n in [g["name"], *g["aliases"]]} & found]
        assert len(hits) == len(people), (path.name, [g["name"] for g in people if g not in hits])


def test_ops_can_add_a_watchlist(tmp_path):
    gaz = tmp_path / "gazetteer"
    shutil.copytree(DEFAULT_GAZETTEER_DIR, gaz)
    (gaz / "ports.entities.yaml").write_text(
        "type: org\nentities:\n  - {name: Port of Tallinn, aliases: [Tallinna Sadam]}\n", encoding="utf-8")
    tagger = EntityTagger(gaz)
    port = _by_name(tagger.tag("Tallinna Sadam reported record traffic.", "en"))["Port of Tallinn"]
    assert port.id == "org:port-of-tallinn"
    assert port.to_dict()["mentions"] == [{"start": 0, "end": 14, "text": "Tallinna Sadam"}]


def test_bad_mode_and_bad_yaml_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="one of"):
        EntityTagger(mode="bert")
    gaz = tmp_path / "gazetteer"
    shutil.copytree(DEFAULT_GAZETTEER_DIR, gaz)
    (gaz / "extra.entities.yaml").write_text("entities:\n  - {name: Nobody}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="extra.entities.yaml.*type"):
        EntityTagger(gaz)
