"""EvaluateAlerts: run every event past the alert rules of config/alerts.yaml; fired alerts ride along.

The Beam side of :mod:`pipelines.stages.alerts.logic` (rules, matching, alert documents) and
:class:`pipelines.stages.alerts.state.AlertStateStore` (windows, baselines, cooldowns in Redis)::

    events --Evaluate--> events + "_alerts": [alert, ...]
             (matching is local; one Redis round trip per event that matches any rule)

Why no Beam state or windows: the rules need state shared by every worker and kept across restarts
(a six-hour baseline, a cooldown), and one atomic read-decide-write per rule; a Lua script in Redis
gives both without a shuffle, like the near-duplicate stage. Run it after the stages whose fields
the rules read: entities and places (Enrich), ``duplicate_of`` / ``near_duplicate_of`` / ``update_of`` (Dedup),
``story_id`` (AssignStories).

Rules are loaded and validated when the transform is built (pipeline start-up), so a bad rules file
stops the pipeline before it reads anything, and workers receive the parsed rules with the graph.
While it runs, each worker reloads the file when it changes (``core.alert_rules.RulesFile``, at most
every ``alerts.reload_interval_s``): a bad edit keeps the rules in force and says why (a warning in
the log, the Beam counter ``alerts/rules_reload_failed``, i.e. ``newswire_pipeline_counter_total``,
and the ``alert-rules`` record of the status hash in Redis, which the console's health page shows:
``connectors.status``). A worker that cannot see the file (another machine) keeps the rules it was given.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from core.alert_rules import AlertRules, RulesFile, load_rules
from core.outage import REDIS_UNAVAILABLE
from core.records import ALERTS_KEY, utc_now_iso
from core.settings import ConfigError, Settings
from pipelines.stages.alerts.logic import build_alert, matches
from pipelines.transforms.common import StageFn, run_stage

log = logging.getLogger(__name__)


class _Evaluate(StageFn):
    """event -> event with ``_alerts``; rule state in Redis, one round trip for all matching rules.
    Redis unavailable: retried in place (skipping would lose the event from every window, and
    maybe the alert it should have fired); an error of this event's own: a dead letter."""

    stage = "alerts"
    retry_on = REDIS_UNAVAILABLE

    def __init__(self, redis_url: str, rules: AlertRules, namespace: str, rules_path: str | None = None,
                 reload_interval_s: float = 5.0, status_url: str | None = None) -> None:
        super().__init__()
        self.redis_url, self.rules, self.namespace = redis_url, rules, namespace
        # The status board's Redis (redis.url), where the console reads the rules record; the
        # alerts' own state may be on another (redis.stage_urls.alerts).
        self.status_url = status_url or redis_url
        self.rules_path, self.reload_interval_s = rules_path, reload_interval_s
        self.counts = {status: Metrics.counter("alerts", status)
                       for status in ("matched", "counted", "fired", "refired", "replayed", "late",
                                      "rules_reloaded", "rules_reload_failed")}

    def setup(self) -> None:
        from connectors.redis import make_redis
        from pipelines.stages.alerts.state import AlertStateStore  # worker side, like pipelines/io.py

        self._client = make_redis(self.redis_url)
        self._status_client = self._client if self.status_url == self.redis_url else make_redis(self.status_url)
        self._store = AlertStateStore(self._client, namespace=self.namespace)
        self._file = RulesFile(self.rules_path, self.rules, self.reload_interval_s) if self.rules_path else None
        if self._file is not None:
            # the file may have changed since the graph was built: say now whether it is good
            try:
                load_rules(self._file.path)
                error = None
            except ConfigError as exc:
                error = str(exc)
            self._rules_status(error, loaded=False)

    def _rules(self) -> AlertRules:
        if self._file is None:
            return self.rules
        reloads, failures = self._file.reloads, self._file.failures
        rules = self._file.current()
        if self._file.reloads != reloads:
            self.counts["rules_reloaded"].inc()
            self._rules_status(None, loaded=True)
        if self._file.failures != failures:
            self.counts["rules_reload_failed"].inc()
            self._rules_status(self._file.error, loaded=False)
        return rules

    def _rules_status(self, error: str | None, loaded: bool) -> None:
        """The ``alert-rules`` status record (connectors/status.py): the file, the rules in force,
        whether the file is good now or why not. Best effort: alerting never waits on it."""
        from connectors.status import ALERT_RULES, MAX_ERROR_CHARS, publish

        assert self._file is not None
        now = utc_now_iso()
        if loaded:
            self._loaded_at = now
        record = {"path": str(self._file.path), "rules": len(self._file.rules.rules), "ok": error is None,
                  "error": error[:MAX_ERROR_CHARS] if error else None, "checked_at": now,
                  "loaded_at": getattr(self, "_loaded_at", None), "reloads": self._file.reloads,
                  "failures": self._file.failures, "worker": f"{socket.gethostname()}:{os.getpid()}"}
        try:
            publish(self._status_client, self.namespace, ALERT_RULES, record)
        except Exception as exc:  # noqa: BLE001 - the status is lost, not the alert
            log.warning("alert rules status not written to Redis: %s", exc)

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        due = [rule for rule in self._rules().rules if matches(rule, event)]
        alerts: list[dict[str, Any]] = []
        if due:
            self.counts["matched"].inc(len(due))
            for rule, result in zip(due, self._store.evaluate(event, due), strict=True):
                self.counts[result.status].inc()
                if result.facts is not None:
                    alerts.append(build_alert(rule, result.facts, event))
        return {**event, ALERTS_KEY: alerts}

    def teardown(self) -> None:
        client, status = getattr(self, "_client", None), getattr(self, "_status_client", None)
        if client is not None:
            client.close()
        if status is not None and status is not client:
            status.close()


class EvaluateAlerts(beam.PTransform):
    """Evaluate the configured alert rules (``settings.alerts``) on every event.

    In: in-flight event dicts (``event_id``, ``received_at``, ``source``; the rules read
    ``entities``, ``places``, ``language``, ``title``/``text``, ``story_id``, ``duplicate_of``,
    ``near_duplicate_of``, ``update_of`` when present). Out: the same dicts plus ``"_alerts"``: a list of alert
    documents (config/schemas/alert.v1.json), empty when nothing fired; and dead letters (an
    event whose evaluation failed on its own content). Nothing is dropped.
    A replayed event gets the same alerts again (same ``alert_id``): deliver them idempotently.

    ``rules``: already loaded rules (tests); default ``load_rules(settings.alerts.rules_path)``,
    or no rules when ``settings.alerts.enabled`` is false. Redis: ``settings.redis.url_for("alerts")``, keys
    under ``settings.redis.namespace`` + ``al:``. If Redis is unreachable the bundle fails and is
    retried; events are never passed on unevaluated.
    """

    def __init__(self, settings: Settings, rules: AlertRules | None = None) -> None:
        super().__init__()
        self.rules_path: str | None = None
        if rules is None:
            rules = load_rules(settings.alerts.rules_path) if settings.alerts.enabled else AlertRules()
            self.rules_path = str(settings.alerts.rules_path) if settings.alerts.enabled else None
        self.rules = rules
        self.reload_interval_s = settings.alerts.reload_interval_s
        self.redis_url, self.namespace = settings.redis.url_for("alerts"), settings.redis.namespace
        self.status_url = settings.redis.url
        self.outage_max_wait_s = settings.pipeline.outage_max_wait_s

    def stage_fn(self) -> StageFn:
        fn = _Evaluate(self.redis_url, self.rules, self.namespace, self.rules_path, self.reload_interval_s,
                       self.status_url)
        fn.outage_max_wait_s = self.outage_max_wait_s
        return fn

    def expand(self, events: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        return run_stage(events, "Evaluate", self.stage_fn())
