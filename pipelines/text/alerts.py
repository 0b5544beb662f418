"""Alert rules: parsing and validating config/alerts.yaml, matching events, burst math, alert documents.

Pure functions and frozen dataclasses (no Beam, no Redis): ``connectors.alert_state`` keeps the
windows, baselines and cooldowns in Redis, ``pipelines.transforms.alerts`` wraps both for Beam.
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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from jsonschema.exceptions import ValidationError

from newswire.schemas import validator
from newswire.settings import ConfigError, read_config_file
from pipelines.events import iso_from_millis
from pipelines.text.places import distance_km

ALERT_SCHEMA = "alert/1"
SEVERITIES = ("info", "warning", "critical")
COUNT_UNITS = ("events", "stories", "sources")
#: Every alert goes to the alerts topic; rules name webhook destinations on top of it.
KAFKA_DESTINATION = "kafka"
MAX_EVIDENCE = 5
#: event_ids / story_ids in an alert: the most recent ones in the window, at most this many.
MAX_IDS = 100
MAX_TITLE_CHARS = 300
#: Place features too large for a radius to mean anything (their point is a centroid).
AREA_FEATURES = frozenset({"country", "continent", "region", "sea"})

_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class AlertConfigError(ConfigError):
    """config/alerts.yaml is invalid; the message names the file, the rule (or destination) and the key."""


# --------------------------------------------------------------------------- durations

def parse_duration(text: str) -> float:
    """``"10m"`` -> 600.0 seconds. Units ms, s, m, h, d; parts add up (``"1h30m"``)."""
    if not isinstance(text, str) or not _DURATION.fullmatch(text.strip()):
        raise ValueError(f"must be a duration like 10m, got {text!r}")
    return sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """600.0 -> ``"10m"``: the largest unit that divides the duration, for summaries."""
    for unit in ("d", "h", "m", "s"):
        n = seconds / _UNIT_S[unit]
        if n >= 1 and n == int(n):
            return f"{int(n)}{unit}"
    return f"{seconds:g}s"


# --------------------------------------------------------------------------- conditions

@dataclass(frozen=True)
class EntityCondition:
    """An entity with one of these ids (``org:nato``) or names (case-insensitive)."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class PlaceCondition:
    """A place with one of these ids (``geonames:660013``) or names (case-insensitive)."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class CountryCondition:
    """A place in one of these countries (ISO 3166-1 alpha-2, the place's ``country_code``)."""

    codes: tuple[str, ...]


@dataclass(frozen=True)
class NearCondition:
    """A place (city, admin area: not a country, region or sea centroid) within ``km`` of a point."""

    lat: float
    lon: float
    km: float
    name: str | None = None


@dataclass(frozen=True)
class LanguageCondition:
    """The event's detected language is one of these codes."""

    codes: tuple[str, ...]


@dataclass(frozen=True)
class KeywordCondition:
    """One of these words or phrases in title + text: whole words, any case, any spacing."""

    keywords: tuple[str, ...]
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class SourceCondition:
    """The event's source matches one of these globs (``rss:*``)."""

    patterns: tuple[str, ...]


@dataclass(frozen=True)
class AllOf:
    """Every part matches."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one part matches."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """The part does not match."""

    part: Condition


Condition = (EntityCondition | PlaceCondition | CountryCondition | NearCondition | LanguageCondition
             | KeywordCondition | SourceCondition | AllOf | AnyOf | Not)


# --------------------------------------------------------------------------- rules

@dataclass(frozen=True)
class Threshold:
    """Fire when the window holds at least ``count`` events, stories or sources."""

    count: int
    of: str = "events"


@dataclass(frozen=True)
class Burst:
    """Fire when the current window's count is ``z`` standard deviations above the EWMA baseline."""

    z: float = 3.0
    min_count: int = 5
    halflife_s: float = 6 * 3600.0
    of: str = "events"


@dataclass(frozen=True)
class WebhookDestinationConfig:
    """A webhook destination from ``destinations:`` (delivered by connectors.sinks.webhook)."""

    name: str
    url: str
    type: str = "json"
    headers: dict[str, str] = field(default_factory=dict, hash=False)
    timeout_s: float = 10.0


@dataclass(frozen=True)
class AlertRule:
    """One rule of config/alerts.yaml, validated. Exactly one of ``threshold`` / ``burst`` is set."""

    name: str
    match: Condition
    window_s: float
    cooldown_s: float
    severity: str = "warning"
    destinations: tuple[str, ...] = ()
    threshold: Threshold | None = None
    burst: Burst | None = None
    title: str | None = None
    description: str | None = None

    @property
    def kind(self) -> str:
        """``"burst"`` or ``"threshold"``."""
        return "burst" if self.burst else "threshold"

    @property
    def of(self) -> str:
        """What the rule counts: events, stories or sources."""
        return self.burst.of if self.burst else self.threshold.of if self.threshold else "events"

    @property
    def label(self) -> str:
        """What the summary calls the rule: its title, else a description of its match."""
        return self.title or describe(self.match)


@dataclass(frozen=True)
class AlertRules:
    """The enabled rules and the webhook destinations of one alerts file."""

    rules: tuple[AlertRule, ...] = ()
    destinations: tuple[WebhookDestinationConfig, ...] = ()
    origin: str = "config/alerts.yaml"


# --------------------------------------------------------------------------- loading

def load_rules(path: str | Path) -> AlertRules:
    """Read, validate (JSON Schema, then semantic checks) and freeze an alerts file."""
    p = Path(path)
    raw = read_config_file(p, AlertConfigError, "alerts.rules_path in config/newswire.yaml")
    return parse_rules({} if raw is None else raw, origin=str(p))


def parse_rules(raw: Any, origin: str = "config/alerts.yaml") -> AlertRules:
    """An alerts document (parsed YAML) -> :class:`AlertRules`, or :class:`AlertConfigError`."""
    errors = sorted(validator("alerts-config").iter_errors(raw), key=lambda e: (len(e.absolute_path), e.message))
    if errors:
        raise AlertConfigError(f"{origin}: {_schema_message(raw, errors[0])}")
    destinations = tuple(_destination(d) for d in raw.get("destinations") or ())
    _unique(origin, "destination", [d.name for d in destinations])
    _unique(origin, "rule", [spec["name"] for spec in raw.get("rules") or ()])
    known = {KAFKA_DESTINATION, *(d.name for d in destinations)}
    rules = []
    for spec in raw.get("rules") or ():
        try:
            rule = _rule(spec)
        except ValueError as exc:
            raise AlertConfigError(f"{origin}: rule '{spec['name']}': {exc}") from None
        unknown = [d for d in rule.destinations if d not in known]
        if unknown:
            raise AlertConfigError(f"{origin}: rule '{rule.name}': 'destinations': '{unknown[0]}' is not defined "
                                   f"under destinations: (known: {', '.join(sorted(known))})")
        if spec.get("enabled", True):
            rules.append(rule)
    return AlertRules(tuple(rules), destinations, origin)


def _unique(origin: str, what: str, names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise AlertConfigError(f"{origin}: {what} '{name}' is defined twice; names must be unique")
        seen.add(name)


def _schema_message(raw: Any, error: ValidationError) -> str:
    """``rule 'nordics': 'window' must be a duration like 10m, got '10 minutes'`` from a schema error."""
    path = list(error.absolute_path)
    where = ""
    if len(path) >= 2 and path[0] in ("rules", "destinations") and isinstance(path[1], int):
        item = raw[path[0]][path[1]]
        name = item.get("name") if isinstance(item, dict) else None
        what = "rule" if path[0] == "rules" else "destination"
        where = f"{what} '{name}': " if name else f"{what} #{path[1] + 1}: "
        path = path[2:]
    key = ".".join(str(p) for p in path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(error.schema.get("properties", {}))
        return f"{where}{'in ' + repr(key) + ': ' if key else ''}unknown key '{extra[0]}' (expected one of: {allowed})"
    if error.validator == "required":
        return f"{where}{'in ' + repr(key) + ': ' if key else ''}{error.message}"
    hint = error.schema.get("x-hint")
    if hint:
        return f"{where}'{key}' {hint}, got {error.instance!r}"
    return f"{where}'{key or '(top level)'}': {error.message}"


def _destination(spec: Mapping[str, Any]) -> WebhookDestinationConfig:
    return WebhookDestinationConfig(
        name=spec["name"], url=spec["url"], type=spec.get("type", "json"),
        headers={str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
        timeout_s=parse_duration(spec.get("timeout", "10s")))


def _rule(spec: Mapping[str, Any]) -> AlertRule:
    window_s = parse_duration(spec["window"])
    cooldown_s = parse_duration(spec["cooldown"]) if "cooldown" in spec else window_s
    if window_s <= 0:
        raise ValueError(f"'window' must be longer than 0, got {spec['window']!r}")
    threshold, burst = spec.get("threshold"), spec.get("burst")
    if (threshold is None) == (burst is None):
        raise ValueError("set exactly one of 'threshold' (a hand-set count) or 'burst' (a spike over the baseline)")
    burst_cfg = None
    if burst is not None:
        halflife_s = parse_duration(burst.get("baseline_halflife", "6h"))
        if halflife_s < window_s:
            raise ValueError(f"'burst.baseline_halflife' ({burst.get('baseline_halflife')}) must be at least "
                             f"the window ({spec['window']})")
        burst_cfg = Burst(z=float(burst.get("z", 3.0)), min_count=int(burst.get("min_count", 5)),
                          halflife_s=halflife_s, of=burst.get("of", "events"))
    return AlertRule(
        name=spec["name"], match=parse_condition(spec["match"]), window_s=window_s, cooldown_s=cooldown_s,
        severity=spec.get("severity", "warning"),
        destinations=tuple(dict.fromkeys(spec.get("destinations") or ())),
        threshold=Threshold(int(threshold["count"]), threshold.get("of", "events")) if threshold else None,
        burst=burst_cfg, title=spec.get("title"), description=spec.get("description"))


def _strings(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def keyword_pattern(keywords: Sequence[str]) -> re.Pattern[str]:
    """One regex for any of ``keywords``: whole words (no word character on either side), any case,
    any whitespace between the words of a phrase."""
    alternatives = [r"\s+".join(re.escape(w) for w in k.split()) for k in keywords]
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def parse_condition(spec: Mapping[str, Any]) -> Condition:
    """A ``match:`` mapping -> :data:`Condition`. Several keys in one mapping must all match."""
    parts: list[Condition] = []
    for key, value in spec.items():
        if key == "all":
            parts.append(AllOf(tuple(parse_condition(v) for v in value)))
        elif key == "any":
            parts.append(AnyOf(tuple(parse_condition(v) for v in value)))
        elif key == "not":
            parts.append(Not(parse_condition(value)))
        elif key == "entity":
            parts.append(EntityCondition(_strings(value)))
        elif key == "place":
            parts.append(PlaceCondition(_strings(value)))
        elif key == "country":
            parts.append(CountryCondition(tuple(c.upper() for c in _strings(value))))
        elif key == "near":
            parts.append(NearCondition(float(value["lat"]), float(value["lon"]), float(value["km"]),
                                       value.get("name")))
        elif key == "language":
            parts.append(LanguageCondition(_strings(value)))
        elif key == "keyword":
            words = _strings(value)
            parts.append(KeywordCondition(words, keyword_pattern(words)))
        elif key == "source":
            parts.append(SourceCondition(_strings(value)))
        else:  # the schema allows no other key; a new key needs a branch here
            raise ValueError(f"'match': unknown condition '{key}'")
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


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
        return [("keyword", m.group(0).casefold(), m.group(0)) for m in cond.pattern.finditer(text)][:1]
    if isinstance(cond, SourceCondition):
        source = event.get("source") or ""
        return [("source", source, source)] if any(fnmatch.fnmatchcase(source, p) for p in cond.patterns) else []
    raise TypeError(f"not a condition: {cond!r}")


def describe(cond: Condition) -> str:
    """A short human label for a condition: ``NATO + Finland``."""
    if isinstance(cond, AllOf):
        return " + ".join(_nested(p) for p in cond.parts)
    if isinstance(cond, AnyOf):
        return " or ".join(_nested(p) for p in cond.parts)
    if isinstance(cond, Not):
        return f"not {_nested(cond.part)}"
    if isinstance(cond, EntityCondition | PlaceCondition):
        return "/".join(cond.values)
    if isinstance(cond, CountryCondition):
        return "country " + "/".join(cond.codes)
    if isinstance(cond, NearCondition):
        return f"within {cond.km:g} km of {cond.name or f'{cond.lat:g},{cond.lon:g}'}"
    if isinstance(cond, LanguageCondition):
        return "language " + "/".join(cond.codes)
    if isinstance(cond, KeywordCondition):
        return "/".join(f'"{k}"' for k in cond.keywords)
    if isinstance(cond, SourceCondition):
        return "source " + "/".join(cond.patterns)
    raise TypeError(f"not a condition: {cond!r}")


def _nested(cond: Condition) -> str:
    text = describe(cond)
    return f"({text})" if isinstance(cond, AllOf | AnyOf) and len(cond.parts) > 1 else text


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

def event_time_ms(event: Mapping[str, Any]) -> int:
    """Event time for alert windows: ``received_at`` (ISO-8601), else the Kafka record time."""
    received = event.get("received_at")
    if received:
        return round(datetime.fromisoformat(received).timestamp() * 1000)
    ms = (event.get("origin") or {}).get("timestamp_ms")
    if ms is None:
        raise ValueError(f"event {event.get('event_id')}: no received_at and no origin.timestamp_ms")
    return int(ms)


def story_member(event: Mapping[str, Any]) -> str:
    """What the event counts as in story counts: its story, else the event it duplicates, else itself."""
    return str(event.get("story_id") or event.get("duplicate_of") or event.get("near_duplicate_of")
               or event["event_id"])


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
        """Facts as the store keeps them (see connectors.alert_state)."""
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
