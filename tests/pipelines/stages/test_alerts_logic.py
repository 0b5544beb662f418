"""Alert rules without Redis: config validation messages, matching, burst math, alert documents."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.alert_rules import (
    AlertConfigError,
    Burst,
    describe,
    format_duration,
    load_rules,
    parse_duration,
    parse_rules,
)
from core.schemas import validate, validator
from core.settings import ConfigError, load_settings
from pipelines.stages.alerts.logic import (
    Baseline,
    FiredFacts,
    alert_id,
    baseline_std,
    build_alert,
    ewma_decay,
    ewma_update,
    is_burst,
    matched_terms,
    matches,
    smoothing,
    story_member,
    z_score,
)
from tests.paths import REPO

CONFIG = REPO / "config" / "alerts.yaml"
EXAMPLE = REPO / "docs" / "examples" / "alerts-with-webhooks.yaml"  # the same rules plus two webhooks

NATO = {"id": "org:nato", "name": "NATO", "type": "org", "mentions": []}
FINLAND = {"id": "geonames:660013", "name": "Finland", "country_code": "FI", "feature": "country",
           "lat": 64.0, "lon": 26.0, "mentions": []}
HELSINKI = {"id": "geonames:658225", "name": "Helsinki", "country_code": "FI", "feature": "city",
            "lat": 60.1695, "lon": 24.9354, "mentions": []}
BUCHA = {"id": "geonames:711660", "name": "Bucha", "country_code": "UA", "feature": "city",
         "lat": 50.5435, "lon": 30.2128, "mentions": []}
UKRAINE = {"id": "geonames:690791", "name": "Ukraine", "country_code": "UA", "feature": "country",
           "lat": 49.0, "lon": 32.0, "mentions": []}


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"event_id": "a" * 32, "source": "rss:yle", "title": "Headline", "text": "Body.",
                            "language": {"code": "en", "confidence": 0.9}, "received_at": "2026-11-24T06:10:00Z",
                            "entities": [], "places": [], "url": "https://example.org/a", "duplicate_of": None}
    base.update(fields)
    return base


def rule(match: dict[str, Any], **spec: Any) -> Any:
    body = {"name": "r", "match": match, "window": "10m", "threshold": {"count": 1}, **spec}
    return parse_rules({"rules": [body]}).rules[0]


def config_error(mutate: Any) -> str:
    raw = yaml.safe_load(EXAMPLE.read_text())
    mutate(raw)
    with pytest.raises(AlertConfigError) as err:
        parse_rules(raw, origin="config/alerts.yaml")
    return str(err.value)


# ------------------------------------------------------------------ the shipped file and the settings

def test_shipped_rules_load_and_validate() -> None:
    rules = load_rules(CONFIG)
    names = [r.name for r in rules.rules]
    assert names == ["nato-finland", "kyiv-strikes", "nordic-airspace", "baltic-sea-burst"]  # one is disabled
    assert {r.kind for r in rules.rules} == {"threshold", "burst"}
    assert rules.destinations == ()  # nothing is posted anywhere until someone configures it
    example = load_rules(EXAMPLE)
    assert [r.name for r in example.rules] == names
    assert [d.name for d in example.destinations] == ["desk-slack", "ops-webhook"]
    assert example.destinations[1].timeout_s == 5.0 and example.destinations[1].headers == {"X-Team": "newsdesk"}


def test_settings_resolve_the_rules_path_beside_the_config_file(tmp_path: Path) -> None:
    assert load_settings(environ={}).alerts.rules_path == CONFIG
    cfg = tmp_path / "newswire.yaml"
    raw = yaml.safe_load((REPO / "config" / "newswire.yaml").read_text())
    raw["alerts"] = {"rules_path": "my-rules.yaml", "enabled": False}
    cfg.write_text(yaml.safe_dump(raw))
    alerts = load_settings(cfg, environ={}).alerts
    assert alerts.rules_path == tmp_path / "my-rules.yaml" and not alerts.enabled
    raw["alerts"] = {"rules": "x"}
    cfg.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="alerts"):
        load_settings(cfg, environ={})


def test_schema_is_valid_draft_2020_12() -> None:
    validator("alerts-config")
    validator("alert")


# ------------------------------------------------------------------ validation messages

@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["rules"][0].update(window="10 minutes"),
     "config/alerts.yaml: rule 'nato-finland': 'window' must be a duration like 10m, got '10 minutes'"),
    (lambda d: d["rules"][0].update(cooldown=30),
     "config/alerts.yaml: rule 'nato-finland': 'cooldown' must be a duration like 10m, got 30"),
    (lambda d: d["rules"][1].update(treshold={"count": 2}),
     "config/alerts.yaml: rule 'kyiv-strikes': unknown key 'treshold' (expected one of: name, title"),
    (lambda d: d["rules"][2]["match"]["all"][0].update(country="Finland"),
     "config/alerts.yaml: rule 'nordic-airspace': 'match.all.0.country' must be an ISO 3166-1 alpha-2 code like FI"),
    (lambda d: d["rules"][2]["match"]["all"][0].update(country=["FI", False]),  # what YAML makes of a bare NO
     ("config/alerts.yaml: rule 'nordic-airspace': 'match.all.0.country.1' must be an ISO 3166-1 alpha-2 code "
      "like FI, got False")),
    (lambda d: d["rules"][0].update(destinations=["pager"]),
     "config/alerts.yaml: rule 'nato-finland': 'destinations': 'pager' is not defined under destinations:"),
    (lambda d: d["rules"][0].update(burst={"z": 3}),
     "config/alerts.yaml: rule 'nato-finland': set exactly one of 'threshold'"),
    (lambda d: d["rules"][0].pop("threshold"),
     "config/alerts.yaml: rule 'nato-finland': set exactly one of 'threshold'"),
    (lambda d: d["rules"][3]["burst"].update(baseline_halflife="5m"),
     "config/alerts.yaml: rule 'baltic-sea-burst': 'burst.baseline_halflife' (5m) must be at least the window"),
    (lambda d: d["rules"][0]["match"].update(near={"lat": 95, "lon": 0, "km": 10}),
     "config/alerts.yaml: rule 'nato-finland': 'match.near.lat': 95 is greater than the maximum of 90"),
    (lambda d: d["rules"][0].update(severity="urgent"),
     "config/alerts.yaml: rule 'nato-finland': 'severity': 'urgent' is not one of"),
    (lambda d: d["rules"][0].update(threshold={"count": 0}),
     "config/alerts.yaml: rule 'nato-finland': 'threshold.count': 0 is less than the minimum of 1"),
    (lambda d: d["rules"][0].update(match={}),
     "config/alerts.yaml: rule 'nato-finland': 'match': {} should be non-empty"),
    (lambda d: d["rules"][0]["match"].update(keyword=" "),
     "config/alerts.yaml: rule 'nato-finland': 'match.keyword' must be a non-empty string or a list of them"),
    (lambda d: d["rules"][1].update(name="nato-finland"),
     "config/alerts.yaml: rule 'nato-finland' is defined twice"),
    (lambda d: d["rules"][0].pop("window"),
     "config/alerts.yaml: rule 'nato-finland': 'window' is a required property"),
    (lambda d: d["rules"][0].update(name="NATO Finland"),
     "config/alerts.yaml: rule 'NATO Finland': 'name' must be 1-64 lower-case letters"),
    (lambda d: d["destinations"][0].update(url="ftp://x"),
     "config/alerts.yaml: destination 'desk-slack': 'url' must be an http:// or https:// URL, got 'ftp://x'"),
    (lambda d: d["destinations"][0].update(type="teams"),
     "config/alerts.yaml: destination 'desk-slack': 'type': 'teams' is not one of ['json', 'slack']"),
    (lambda d: d["destinations"].append(dict(d["destinations"][0])),
     "config/alerts.yaml: destination 'desk-slack' is defined twice"),
    (lambda d: d.update(rule=[]),
     "config/alerts.yaml: unknown key 'rule' (expected one of: version, destinations, rules)"),
])
def test_config_errors_name_file_rule_and_key(mutate: Any, message: str) -> None:
    assert config_error(mutate).startswith(message)


def test_load_rules_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(AlertConfigError, match="file not found"):
        load_rules(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(AlertConfigError, match="not valid YAML"):
        load_rules(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_rules(empty).rules == ()


def test_cooldown_defaults_to_the_window_and_destinations_keep_kafka_first() -> None:
    r = parse_rules({"destinations": [{"name": "d", "url": "https://x"}],
                     "rules": [{"name": "r", "match": {"entity": "NATO"}, "window": "1h30m",
                                "threshold": {"count": 2}, "destinations": ["d", "kafka", "d"]}]}).rules[0]
    assert r.window_s == r.cooldown_s == 5400.0
    assert r.destinations == ("d", "kafka")


@pytest.mark.parametrize("text,seconds", [("10m", 600), ("6h", 21600), ("1h30m", 5400), ("500ms", 0.5),
                                          ("2d", 172800), ("1.5h", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_durations_and_formatting() -> None:
    for bad in ("10 minutes", "10", "m", "", "10x"):
        with pytest.raises(ValueError, match="must be a duration like 10m"):
            parse_duration(bad)
    assert [format_duration(s) for s in (600, 21600, 90, 0.5)] == ["10m", "6h", "90s", "0.5s"]


# ------------------------------------------------------------------ matching

def test_entities_match_by_id_or_name_any_case() -> None:
    e = event(entities=[NATO])
    assert matches(rule({"entity": "NATO"}), e)
    assert matches(rule({"entity": "nato"}), e)
    assert matches(rule({"entity": "org:nato"}), e)
    assert matches(rule({"entity": ["Kremlin", "NATO"]}), e)
    assert not matches(rule({"entity": "Kremlin"}), e)
    assert not matches(rule({"entity": "NATO"}), event())


def test_places_by_id_name_country_and_radius() -> None:
    e = event(places=[FINLAND, HELSINKI])
    assert matches(rule({"place": "Finland"}), e)
    assert matches(rule({"place": "geonames:658225"}), e)
    assert matches(rule({"country": "fi"}), e)
    assert not matches(rule({"country": ["SE", "NO"]}), e)
    helsinki_50km = {"near": {"lat": 60.17, "lon": 24.94, "km": 50}}
    assert matches(rule(helsinki_50km), e)
    assert not matches(rule(helsinki_50km), event(places=[BUCHA]))
    # Bucha is ~25 km from Kyiv's centre; Ukraine's centroid is not a place "near Kyiv"
    kyiv = {"near": {"lat": 50.4501, "lon": 30.5234, "km": 30, "name": "Kyiv"}}
    assert matches(rule(kyiv), event(places=[BUCHA]))
    assert not matches(rule({"near": {"lat": 50.4501, "lon": 30.5234, "km": 10}}), event(places=[BUCHA]))
    assert not matches(rule({"near": {"lat": 49.0, "lon": 32.0, "km": 5}}), event(places=[UKRAINE]))
    # A country named only by its demonym ("Finnish officials") is a nationality, not a place.
    finnish = {"id": FINLAND["id"], "name": "Finland", "country_code": "FI",
               "mentions": [{"start": 0, "end": 7, "text": "Finnish"}]}
    assert not matches(rule({"country": "FI"}), event(nationalities=[finnish]))
    assert not matches(rule({"place": "Finland"}), event(nationalities=[finnish]))


def test_keywords_are_whole_words_any_case_on_title_and_text() -> None:
    r = rule({"keyword": ["air raid", "NATO"]})
    assert matches(r, event(text="Sirens: an AIR  RAID warning in Kyiv."))
    assert matches(r, event(title="Air raid in Lviv", text="Nothing here."))
    assert matches(r, event(text="A nato summit."))
    assert not matches(r, event(text="The air raider and the natos."))
    assert not matches(r, event(text="Chair raids."))
    assert matches(rule({"keyword": "Kyiv's"}), event(text="In Kyiv's centre."))


def test_a_keyword_matches_beyond_ascii_as_the_pattern_does_and_names_its_first_match() -> None:
    # ASCII texts without a keyword's first word skip the pattern (keyword_heads); any other text
    # runs it, so what re.IGNORECASE equates beyond str.lower still matches: the long s and the
    # Kelvin sign match "s" and "k", the dotted capital I matches "i" (lower() makes it "i̇").
    r = rule({"keyword": ["airspace", "kyiv"]})
    assert matches(r, event(text="An AIR\u017fPACE violation."))
    assert matches(r, event(text="Strikes on \u212ayiv overnight."))
    assert matches(rule({"keyword": "ice"}), event(text="\u0130CE on the roads."))
    assert not matches(r, event(text="Air space and Kiev, plain ASCII."))
    assert not matches(r, event(text="Air space, Kiev and a caf\u00e9."))
    terms = matched_terms(rule({"keyword": ["air raid", "NATO"]}).match,
                          event(title="Nato says", text="An air raid, then NATO again."))
    assert terms == [("keyword", "nato", "Nato")]


def test_languages_and_source_globs() -> None:
    assert matches(rule({"language": ["fi", "en"]}), event())
    assert not matches(rule({"language": "fi"}), event())
    assert matches(rule({"source": "rss:*"}), event())
    assert matches(rule({"source": ["wire:*", "rss:y?e"]}), event())
    assert not matches(rule({"source": "wire:*"}), event())


def test_all_any_not_nest() -> None:
    cond = {"all": [{"entity": "NATO"},
                    {"any": [{"place": "Finland"}, {"keyword": "Baltic"}]},
                    {"not": {"any": [{"source": "rss:tabloid*"}, {"language": "und"}]}}]}
    r = rule(cond)
    assert matches(r, event(entities=[NATO], places=[FINLAND]))
    assert matches(r, event(entities=[NATO], text="Exercises in the Baltic."))
    assert not matches(r, event(entities=[NATO]))
    assert not matches(r, event(entities=[NATO], places=[FINLAND], source="rss:tabloid-x"))
    assert not matches(r, event(entities=[NATO], places=[FINLAND], language={"code": "und", "confidence": 0}))
    # several keys in one mapping: all of them
    assert matches(rule({"entity": "NATO", "place": "Finland"}), event(entities=[NATO], places=[FINLAND]))
    assert not matches(rule({"entity": "NATO", "place": "Finland"}), event(entities=[NATO]))
    assert matches(rule({"not": {"entity": "NATO"}}), event())


def test_describe_makes_the_summary_label() -> None:
    assert describe(rule({"entity": "NATO", "place": "Finland"}).match) == "NATO + Finland"
    label = describe(rule({"any": [{"entity": "NATO"}, {"all": [{"country": "FI"}, {"not": {"language": "fi"}}]}]}).match)
    assert label == "NATO or (country FI + not language fi)"


# ------------------------------------------------------------------ burst math

def test_ewma_matches_the_definition_step_by_step() -> None:
    alpha = smoothing(600, 6 * 3600)
    assert alpha == pytest.approx(1 - 0.5 ** (1 / 36))
    b = ewma_update(Baseline(), 4, alpha)
    assert b == Baseline(4.0, 0.0, 1)  # the first closed window sets the mean
    xs = [4, 6, 3, 5, 8, 2]
    mean, var = 4.0, 0.0
    for x in xs[1:]:
        b = ewma_update(b, x, alpha)
        diff = x - mean
        mean, var = mean + alpha * diff, (1 - alpha) * (var + alpha * diff * diff)
    assert (b.mean, b.var, b.windows) == (pytest.approx(mean), pytest.approx(var), 6)


def test_decay_across_empty_windows_equals_updates_with_zero() -> None:
    alpha = smoothing(600, 3600)
    b = Baseline(12.0, 9.0, 10)
    stepped = b
    for _ in range(7):
        stepped = ewma_update(stepped, 0, alpha)
    jumped = ewma_decay(b, 7, alpha)
    assert (jumped.mean, jumped.var, jumped.windows) == (pytest.approx(stepped.mean), pytest.approx(stepped.var), 17)
    assert jumped.mean == pytest.approx(12 * 0.5 ** (7 / 6))  # 7 windows of 10m = 70m = 7/6 half-lives
    assert ewma_decay(Baseline(), 3, alpha) == Baseline(0.0, 0.0, 3)
    assert ewma_decay(b, 0, alpha) == b


def test_z_score_has_a_poisson_floor_so_steady_volume_is_quiet() -> None:
    steady = Baseline(50.0, 0.01, 20)
    assert baseline_std(steady) == pytest.approx(math.sqrt(50))
    assert z_score(55, steady) < 1
    quiet = Baseline(0.8, 0.5, 20)  # std floored at 1
    assert z_score(20, quiet) == pytest.approx(19.2)
    burst = Burst(z=3.0, min_count=5)
    assert is_burst(20, quiet, burst)
    assert not is_burst(4, Baseline(0.1, 0.0, 20), burst)  # below min_count
    assert not is_burst(55, steady, burst)
    assert not is_burst(50, Baseline(), burst)  # no baseline yet


# ------------------------------------------------------------------ alert documents

def facts(**over: Any) -> FiredFacts:
    evidence = ({"event_id": "b" * 32, "title": "NATO jets over Finland", "source": "rss:yle", "url": None,
                 "received_at": "2025-11-24T16:05:00Z"},)
    base: dict[str, Any] = {
        "kind": "burst", "event_id": "b" * 32, "window_start_ms": 1_764_000_000_000,
        "window_end_ms": 1_764_000_600_000, "fired_at_ms": 1_764_000_300_000,
        "counts": {"events": 20, "stories": 9, "sources": 7}, "baseline": {"mean": 1.2, "std": 2.24, "z": 8.4},
        "event_ids": ("b" * 32, "a" * 32), "story_ids": ("s1", "s2"), "evidence": evidence}
    return FiredFacts(**{**base, **over})


def test_build_alert_validates_and_reads_well() -> None:
    r = parse_rules({"destinations": [{"name": "desk", "type": "slack", "url": "https://hooks.example/x"}],
                     "rules": [{"name": "nato-finland", "match": {"entity": "NATO", "place": "Finland"},
                                "window": "10m", "burst": {}, "severity": "critical",
                                "destinations": ["desk"]}]}).rules[0]
    e = event(event_id="b" * 32, entities=[NATO], places=[FINLAND, HELSINKI])
    alert = build_alert(r, facts(), e)
    validate("alert", alert)
    assert not list(validator("alert").iter_errors(alert))
    assert alert["summary"] == "NATO + Finland: 20 events from 7 sources in 10m (baseline 1.2/10m, z=8.4)"
    assert alert["destinations"] == ["kafka", "desk"]
    assert alert["matched"] == {"entities": [{"id": "org:nato", "name": "NATO"}],
                                "places": [{"id": "geonames:660013", "name": "Finland"}], "keywords": []}
    assert alert["window"] == {"start": "2025-11-24T16:00:00.000Z", "end": "2025-11-24T16:10:00.000Z"}
    assert alert["alert_id"] == alert_id("nato-finland", 1_764_000_000_000, "b" * 32)
    assert build_alert(r, facts(), copy.deepcopy(e)) == alert  # deterministic: a replay rebuilds it


def test_threshold_alert_summary_and_schema() -> None:
    r = rule({"keyword": "air raid"}, title="Air raids", threshold={"count": 3, "of": "stories"})
    alert = build_alert(r, facts(kind="threshold", baseline=None, counts={"events": 4, "stories": 3, "sources": 1}),
                        event(text="An air raid."))
    validate("alert", alert)
    assert alert["summary"] == "Air raids: 4 events (3 stories) from 1 source in 10m (threshold 3 stories)"
    assert alert["matched"]["keywords"] == ["air raid"] and alert["baseline"] is None


def test_story_member_collapses_duplicates() -> None:
    assert story_member(event(story_id="s9")) == "s9"
    assert story_member(event(duplicate_of="c" * 32)) == "c" * 32
    assert story_member(event(near_duplicate_of="d" * 32)) == "d" * 32
    assert story_member(event(update_of="e" * 32)) == "e" * 32  # a page's update: the page's story
    assert story_member(event(update_of="e" * 32, story_id="s9")) == "s9"
    assert story_member(event()) == "a" * 32
