"""Alert rules as configuration: parsing and validating config/alerts.yaml into frozen rule and
destination records (no Beam, no Redis, no I/O besides reading the file).

Matching events against rules, the burst math and alert documents are the alert stage's logic
(pipelines/stages/alerts/logic.py); webhook delivery reads the destinations from here
(connectors/sinks/webhook.py). The rule language is described in docs/alerts.md.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError

from core.schemas import validator
from core.settings import ConfigError, read_config_file

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
    """One of these words or phrases in title + text: whole words, any case, any spacing.
    ``heads``: the first word of each, lower case, when every keyword is ASCII (else empty): an
    ASCII text that contains none of them cannot match, and most texts are rejected that way
    without running the pattern (:func:`keyword_heads`)."""

    keywords: tuple[str, ...]
    pattern: re.Pattern[str]
    heads: tuple[str, ...] = ()


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


def keyword_heads(keywords: Sequence[str]) -> tuple[str, ...]:
    """The lower-cased first word of each keyword, or () when a keyword is not ASCII. In ASCII,
    ``re.IGNORECASE`` equates exactly the characters ``str.lower`` maps together, so where
    :func:`keyword_pattern` matches an ASCII text, the lower-cased text contains the matched
    keyword's lower-cased first word. (Beyond ASCII it also equates characters ``lower`` keeps
    apart, such as the long s and "s", so no such test is made there.)"""
    if not all(k.isascii() for k in keywords):
        return ()
    return tuple(dict.fromkeys((k.split() or [""])[0].lower() for k in keywords))


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
            parts.append(KeywordCondition(words, keyword_pattern(words), keyword_heads(words)))
        elif key == "source":
            parts.append(SourceCondition(_strings(value)))
        else:  # the schema allows no other key; a new key needs a branch here
            raise ValueError(f"'match': unknown condition '{key}'")
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


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


log = logging.getLogger(__name__)


class RulesFile:
    """An alerts file's rules, reloaded when the file changes, so ops edit rules without a restart.

    ``current()`` looks at the file (modification time and size) at most every ``interval_s``; a
    changed file is loaded and validated, and its rules replace the old ones. A file that fails
    validation (or vanishes) keeps the rules in force: ``error`` says why, the failure is logged
    once per version of the file, and ``failures`` counts it; the next good version clears it."""

    def __init__(self, path: str | Path, rules: AlertRules, interval_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.rules = rules
        self.interval_s = interval_s
        self.clock = clock
        self.error: str | None = None
        self.reloads = 0
        self.failures = 0
        self._seen = self._version()
        self._next_check = clock() + interval_s

    def _version(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> AlertRules:
        """The rules in force, after reloading the file if it changed since the last look."""
        now = self.clock()
        if now < self._next_check:
            return self.rules
        self._next_check = now + self.interval_s
        version = self._version()
        if version == self._seen:
            return self.rules
        self._seen = version
        try:
            if version is None:
                raise AlertConfigError(f"{self.path}: the alerts file is gone")
            rules = load_rules(self.path)
        except ConfigError as exc:
            self.error, self.failures = str(exc), self.failures + 1
            log.warning("alert rules not reloaded, the previous %d rule(s) stay in force: %s", len(self.rules.rules), exc)
            return self.rules
        self.rules, self.error, self.reloads = rules, None, self.reloads + 1
        log.info("alert rules reloaded from %s: %d rule(s)", self.path, len(rules.rules))
        return self.rules
