"""The alert stage's logic: matching events against rules, burst math, alert documents.

Pure functions and frozen dataclasses (no Beam, no Redis): the rules come from config/alerts.yaml
through core/alert_rules.py, ``state.py`` beside this file keeps the windows, baselines and
cooldowns in Redis, and ``transform.py`` wraps both for Beam.
The rule language, the burst math and the alert fields are described in docs/alerts.md.

Burst baseline (per rule, over closed windows of ``window`` length, aligned to the epoch)::

    alpha = 1 - 0.5 ** (window / baseline_halflife)
    diff = x - mean;  mean += alpha * diff;  var = (1 - alpha) * (var + diff * alpha * diff)
    n empty windows at once: d = (1 - alpha) ** n;  var = d * (var + mean**2 * (1 - d));  mean *= d
    z = (x - mean) / max(sqrt(var), sqrt(mean), 1)

The first closed full window sets the mean (an EWMA started at 0 would need many windows to reach
a steady rate, and flag it as a burst meanwhile); the first, partial window a rule ever sees is not
used at all. The std floor ``sqrt(mean)`` is the Poisson noise of a count: a steady stream has a
near-zero EWMA variance, and without the floor every small wobble would be many sigmas.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.alert_rules import (
    ALERT_SCHEMA,
    AREA_FEATURES,
    KAFKA_DESTINATION,
    MAX_EVIDENCE,
    MAX_TITLE_CHARS,
    AlertRule,
    AllOf,
    AnyOf,
    Burst,
    Condition,
    CountryCondition,
    EntityCondition,
    KeywordCondition,
    LanguageCondition,
    NearCondition,
    Not,
    PlaceCondition,
    SourceCondition,
    format_duration,
)
from core.records import iso_from_millis
from pipelines.text.places import distance_km

# --------------------------------------------------------------------------- matching

#: What made a leaf match: (kind, id, name), e.g. ("entity", "org:nato", "NATO").
Term = tuple[str, str, str]


def matches(rule: AlertRule, event: Mapping[str, Any]) -> bool:
    """Whether ``event`` (an in-flight or enriched event dict) matches the rule's conditions."""
    return matched_terms(rule.match, event) is not None


def matched_terms(cond: Condition, event: Mapping[str, Any]) -> list[Term] | None:
    """None when ``cond`` does not match; else the entities, places, keywords... that made it match
    (none from inside a ``not``)."""
    if isinstance(cond, AllOf):
        found: list[Term] = []
        for part in cond.parts:
            terms = matched_terms(part, event)
            if terms is None:
                return None
            found += terms
        return found
    if isinstance(cond, AnyOf):
        results = [t for t in (matched_terms(p, event) for p in cond.parts) if t is not None]
        return [term for terms in results for term in terms] if results else None
    if isinstance(cond, Not):
        return [] if matched_terms(cond.part, event) is None else None
    terms = _leaf_terms(cond, event)
    return terms or None


def _leaf_terms(cond: Condition, event: Mapping[str, Any]) -> list[Term]:
    if isinstance(cond, EntityCondition):
        wanted = {v.casefold() for v in cond.values}
        return [("entity", e["id"], e["name"]) for e in event.get("entities") or ()
                if e["id"].casefold() in wanted or e["name"].casefold() in wanted]
    if isinstance(cond, PlaceCondition):
        wanted = {v.casefold() for v in cond.values}
        return [("place", p["id"], p["name"]) for p in event.get("places") or ()
                if p["id"].casefold() in wanted or p["name"].casefold() in wanted]
    if isinstance(cond, CountryCondition):
        return [("place", p["id"], p["name"]) for p in event.get("places") or ()
                if (p.get("country_code") or "").upper() in cond.codes]
    if isinstance(cond, NearCondition):
        return [("place", p["id"], p["name"]) for p in event.get("places") or ()
                if p.get("feature") not in AREA_FEATURES
                and distance_km(cond.lat, cond.lon, p["lat"], p["lon"]) <= cond.km]
    if isinstance(cond, LanguageCondition):
        code = (event.get("language") or {}).get("code")
        return [("language", code, code)] if code in cond.codes else []
    if isinstance(cond, KeywordCondition):
        text = f"{event.get('title') or ''}\n{event.get('text') or ''}"
        if cond.heads and text.isascii():  # no keyword's first word anywhere: no match (keyword_heads)
            folded = text.lower()
            if not any(head in folded for head in cond.heads):
                return []
        m = cond.pattern.search(text)  # the first match names the condition's term
        return [("keyword", m.group(0).casefold(), m.group(0))] if m else []
    if isinstance(cond, SourceCondition):
        source = event.get("source") or ""
        return [("source", source, source)] if any(fnmatch.fnmatchcase(source, p) for p in cond.patterns) else []
    raise TypeError(f"not a condition: {cond!r}")


# --------------------------------------------------------------------------- burst math

@dataclass(frozen=True)
class Baseline:
    """EWMA mean and variance of a rule's count per window, over ``windows`` closed windows."""

    mean: float = 0.0
    var: float = 0.0
    windows: int = 0


def smoothing(window_s: float, halflife_s: float) -> float:
    """EWMA weight of one window: a window ``halflife_s`` old weighs half as much as the newest."""
    return 1.0 - 0.5 ** (window_s / halflife_s)


def ewma_update(b: Baseline, x: float, alpha: float) -> Baseline:
    """Fold one closed window's count into the baseline (the first one sets the mean)."""
    if b.windows == 0:
        return Baseline(float(x), 0.0, 1)
    diff = x - b.mean
    incr = alpha * diff
    return Baseline(b.mean + incr, (1 - alpha) * (b.var + diff * incr), b.windows + 1)


def ewma_decay(b: Baseline, empty: int, alpha: float) -> Baseline:
    """Fold ``empty`` windows with no events at once (closed form of ``empty`` updates with 0)."""
    if empty <= 0:
        return b
    if b.windows == 0:
        return Baseline(0.0, 0.0, empty)
    d = (1 - alpha) ** empty
    return Baseline(d * b.mean, d * (b.var + b.mean * b.mean * (1 - d)), b.windows + empty)


def baseline_std(b: Baseline) -> float:
    """The std a z-score divides by: the EWMA std, floored by Poisson noise ``sqrt(mean)`` and 1."""
    return max(math.sqrt(max(b.var, 0.0)), math.sqrt(max(b.mean, 0.0)), 1.0)


def z_score(x: float, b: Baseline) -> float:
    """How far ``x`` is above the baseline, in :func:`baseline_std` units."""
    return (x - b.mean) / baseline_std(b)


def is_burst(x: int, b: Baseline, burst: Burst) -> bool:
    """The burst test: a baseline exists, ``x >= min_count`` and ``z >= burst.z``."""
    return b.windows >= 1 and x >= burst.min_count and z_score(x, b) >= burst.z


# --------------------------------------------------------------------------- events and alerts

def story_member(event: Mapping[str, Any]) -> str:
    """What the event counts as in story counts: its story, else the event it duplicates or the page
    version it updates, else itself."""
    return str(event.get("story_id") or event.get("duplicate_of") or event.get("near_duplicate_of")
               or event.get("update_of") or event["event_id"])


def merged_stories(event: Mapping[str, Any]) -> list[str]:
    """Stories merged into the event's story (``story.merged_from``, a late merge): from this event
    on they count as its story, so a rule never counts a merged pair as two stories."""
    story = event.get("story")
    if not event.get("story_id") or not isinstance(story, Mapping):
        return []
    return [str(s) for s in story.get("merged_from") or () if s and s != event["story_id"]]


def evidence_item(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event as it appears in an alert's evidence."""
    title = event.get("title")
    return {"event_id": event["event_id"], "title": title[:MAX_TITLE_CHARS] if title else None,
            "source": event.get("source"), "url": event.get("url"), "received_at": event.get("received_at")}


@dataclass(frozen=True)
class FiredFacts:
    """What the state store knew when a rule fired: everything an alert needs besides the rule."""

    kind: str
    event_id: str
    window_start_ms: int
    window_end_ms: int
    fired_at_ms: int
    counts: dict[str, int] = field(hash=False)
    baseline: dict[str, float] | None = field(default=None, hash=False)
    event_ids: tuple[str, ...] = ()
    story_ids: tuple[str, ...] = ()
    evidence: tuple[dict[str, Any], ...] = field(default=(), hash=False)

    @classmethod
    def from_json(cls, raw: bytes | str) -> FiredFacts:
        """Facts as the store keeps them (see pipelines.stages.alerts.state)."""
        d = orjson.loads(raw)
        baseline = d.get("baseline") or None
        return cls(kind=d["kind"], event_id=d["event_id"], window_start_ms=int(d["window_start"]),
                   window_end_ms=int(d["window_end"]), fired_at_ms=int(d["fired_at"]),
                   counts={k: int(v) for k, v in d["counts"].items()},
                   baseline={k: float(v) for k, v in baseline.items()} if baseline else None,
                   event_ids=tuple(d.get("event_ids") or ()), story_ids=tuple(d.get("story_ids") or ()),
                   evidence=tuple(d.get("evidence") or ()))


def alert_id(rule_name: str, window_start_ms: int, event_id: str) -> str:
    """Deterministic id: the same rule, window and firing event always give the same alert id."""
    return hashlib.blake2b(orjson.dumps([rule_name, window_start_ms, event_id]), digest_size=16).hexdigest()


def _plural(n: int, word: str) -> str:
    return f"{n} {word if n == 1 else word + 's'}"


def summary(rule: AlertRule, facts: FiredFacts) -> str:
    """``NATO + Finland: 20 events from 7 sources in 10m (baseline 1.2/10m, z=8.4)``."""
    c = facts.counts
    window = format_duration(rule.window_s)
    stories = f" ({c['stories']} {'story' if c['stories'] == 1 else 'stories'})" if rule.of == "stories" else ""
    head = f"{rule.label}: {_plural(c['events'], 'event')}{stories} from {_plural(c['sources'], 'source')} in {window}"
    if facts.baseline is not None:
        return f"{head} (baseline {facts.baseline['mean']:.1f}/{window}, z={facts.baseline['z']:.1f})"
    if rule.threshold is not None:
        return f"{head} (threshold {rule.threshold.count} {rule.threshold.of})"
    return head


_MATCHED_KEYS = {"entity": "entities", "place": "places"}


def matched_summary(rule: AlertRule, event: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The entities, places and keywords of the firing event that matched the rule."""
    terms = matched_terms(rule.match, event) or []
    out: dict[str, list[Any]] = {"entities": [], "places": [], "keywords": []}
    seen: set[Term] = set()
    for term in terms:
        if term in seen:
            continue
        seen.add(term)
        kind, tid, name = term
        if kind in _MATCHED_KEYS:
            out[_MATCHED_KEYS[kind]].append({"id": tid, "name": name})
        elif kind == "keyword":
            out["keywords"].append(name)
    return out


def build_alert(rule: AlertRule, facts: FiredFacts, event: Mapping[str, Any]) -> dict[str, Any]:
    """The alert document (config/schemas/alert.v1.json) for ``rule`` firing on ``event``.

    Deterministic given the same facts and event, so a replayed event rebuilds the same alert.
    """
    return {
        "schema": ALERT_SCHEMA,
        "alert_id": alert_id(rule.name, facts.window_start_ms, facts.event_id),
        "rule": rule.name,
        "kind": facts.kind,
        "severity": rule.severity,
        "window": {"start": iso_from_millis(facts.window_start_ms), "end": iso_from_millis(facts.window_end_ms)},
        "fired_at": iso_from_millis(facts.fired_at_ms),
        "summary": summary(rule, facts),
        "counts": dict(facts.counts),
        "baseline": dict(facts.baseline) if facts.baseline is not None else None,
        "story_ids": list(facts.story_ids),
        "evidence": [dict(e) for e in facts.evidence[:MAX_EVIDENCE]],
        "event_ids": list(facts.event_ids),
        "destinations": [KAFKA_DESTINATION, *(d for d in rule.destinations if d != KAFKA_DESTINATION)],
        "matched": matched_summary(rule, event),
    }
