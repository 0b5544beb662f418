"""AlertStateStore: alert rule windows, burst baselines, cooldowns and fired alerts in Redis.

Why Redis: several workers and pipeline instances evaluate the same rules, and a restart must not
forget a window half full, a six-hour baseline or a cooldown. Each evaluation of one rule for one
event is one Lua script (a script runs alone on the server), so two workers can never both fire
the same rule for the same window; all the matching rules of an event go in one round trip.

Clock: event time. A rule's clock is the newest ``received_at`` it has seen (``latest``); windows
slide with it, cooldowns end at ``latest >= fired + cooldown``. Replaying a day of backlog therefore
raises the alerts it would have raised live, and tests move the clock with event times. An event
older than the rule's window (``t < horizon``) is ``late``: it is not counted and fires nothing.

Idempotency (the pipeline is at-least-once): an event already counted for a rule is ``replayed``
and changes nothing; the event that fired a rule finds its facts under ``fb:<event_id>`` and gets
them back (``refired``), so :func:`~pipelines.stages.alerts.logic.build_alert` rebuilds the same alert, same
id, and an alert is never lost between firing and delivery. The facts are written by the same
script that decides to fire.

Layout (``p`` = namespace + ``al:{<rule>}:``; the braces keep a rule's keys in one cluster slot;
every key expires ``window + cooldown + memory_s`` after the rule's last matching event)::

    p ev              zset    event_id -> event time ms              events in the window
    p st              zset    story member -> newest event time ms    stories (duplicates count once;
                                                                      merged stories fold into their survivor)
    p so              zset    source -> newest event time ms          sources
    p in              hash    event_id -> evidence JSON               alert evidence
    p m               hash    latest, fired (window start of the last alert),
                              burst: b_start, b_count, mean, var, n, first
    p cd              string  cooldown end (event time ms), PX = the rest of the cooldown + memory
    p fb:<event_id>   string  facts of the alert this event fired     replay -> the same alert
    p mg              hash    absorbed story id -> survivor            late merges this rule has seen
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from core.alert_rules import MAX_EVIDENCE, MAX_IDS, AlertRule
from core.records import event_time_ms
from pipelines.stages.alerts.logic import FiredFacts, evidence_item, merged_stories, smoothing, story_member

#: Kept after a rule's window and cooldown: how long a replayed event still finds its alert.
DEFAULT_MEMORY_S = 7 * 86400.0

# KEYS: ev st so in m cd fb mg. ARGV: 1 event_id, 2 t (ms), 3 story member, 4 source, 5 evidence JSON,
# 6 window ms, 7 cooldown ms, 8 kind, 9 count (threshold) / min_count (burst), 10 of,
# 11 z, 12 alpha, 13 memory ms, 14 fired_at ms (wall clock), 15 max ids, 16 max evidence,
# 17 stories merged into the event's story (JSON array).
# Returns {status} or {status, facts JSON}: late | replayed | counted | fired | refired.
_EVALUATE_SCRIPT = """
local ev, st, so, info, meta, cd, fb = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local mg = KEYS[8]
local id, t, story, source = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local window, cooldown, kind = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local count, of, zmin, alpha = tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[11]), tonumber(ARGV[12])
local memory, max_ids, max_evidence = tonumber(ARGV[13]), tonumber(ARGV[15]), tonumber(ARGV[16])

local prior = redis.call('GET', fb)
if prior then return {'refired', prior} end
if redis.call('ZSCORE', ev, id) then return {'replayed'} end

local function num(v, default) if v then return tonumber(v) end return default end
local m = redis.call('HMGET', meta, 'latest', 'fired', 'b_start', 'b_count', 'mean', 'var', 'n', 'first')
local latest = math.max(num(m[1], t), t)
-- threshold: the window ending at the rule's clock; burst: the epoch-aligned window holding it
local horizon = latest - window
if kind == 'burst' then horizon = latest - (latest % window) end
if t < horizon then return {'late'} end

local gone = redis.call('ZRANGEBYSCORE', ev, '-inf', '(' .. horizon)
for i = 1, #gone, 1000 do
  redis.call('HDEL', info, unpack(gone, i, math.min(i + 999, #gone)))
end
for _, key in ipairs({ev, st, so}) do redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. horizon) end
redis.call('ZADD', ev, t, id)
redis.call('HSET', info, id, ARGV[5])
-- late merge: stories merged into this event's story count as it from now on, also for their own
-- events delivered after this one (emitted before the merge); idempotent
local moved = redis.call('HGET', mg, story)
if moved then story = moved end
for _, absorbed in ipairs(cjson.decode(ARGV[17])) do
  redis.call('HSET', mg, absorbed, story)
  local at = redis.call('ZSCORE', st, absorbed)
  if at then
    redis.call('ZREM', st, absorbed)
    redis.call('ZADD', st, 'GT', at, story)
  end
end
-- GT: a story or source stays in the window as long as its newest event does
redis.call('ZADD', st, 'GT', t, story)
redis.call('ZADD', so, 'GT', t, source)
local n_ev, n_st, n_so = redis.call('ZCARD', ev), redis.call('ZCARD', st), redis.call('ZCARD', so)
local x = ({events = n_ev, stories = n_st, sources = n_so})[of]

local want, wstart, wend, baseline = false, horizon, latest, 'null'
if kind == 'burst' then
  local cur, closed, mean, var, n, first = num(m[3], nil), num(m[4], 0), num(m[5], 0), num(m[6], 0),
                                           num(m[7], 0), num(m[8], nil)
  if cur == nil then
    cur, first = horizon, horizon
  elseif horizon > cur then
    -- close the window `cur` (its last count), then the empty ones up to this one; the very first
    -- window is partial (the rule's state started in it), so it is no baseline (see pipelines/stages/alerts/logic.py)
    if cur ~= first then
      if n == 0 then mean, var = closed, 0
      else local diff = closed - mean; local incr = alpha * diff; mean = mean + incr; var = (1 - alpha) * (var + diff * incr) end
      n = n + 1
    end
    local empty = (horizon - cur) / window - 1
    if empty > 0 then
      if n == 0 then mean, var = 0, 0
      else local d = (1 - alpha) ^ empty; var = d * (var + mean * mean * (1 - d)); mean = d * mean end
      n = n + empty
    end
    cur = horizon
  end
  redis.call('HSET', meta, 'b_start', cur, 'b_count', x, 'mean', mean, 'var', var, 'n', n, 'first', first)
  wend = cur + window
  if n >= 1 then
    local std = math.max(math.sqrt(math.max(var, 0)), math.sqrt(math.max(mean, 0)), 1)
    local z = (x - mean) / std
    baseline = cjson.encode({mean = mean, std = std, z = z})
    want = x >= count and z >= zmin
  end
else
  want = x >= count
end
redis.call('HSET', meta, 'latest', latest)
local ttl = window + cooldown + memory
for _, key in ipairs({ev, st, so, info, meta, mg}) do redis.call('PEXPIRE', key, ttl) end

local cooldown_end = num(redis.call('GET', cd), 0)
-- one alert per rule and window (dedup), none while the last one's cooldown runs
if not want or latest < cooldown_end or wstart <= num(m[2], -1) then return {'counted'} end

redis.call('SET', cd, latest + cooldown, 'PX', cooldown + memory)
redis.call('HSET', meta, 'fired', wstart)
local function array(items) if #items == 0 then return '[]' end return cjson.encode(items) end
local newest = redis.call('ZREVRANGE', ev, 0, max_evidence - 1)
local evidence = redis.call('HMGET', info, unpack(newest))
local raw = {}
for _, e in ipairs(evidence) do if e then raw[#raw + 1] = e end end
local facts = '{"kind":' .. cjson.encode(kind) .. ',"event_id":' .. cjson.encode(id)
  .. ',"window_start":' .. string.format('%d', wstart) .. ',"window_end":' .. string.format('%d', wend)
  .. ',"fired_at":' .. ARGV[14]
  .. ',"counts":{"events":' .. n_ev .. ',"stories":' .. n_st .. ',"sources":' .. n_so .. '}'
  .. ',"baseline":' .. baseline
  .. ',"event_ids":' .. array(redis.call('ZREVRANGE', ev, 0, max_ids - 1))
  .. ',"story_ids":' .. array(redis.call('ZREVRANGE', st, 0, max_ids - 1))
  .. ',"evidence":[' .. table.concat(raw, ',') .. ']}'
redis.call('SET', fb, facts, 'PX', ttl)
return {'fired', facts}
"""


@dataclass(frozen=True)
class Evaluation:
    """One rule evaluated for one event. ``status``: counted, fired, refired (a replay of the event
    that fired: the same facts again), replayed (already counted: nothing changed) or late (older
    than the rule's window: not counted). ``facts`` is set when fired or refired."""

    rule: str
    status: str
    facts: FiredFacts | None = None


class AlertStateStore:
    """Windows, burst baselines, cooldowns and fired alerts of alert rules, in Redis (module docstring).

    ``clock`` gives the wall time (seconds) recorded as ``fired_at``; windows and cooldowns run
    on event time (``received_at``) only.
    """

    def __init__(self, client: redis.Redis, *, namespace: str = "", memory_s: float = DEFAULT_MEMORY_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.prefix = f"{namespace}al:"
        self.memory_ms = max(1, round(memory_s * 1000))
        self.clock = clock
        self._script = client.register_script(_EVALUATE_SCRIPT)

    def keys(self, rule: str, event_id: str) -> list[str]:
        """The Redis keys one evaluation of ``rule`` touches (the seventh is the event's fired-by key)."""
        p = f"{self.prefix}{{{rule}}}:"
        return [p + "ev", p + "st", p + "so", p + "in", p + "m", p + "cd", f"{p}fb:{event_id}", p + "mg"]

    def evaluate(self, event: Mapping[str, Any], rules: Sequence[AlertRule]) -> list[Evaluation]:
        """Count ``event`` in each rule's window (rules it matches) and fire those due; one round trip."""
        if not rules:
            return []
        args = self._event_args(event)
        merged = orjson.dumps(merged_stories(event))
        calls = [(self.keys(rule.name, event["event_id"]), [*args, *self._rule_args(rule), merged]) for rule in rules]
        replies = self._run_scripts(calls)
        return [self._evaluation(rule, reply) for rule, reply in zip(rules, replies, strict=True)]

    def _run_scripts(self, calls: Sequence[tuple[list[str], list[Any]]]) -> list[Any]:
        """EVALSHA for every call in one round trip. (A Script object in a pipeline would first ask
        SCRIPT EXISTS, a second round trip per event.) After a Redis restart the script cache is
        empty: load the script and run them all again, which is safe because an evaluation is
        idempotent per event (a replay counts once and returns the same facts)."""
        replies = self._evalsha_all(calls)
        if any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
            self.client.script_load(_EVALUATE_SCRIPT)
            replies = self._evalsha_all(calls)
        for r in replies:
            if isinstance(r, Exception):
                raise r
        return replies

    def _evalsha_all(self, calls: Sequence[tuple[list[str], list[Any]]]) -> list[Any]:
        with self.client.pipeline(transaction=False) as pipe:
            for keys, argv in calls:
                pipe.evalsha(self._script.sha, len(keys), *keys, *argv)
            return list(pipe.execute(raise_on_error=False))

    def _event_args(self, event: Mapping[str, Any]) -> list[Any]:
        return [event["event_id"], event_time_ms(event), story_member(event), event.get("source") or "",
                orjson.dumps(evidence_item(event))]

    def _rule_args(self, rule: AlertRule) -> list[Any]:
        window_ms = max(1, round(rule.window_s * 1000))
        if rule.burst:
            count, z, alpha = rule.burst.min_count, rule.burst.z, smoothing(rule.window_s, rule.burst.halflife_s)
        else:
            assert rule.threshold is not None
            count, z, alpha = rule.threshold.count, 0.0, 0.0
        return [window_ms, max(0, round(rule.cooldown_s * 1000)), rule.kind, count, rule.of, repr(z),
                repr(alpha), self.memory_ms, round(self.clock() * 1000), MAX_IDS, MAX_EVIDENCE]

    @staticmethod
    def _evaluation(rule: AlertRule, reply: Sequence[Any]) -> Evaluation:
        status = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        facts = FiredFacts.from_json(reply[1]) if len(reply) > 1 else None
        return Evaluation(rule.name, status, facts)
