"""AlertStateStore on the session's real redis-server: firing, cooldowns, bursts, replays, duplicates."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.redis import RedisServer, make_redis
from core.alert_rules import AlertRule, parse_rules
from core.records import iso_from_millis
from core.schemas import validate
from pipelines.stages.alerts.logic import Baseline, build_alert, ewma_update, smoothing
from pipelines.stages.alerts.state import AlertStateStore, Evaluation

T0 = 1_764_000_000  # 2025-11-24T16:00:00Z, on a 10-minute boundary
MIN = 60


@pytest.fixture
def store(redis_server: RedisServer, redis_namespace: str) -> Iterator[AlertStateStore]:
    """A store on a fresh namespace, its wall clock (``fired_at``) fixed."""
    s = AlertStateStore(make_redis(redis_server.url), namespace=redis_namespace, clock=lambda: 1_800_000_000.0)
    yield s
    s.client.close()


def one_rule(**spec: Any) -> AlertRule:
    body = {"name": "nato", "match": {"entity": "NATO"}, "window": "10m", **spec}
    return parse_rules({"rules": [body]}).rules[0]


def event(n: int, seconds: float, source: str | None = None, **fields: Any) -> dict[str, Any]:
    """Event number ``n``, received ``seconds`` after T0."""
    e = {"event_id": hashlib.blake2b(str(n).encode(), digest_size=16).hexdigest(), "source": source or f"wire:{n}",
         "title": f"NATO story {n}", "url": f"https://example.org/{n}", "text": "NATO.",
         "received_at": iso_from_millis(round((T0 + seconds) * 1000)),
         "entities": [{"id": "org:nato", "name": "NATO"}], "places": [], "duplicate_of": None}
    e.update(fields)
    return e


def run(store: AlertStateStore, rule: AlertRule, e: dict[str, Any]) -> Evaluation:
    (result,) = store.evaluate(e, [rule])
    return result


def statuses(store: AlertStateStore, rule: AlertRule, events: list[dict[str, Any]]) -> list[str]:
    return [run(store, rule, e).status for e in events]


# ------------------------------------------------------------------ threshold rules

def test_threshold_fires_once_then_cooldown_in_event_time_then_again(store: AlertStateStore) -> None:
    rule = one_rule(threshold={"count": 3}, cooldown="30m")
    # a burst of 6 events in 5 minutes: fires on the third, once
    first = statuses(store, rule, [event(i, i * MIN) for i in range(6)])
    assert first == ["counted", "counted", "fired", "counted", "counted", "counted"]
    # 20 minutes later (event time), still in the cooldown: 3 more in a fresh window, no alert
    assert "fired" not in statuses(store, rule, [event(10 + i, 20 * MIN + i * MIN) for i in range(3)])
    # after the cooldown (fired at +2m, cooldown 30m): the third event of a new run fires again
    assert statuses(store, rule, [event(20 + i, 40 * MIN + i * MIN) for i in range(3)])[-1] == "fired"


def test_the_alert_is_whole_and_valid(store: AlertStateStore) -> None:
    rule = one_rule(threshold={"count": 3, "of": "sources"}, title="NATO", destinations=["kafka"])
    events = [event(i, i * MIN, source=f"wire:{i % 2}") for i in range(4)] + [event(9, 5 * MIN, source="rss:x")]
    results = [run(store, rule, e) for e in events]
    assert [r.status for r in results] == ["counted"] * 4 + ["fired"]
    facts = results[-1].facts
    assert facts is not None
    alert = build_alert(rule, facts, events[-1])
    validate("alert", alert)
    assert alert["counts"] == {"events": 5, "stories": 5, "sources": 3}
    assert alert["window"] == {"start": iso_from_millis((T0 - 5 * MIN) * 1000),
                               "end": iso_from_millis((T0 + 5 * MIN) * 1000)}
    assert alert["fired_at"] == "2027-01-15T08:00:00.000Z"
    assert [e["event_id"] for e in alert["evidence"]] == [events[i]["event_id"] for i in (4, 3, 2, 1, 0)]
    assert alert["evidence"][0] == {"event_id": events[4]["event_id"], "title": "NATO story 9", "source": "rss:x",
                                    "url": "https://example.org/9", "received_at": events[4]["received_at"]}
    assert alert["event_ids"] == [events[i]["event_id"] for i in (4, 3, 2, 1, 0)]
    assert alert["summary"] == "NATO: 5 events from 3 sources in 10m (threshold 3 sources)"


def test_old_events_leave_the_window(store: AlertStateStore) -> None:
    rule = one_rule(threshold={"count": 3})
    # one event every 6 minutes: never 3 in 10 minutes
    assert "fired" not in statuses(store, rule, [event(i, i * 6 * MIN) for i in range(8)])


def test_late_events_are_not_counted(store: AlertStateStore) -> None:
    rule = one_rule(threshold={"count": 3})
    assert statuses(store, rule, [event(1, 60 * MIN), event(2, 61 * MIN)]) == ["counted", "counted"]
    assert run(store, rule, event(3, 45 * MIN)).status == "late"  # older than the window
    assert run(store, rule, event(4, 55 * MIN)).status == "fired"  # out of order but inside it


# ------------------------------------------------------------------ idempotency and duplicates

def test_the_same_event_twice_returns_the_same_alert_and_counts_once(store: AlertStateStore,
                                                                     redis_server: RedisServer,
                                                                     redis_namespace: str) -> None:
    rule = one_rule(threshold={"count": 3}, cooldown="0s")
    e0, e1, e2 = event(0, 0), event(1, MIN), event(2, 2 * MIN)
    assert statuses(store, rule, [e0, e0, e1, e1]) == ["counted", "replayed", "counted", "replayed"]
    fired = run(store, rule, e2)
    assert fired.status == "fired" and fired.facts is not None and fired.facts.counts["events"] == 3
    # a replay after a crash: another worker, a later wall clock; the same alert, nothing counted twice
    other = AlertStateStore(make_redis(redis_server.url), namespace=redis_namespace, clock=lambda: 1_900_000_000.0)
    again = run(other, rule, e2)
    assert again.status == "refired" and again.facts == fired.facts
    assert build_alert(rule, again.facts, e2) == build_alert(rule, fired.facts, e2)
    # cooldown 0: the next event fires a new alert, counting 4 events (not 5: e2 counted once)
    nxt = run(other, rule, event(3, 3 * MIN))
    assert nxt.status == "fired" and nxt.facts is not None and nxt.facts.counts["events"] == 4
    assert build_alert(rule, nxt.facts, event(3, 3 * MIN))["alert_id"] != build_alert(rule, fired.facts, e2)["alert_id"]


def test_duplicate_stories_count_once(store: AlertStateStore) -> None:
    rule = one_rule(threshold={"count": 3, "of": "stories"})
    original = event(0, 0)
    copies = [event(1, MIN, duplicate_of=original["event_id"]),
              event(2, 2 * MIN, near_duplicate_of=original["event_id"]),
              event(3, 3 * MIN, story_id="story-a"),
              event(4, 4 * MIN, story_id="story-a")]
    assert "fired" not in statuses(store, rule, [original, *copies])  # 2 stories: the original's and story-a
    result = run(store, rule, event(5, 5 * MIN, story_id="story-b"))
    assert result.status == "fired" and result.facts is not None
    assert result.facts.counts == {"events": 6, "stories": 3, "sources": 6}
    assert set(result.facts.story_ids) == {original["event_id"], "story-a", "story-b"}


def test_a_late_merge_folds_the_absorbed_story_into_its_survivor(store: AlertStateStore) -> None:
    rule = one_rule(threshold={"count": 3, "of": "stories"})

    def of(story_id: str, *merged_from: str) -> dict[str, Any]:
        return {"story_id": story_id, "story": {"merged_from": list(merged_from)} if merged_from else {}}

    early = [event(0, 0, **of("story-a")), event(1, MIN, **of("story-b"))]
    merging = event(2, 2 * MIN, **of("story-b", "story-a"))  # story-a turned out to be story-b
    # an event of story-a emitted before the merge, delivered after it; a replay of the merging event
    late_absorbed = event(3, 3 * MIN, **of("story-a"))
    assert statuses(store, rule, [*early, merging, late_absorbed, merging]) == ["counted"] * 4 + ["replayed"]
    assert run(store, rule, event(4, 4 * MIN, **of("story-c"))).status == "counted"  # 2 stories, not 3
    result = run(store, rule, event(5, 5 * MIN, **of("story-d")))
    assert result.status == "fired" and result.facts is not None
    assert result.facts.counts == {"events": 6, "stories": 3, "sources": 6}
    assert set(result.facts.story_ids) == {"story-b", "story-c", "story-d"}


# ------------------------------------------------------------------ bursts

def feed_windows(store: AlertStateStore, rule: AlertRule, counts: list[int], start: int = 0) -> list[Evaluation]:
    """``counts[k]`` events spread over the k-th 10-minute window after T0 (window ``start`` first)."""
    out, n = [], 1000 * start
    for k, count in enumerate(counts):
        for i in range(count):
            n += 1
            out.append(run(store, rule, event(n, (start + k) * 10 * MIN + (i + 0.5) * 600 / count,
                                              source=f"wire:{n % 7}")))
    return out


def test_burst_fires_on_a_spike_once_and_reports_the_baseline(store: AlertStateStore) -> None:
    rule = one_rule(burst={"z": 3.0, "min_count": 5, "baseline_halflife": "1h"}, cooldown="10m")
    quiet = [2, 1, 2, 3, 1, 2, 2, 1]
    assert "fired" not in [r.status for r in feed_windows(store, rule, quiet)]
    spike = feed_windows(store, rule, [20], start=len(quiet))
    assert [r.status for r in spike].count("fired") == 1
    fired = next(r for r in spike if r.status == "fired")
    assert fired.facts is not None and fired.facts.kind == "burst"
    # the Lua baseline is pipelines.stages.alerts.logic' math: the first (partial) window is skipped
    alpha, b = smoothing(600, 3600), Baseline()
    for count in quiet[1:]:
        b = ewma_update(b, count, alpha)
    baseline = fired.facts.baseline
    assert baseline is not None and baseline["mean"] == pytest.approx(b.mean, rel=1e-9)
    assert fired.facts.counts["events"] == 5 and baseline["z"] >= 3.0  # fires as soon as it is a burst
    assert fired.facts.window_start_ms == (T0 + len(quiet) * 600) * 1000
    assert fired.facts.window_end_ms == fired.facts.window_start_ms + 600_000
    alert = build_alert(rule, fired.facts, event(0, 0))
    validate("alert", alert)
    assert alert["kind"] == "burst" and f"(baseline {b.mean:.1f}/10m, z=" in alert["summary"]


def test_burst_stays_quiet_on_steady_high_volume(store: AlertStateStore) -> None:
    rule = one_rule(burst={"z": 3.0, "min_count": 5, "baseline_halflife": "1h"})
    steady = [50, 48, 52, 50, 47, 53, 50, 49, 51, 50, 52, 48]
    assert "fired" not in [r.status for r in feed_windows(store, rule, steady)]


def test_burst_baseline_decays_across_empty_windows(store: AlertStateStore) -> None:
    rule = one_rule(burst={"z": 3.0, "min_count": 5, "baseline_halflife": "1h"}, cooldown="10m")
    feed_windows(store, rule, [10, 10, 10, 10])
    # 3 hours of silence (18 windows = 3 half-lives): the mean of 10 decays to 1.25, and the drop
    # itself widens the std (sqrt of var = 0.125 * 100 * 0.875), so 12 events are a burst (z >= 3)
    later = feed_windows(store, rule, [15], start=4 + 18)
    fired = [r for r in later if r.status == "fired"]
    assert len(fired) == 1 and fired[0].facts is not None and fired[0].facts.baseline is not None
    alpha = smoothing(600, 3600)
    assert fired[0].facts.baseline["mean"] == pytest.approx(10 * (1 - alpha) ** 18, rel=1e-9)
    assert fired[0].facts.baseline["std"] == pytest.approx((0.125 * 100 * 0.875) ** 0.5, rel=1e-9)
    assert fired[0].facts.counts["events"] == 12


def test_state_survives_a_new_store_on_another_connection(redis_server: RedisServer, redis_namespace: str) -> None:
    rule = one_rule(threshold={"count": 2}, cooldown="1h")
    first = AlertStateStore(make_redis(redis_server.url), namespace=redis_namespace)
    assert statuses(first, rule, [event(0, 0), event(1, MIN)]) == ["counted", "fired"]
    restarted = AlertStateStore(make_redis(redis_server.url), namespace=redis_namespace)
    assert statuses(restarted, rule, [event(2, 2 * MIN), event(3, 3 * MIN)]) == ["counted", "counted"]  # cooldown
    assert run(restarted, rule, event(4, 62 * MIN)).status == "counted"  # a new window: 1 event
    assert run(restarted, rule, event(5, 63 * MIN)).status == "fired"


def test_keys_expire_and_stay_in_the_namespace(store: AlertStateStore, redis_namespace: str) -> None:
    rule = one_rule(threshold={"count": 1})
    run(store, rule, event(0, 0))
    keys = store.client.keys(f"{redis_namespace}*")
    names = [k.decode() if isinstance(k, bytes) else k for k in keys]
    assert len(names) == 7 and all(k.startswith(f"{redis_namespace}al:{{nato}}:") for k in names)
    assert all(0 < store.client.pttl(k) for k in keys)


def test_a_redis_restart_that_empties_the_script_cache_is_survived(store: AlertStateStore) -> None:
    """SCRIPT FLUSH stands in for a restart: the evaluation loads the script again and still counts
    each event once (the rule fires on the third, as without the flush)."""
    rule = one_rule(threshold={"count": 3})
    assert statuses(store, rule, [event(1, 0), event(2, MIN)]) == ["counted", "counted"]
    store.client.script_flush()
    assert statuses(store, rule, [event(2, MIN), event(3, 2 * MIN)]) == ["replayed", "fired"]
