"""EvaluateAlerts in a real Beam pipeline (TestPipeline) with its state in the session's redis-server."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import pytest
import redis
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that

from connectors.redis import RedisServer
from core.alert_rules import AlertRules, parse_rules
from core.outage import OutageGaveUp
from core.records import ALERTS_KEY, iso_from_millis
from core.schemas import validate
from core.settings import Settings, load_settings
from pipelines.stages.alerts.transform import EvaluateAlerts, _Evaluate
from tests.harness import free_port
from tests.pipelines.beam_events import EventsOf

T0 = 1_764_000_000
NATO = {"id": "org:nato", "name": "NATO", "type": "org", "mentions": []}
FINLAND = {"id": "geonames:660013", "name": "Finland", "country_code": "FI", "feature": "country",
           "lat": 64.0, "lon": 26.0, "mentions": []}

RULES = parse_rules({"destinations": [{"name": "desk", "type": "slack", "url": "https://hooks.example/x"}],
                     "rules": [{"name": "nato-finland", "match": {"entity": "NATO", "place": "Finland"},
                                "window": "10m", "threshold": {"count": 3, "of": "sources"}, "cooldown": "1h",
                                "severity": "critical", "destinations": ["desk"]},
                               {"name": "any-nato", "match": {"entity": "NATO"}, "window": "10m",
                                "threshold": {"count": 100}}]})


def settings(redis_url: str, namespace: str) -> Settings:
    return load_settings(overrides={"redis.url": redis_url, "redis.namespace": namespace}, environ={})


def event(n: int, minutes: float, **fields: Any) -> dict[str, Any]:
    e = {"event_id": f"{n:032x}", "source": f"wire:{n}", "title": f"NATO and Finland {n}", "text": "NATO, Finland.",
         "received_at": iso_from_millis(round((T0 + minutes * 60) * 1000)), "url": None,
         "entities": [NATO], "places": [FINLAND], "duplicate_of": None,
         "origin": {"topic": "news.fragments", "partition": 0, "offset": n}, "_start": n, "_value": b"raw", "_key": None}
    e.update(fields)
    return e


def test_evaluate_alerts_in_a_pipeline(redis_server: RedisServer, redis_namespace: str) -> None:
    events = [event(1, 0), event(2, 1), event(3, 2, entities=[]), event(4, 3), event(5, 4)]

    def check(got: list[dict[str, Any]]) -> None:
        by_id = {e["event_id"]: e for e in got}
        assert len(got) == 5 and all(ALERTS_KEY in e for e in got)
        fired = [a for e in got for a in e[ALERTS_KEY]]
        assert len(fired) == 1, fired  # the third source that matches; event 3 has no NATO
        alert = fired[0]
        validate("alert", alert)
        carrier = next(e for e in got if e[ALERTS_KEY])
        assert carrier["entities"] and carrier["event_id"] in alert["event_ids"]
        assert alert["rule"] == "nato-finland" and alert["severity"] == "critical"
        assert alert["destinations"] == ["kafka", "desk"]
        assert alert["counts"] == {"events": 3, "stories": 3, "sources": 3}
        assert all(e["_value"] == b"raw" for e in by_id.values())  # private keys travel on

    with TestPipeline() as p:
        out = p | beam.Create(events) | EventsOf(EvaluateAlerts(settings(redis_server.url, redis_namespace),
                                                                rules=RULES))
        assert_that(out, check)


def test_a_replayed_bundle_gets_the_same_alerts(redis_server: RedisServer, redis_namespace: str) -> None:
    fn = _Evaluate(redis_server.url, RULES, redis_namespace)
    fn.setup()
    try:
        first = [next(iter(fn.process(event(n, n)))) for n in range(1, 5)]
        again = [next(iter(fn.process(event(n, n)))) for n in range(1, 5)]
    finally:
        fn.teardown()
    assert [len(e[ALERTS_KEY]) for e in first] == [0, 0, 1, 0]
    assert [e[ALERTS_KEY] for e in again] == [e[ALERTS_KEY] for e in first]


def test_rules_come_from_settings(redis_server: RedisServer, redis_namespace: str) -> None:
    s = settings(redis_server.url, redis_namespace)
    assert [r.name for r in EvaluateAlerts(s).rules.rules][:1] == ["nato-finland"]
    off = load_settings(overrides={"alerts.enabled": False}, environ={})
    assert EvaluateAlerts(off).rules == AlertRules()


def test_redis_down_longer_than_the_allowed_wait_fails_the_bundle() -> None:
    fn = _Evaluate(f"redis://127.0.0.1:{free_port()}/0", RULES, "t:")
    fn.outage_max_wait_s = 1.0
    fn.setup()
    try:
        with pytest.raises(OutageGaveUp) as err:
            next(iter(fn.process(event(1, 0))))
        assert isinstance(err.value.__cause__, redis.ConnectionError)
        # an event no rule matches needs no Redis and passes
        assert next(iter(fn.process(event(2, 0, entities=[], places=[]))))[ALERTS_KEY] == []
    finally:
        fn.teardown()


def test_a_running_stage_picks_up_an_edited_rules_file(redis_server: RedisServer, redis_namespace: str,
                                                       tmp_path: Any) -> None:
    import os

    from core.alert_rules import load_rules

    path = tmp_path / "alerts.yaml"
    path.write_text("version: 1\nrules: []\n")
    fn = _Evaluate(redis_server.url, load_rules(path), redis_namespace, str(path), reload_interval_s=0.01)
    fn.setup()
    try:
        status = rules_status(redis_server, redis_namespace)  # at set-up: the file is good, 0 rules
        assert (status["ok"], status["rules"], status["error"], status["path"]) == (True, 0, None, str(path))
        assert next(iter(fn.process(event(1, 0))))[ALERTS_KEY] == []
        path.write_text("version: 1\nrules:\n  - {name: nato, match: {entity: NATO}, window: 10m, threshold: {count: 1}}\n")
        os.utime(path, ns=(10**18, 10**18))
        import time
        time.sleep(0.02)
        assert [a["rule"] for a in next(iter(fn.process(event(2, 1))))[ALERTS_KEY]] == ["nato"]
        status = rules_status(redis_server, redis_namespace)
        assert (status["ok"], status["rules"], status["reloads"]) == (True, 1, 1) and status["loaded_at"]
        # a bad edit: the rule stays in force, and the status record (the console's) says why
        path.write_text("version: 1\nrules:\n  - {name: nato, match: {entity: NATO}, window: often, threshold: {count: 1}}\n")
        os.utime(path, ns=(2 * 10**18, 2 * 10**18))
        time.sleep(0.02)
        assert [a["rule"] for a in next(iter(fn.process(event(3, 2))))[ALERTS_KEY]] == []  # in cooldown, still evaluated
        status = rules_status(redis_server, redis_namespace)
        assert (status["ok"], status["rules"], status["failures"]) == (False, 1, 1) and "often" in status["error"]
    finally:
        fn.teardown()


def rules_status(server: RedisServer, namespace: str) -> dict[str, Any]:
    from connectors.status import ALERT_RULES, read_status

    client = redis.Redis.from_url(server.url)
    try:
        return read_status(client, namespace)[ALERT_RULES]
    finally:
        client.close()
