"""WebhookSink: deliver alerts from the alerts topic to webhook destinations (generic JSON or Slack).

One `WebhookSink` per destination, each with its own consumer group (``<group>-notify-<name>``), so a
destination that is down never holds back another one, nor the pipeline (which only writes the
topic). Per alert: POST, retry with exponential backoff and jitter (or the receiver's Retry-After),
then commit the offset. An alert that cannot be delivered (retries exhausted, or a 3xx/4xx that
retrying cannot fix) goes to the dead-letter topic with the reason before its offset is committed:
delivery is at-least-once and nothing is dropped silently. Receivers deduplicate by the
``X-Newswire-Alert-Id`` header.

Destinations come from ``destinations:`` in config/alerts.yaml (`pipelines.stages.alerts.logic.load_rules`);
a destination's URL is never logged nor written to a dead letter (a Slack webhook URL is a secret).

``GET /metrics`` on ``alerts.notify_metrics_host:notify_metrics_port`` (`AlertNotifier.start`, so
both `newswire alerts notify` and `newswire up`): per destination name, alerts delivered, dead
letters by reason, retries, and whether its loop runs (docs/deploy.md#metrics).
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from connectors.kafka import broker_check, make_consumer, make_producer
from connectors.metrics import MetricsServer, label
from core.alert_rules import WebhookDestinationConfig
from core.records import dead_letter
from core.settings import Settings

log = logging.getLogger(__name__)

#: The idempotency key receivers deduplicate on: the same alert always carries the same id.
ALERT_ID_HEADER = "X-Newswire-Alert-Id"
#: Statuses that say "try again later" although they are 4xx.
RETRYABLE_4XX = (408, 429)
#: How much of a failing receiver's answer a dead letter keeps.
BODY_EXCERPT_CHARS = 500
#: Top evidence links shown in a Slack message.
SLACK_EVIDENCE = 5


# --------------------------------------------------------------------------- payloads

def json_request(alert: Mapping[str, Any], destination: WebhookDestinationConfig) -> tuple[bytes, dict[str, str]]:
    """Generic JSON: the alert document as is, with its id as the idempotency header."""
    headers = {**destination.headers, "Content-Type": "application/json",
               ALERT_ID_HEADER: str(alert.get("alert_id", ""))}
    return orjson.dumps(alert), headers


def _mrkdwn(text: Any) -> str:
    """Slack's mrkdwn treats &, < and > as control characters; escape them in our text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _evidence_lines(alert: Mapping[str, Any]) -> list[str]:
    lines = []
    for item in list(alert.get("evidence") or [])[:SLACK_EVIDENCE]:
        title = _mrkdwn(item.get("title") or item.get("event_id") or "(untitled)")[:200]
        link = f"<{item['url']}|{title}>" if item.get("url") else title
        lines.append(f"\u2022 {link} ({_mrkdwn(item.get('source', ''))})")
    return lines


def slack_payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (notifications, old clients) and Block Kit ``blocks``
    with severity, summary, counts and the top evidence links. Cut to Slack's per-block limits."""
    severity = str(alert.get("severity", "info")).upper()
    summary = str(alert.get("summary", ""))
    counts = alert.get("counts") or {}
    window = alert.get("window") or {}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{severity}: {alert.get('rule', 'alert')}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(summary)[:3000] or "(no summary)"}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{label}*\n{counts.get(key, 0)}"}
            for label, key in (("Events", "events"), ("Stories", "stories"), ("Sources", "sources"))
        ] + [{"type": "mrkdwn", "text": f"*Window*\n{window.get('start', '?')} \u2192 {window.get('end', '?')}"}]},
    ]
    evidence = _evidence_lines(alert)
    if evidence:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(evidence)[:3000]}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"alert {alert.get('alert_id', '?')} \u00b7 {alert.get('kind', '')} "
                                   f"\u00b7 fired {alert.get('fired_at', '?')}"}]})
    return {"text": f"[{severity}] {summary}"[:3000], "blocks": blocks}


def slack_request(alert: Mapping[str, Any], destination: WebhookDestinationConfig) -> tuple[bytes, dict[str, str]]:
    """Slack: the message body, with the same idempotency header (Slack ignores it; proxies may not)."""
    headers = {**destination.headers, "Content-Type": "application/json",
               ALERT_ID_HEADER: str(alert.get("alert_id", ""))}
    return orjson.dumps(slack_payload(alert)), headers


def build_request(alert: Mapping[str, Any], destination: WebhookDestinationConfig) -> tuple[bytes, dict[str, str]]:
    """Body and headers for `destination`'s type."""
    return (slack_request if destination.type == "slack" else json_request)(alert, destination)


# --------------------------------------------------------------------------- retries

@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one alert before it goes to the dead-letter topic."""

    max_attempts: int = 8
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 60.0
    #: A receiver's Retry-After is honoured up to this; a longer one is treated as this long.
    max_retry_after_s: float = 600.0

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Delay after failed attempt `attempt` (1-based): exponential, capped, "equal jitter" (half
        fixed, half random) so that many notifiers retrying one receiver do not retry in lockstep."""
        cap = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (attempt - 1))
        return cap / 2 + rng.uniform(0, cap / 2)

    def worst_case_s(self, timeout_s: float) -> float:
        """An upper bound on the time one alert can take (timeouts plus waits)."""
        return self.max_attempts * (timeout_s + max(self.max_backoff_s, self.max_retry_after_s))


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class DeliveryOutcome:
    """What became of one alert at one destination. ``result``: delivered, rejected (a 3xx/4xx retrying
    cannot fix), gave_up (attempts exhausted) or interrupted (the notifier is stopping)."""

    result: str
    attempts: int
    status: int | None = None
    body_excerpt: str = ""
    error: str = ""

    @property
    def final(self) -> bool:
        """Whether the offset may be committed (delivered or dead-lettered, not interrupted)."""
        return self.result != "interrupted"


def _permanent(status: int) -> bool:
    """Statuses that retrying cannot fix: 4xx but 408/429, and redirects (redirects are not followed:
    a webhook URL that redirects is misconfigured, and a POST must not silently become a GET)."""
    return 300 <= status < 500 and status not in RETRYABLE_4XX


def post_alert(client: httpx.Client, destination: WebhookDestinationConfig, alert: Mapping[str, Any],
               policy: RetryPolicy, wait: Callable[[float], bool], rng: random.Random | None = None,
               ) -> DeliveryOutcome:
    """POST one alert until it is accepted (2xx), rejected for good, or `policy` gives up.

    ``wait(seconds)`` sleeps between attempts and returns True when the caller is stopping.
    """
    rng = rng or random.Random()
    body, headers = build_request(alert, destination)
    status: int | None = None
    excerpt = error = ""
    for attempt in range(1, policy.max_attempts + 1):
        delay: float | None = None
        try:
            response = client.post(destination.url, content=body, headers=headers, timeout=destination.timeout_s)
        except httpx.HTTPError as exc:
            # Some messages quote the URL, which can be a secret (Slack): never let it through.
            status, excerpt, error = None, "", f"{type(exc).__name__}: {exc}".replace(destination.url, "<url>")
        else:
            status, excerpt = response.status_code, response.text[:BODY_EXCERPT_CHARS]
            error = f"HTTP {status}"
            if response.is_success:
                return DeliveryOutcome("delivered", attempt, status)
            if _permanent(status):
                return DeliveryOutcome("rejected", attempt, status, excerpt, error)
            if status in (429, 503):
                delay = retry_after_s(response.headers.get("Retry-After"))
        if attempt == policy.max_attempts:
            break
        if delay is None:
            delay = policy.backoff_s(attempt, rng)
        log.info("destination %s: alert %s attempt %d failed (%s); retrying in %.1fs",
                 destination.name, alert.get("alert_id"), attempt, error, delay)
        if wait(min(delay, policy.max_retry_after_s)):
            return DeliveryOutcome("interrupted", attempt, status, excerpt, error)
    return DeliveryOutcome("gave_up", policy.max_attempts, status, excerpt, error)


# --------------------------------------------------------------------------- the sink

def notify_group(settings: Settings, destination: WebhookDestinationConfig) -> str:
    """The destination's own consumer group: its offsets say which alerts it has been sent."""
    return f"{settings.kafka.consumer_group}-notify-{destination.name}"


def failure_dead_letter(destination: WebhookDestinationConfig, outcome: DeliveryOutcome,
                        record: ConsumerRecord) -> dict[str, Any]:
    """A dead-letter/1 record for an alert the destination did not take, saying why."""
    reason = "webhook_rejected" if outcome.result == "rejected" else "webhook_gave_up"
    error = (f"destination '{destination.name}' ({destination.type}): {outcome.error or 'failed'} after "
             f"{outcome.attempts} attempt(s); status {outcome.status}; body: {outcome.body_excerpt!r}")
    letter = dead_letter(f"notify:{destination.name}", reason, error, record.value, record.key,
                         record.topic, record.partition, record.offset, record.timestamp)
    letter["delivery"] = {"destination": destination.name, "type": destination.type,
                          "status": outcome.status, "attempts": outcome.attempts,
                          "body_excerpt": outcome.body_excerpt}
    return letter


def _parse_alert(value: bytes | None) -> dict[str, Any] | tuple[str, str]:
    """The alert document, or (reason, message) saying why it is not one a notifier can route."""
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        return "not_json", f"alert is not JSON: {exc}"
    if not isinstance(doc, dict) or not isinstance(doc.get("alert_id"), str):
        return "schema", "alert: must be a JSON object with a string 'alert_id'"
    if not isinstance(doc.get("destinations"), list):
        return "schema", f"alert {doc['alert_id']}: destinations: must be a list of destination names"
    return doc


class WebhookSink:
    """Delivers the alerts that name `destination` from the alerts topic to its webhook.

    ``start()`` runs the loop in a thread, ``stop()`` ends it (an alert being retried is left
    uncommitted and is sent again on the next start). Counters: ``delivered``, ``dead_lettered`` (and
    ``dead_letters`` by reason), ``retries`` (attempts after the first).
    """

    def __init__(self, settings: Settings, destination: WebhookDestinationConfig, policy: RetryPolicy | None = None,
                 producer: KafkaProducer | None = None) -> None:
        self.settings = settings
        self.destination = destination
        self.policy = policy or RetryPolicy()
        self._own_producer = producer is None
        self._producer = producer or make_producer(settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.dead_letters: Counter[str] = Counter()
        self.retries = 0
        self.crashed = False
        self.running = False

    @property
    def dead_lettered(self) -> int:
        """Alerts (or unreadable records) this destination sent to the dead-letter topic."""
        return sum(self.dead_letters.values())

    @property
    def default_topic(self) -> str:
        return self.settings.kafka.topics.alerts.name

    @property
    def group(self) -> str:
        return notify_group(self.settings, self.destination)

    def start(self) -> None:
        """Run the delivery loop in a background thread."""
        self._thread = threading.Thread(target=self.run, name=f"notify-{self.destination.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30) -> None:
        """Stop the loop and close the clients."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._own_producer:
            self._producer.close()

    def run(self) -> None:
        """Consume, deliver, commit, until stopped."""
        # One alert per poll, and a poll interval longer than the worst case for one alert: a
        # receiver being retried must not make the group think this notifier died.
        poll_interval_ms = int(self.policy.worst_case_s(self.destination.timeout_s) * 1000) + 60_000
        # Metadata refreshed every 10 s (default 5 min): a group leader that assigned before it had
        # the topic's partitions (kafka-python logs "No partition metadata for topic") rejoins when
        # the refresh shows them, so a restarted notifier is not left idle with no partitions.
        consumer = make_consumer(self.settings, group_id=self.group, max_poll_records=1,
                                 max_poll_interval_ms=poll_interval_ms, metadata_max_age_ms=10_000,
                                 client_id=f"newswire-{self.group}")
        consumer.subscribe([self.default_topic])
        self.running = True
        try:
            with httpx.Client(follow_redirects=False) as client:
                while not self._stop.is_set():
                    for records in consumer.poll(timeout_ms=200).values():
                        for record in records:
                            if not self.handle(client, record):
                                return  # stopping mid-retry: leave the offset uncommitted
                            _commit(consumer, record)
        except Exception:
            self.crashed = True
            log.exception("notifier for destination %s stopped", self.destination.name)
            raise
        finally:
            self.running = False
            consumer.close()

    def handle(self, client: httpx.Client, record: ConsumerRecord) -> bool:
        """Deliver or dead-letter one record; False if interrupted (do not commit)."""
        alert = _parse_alert(record.value)
        if isinstance(alert, tuple):
            # Every destination's notifier sees it; each dead-letters it once under its own stage.
            reason, error = alert
            self._send_dead_letter(dead_letter(f"notify:{self.destination.name}", reason, error, record.value,
                                               record.key, record.topic, record.partition, record.offset,
                                               record.timestamp), record.key, reason)
            return True
        if self.destination.name not in alert["destinations"]:
            return True  # another destination's alert
        outcome = post_alert(client, self.destination, alert, self.policy, self._stop.wait)
        self.retries += outcome.attempts - 1
        if not outcome.final:
            return False
        if outcome.result == "delivered":
            self.delivered += 1
            return True
        letter = failure_dead_letter(self.destination, outcome, record)
        self._send_dead_letter(letter, record.key, letter["reason"])
        return True

    def _send_dead_letter(self, letter: dict[str, Any], key: bytes | None, reason: str) -> None:
        log.warning("destination %s: %s", self.destination.name, letter["error"])
        # Wait for the broker's ack: the offset is committed right after, so the letter must exist.
        self._producer.send(self.settings.kafka.topics.dlq.name, key=key, value=orjson.dumps(letter)).get(timeout=60)
        self.dead_letters[reason] += 1


def _commit(consumer: KafkaConsumer, record: ConsumerRecord) -> None:
    """Commit past `record`. After a rebalance the commit fails; the record's new owner sends it
    again, which the idempotency header makes harmless (at-least-once)."""
    try:
        consumer.commit({TopicPartition(record.topic, record.partition): OffsetAndMetadata(record.offset + 1, "", -1)})
    except CommitFailedError as exc:
        log.warning("commit after %s-%d@%d failed (%s); it will be redelivered",
                    record.topic, record.partition, record.offset, exc)


class NotifierCollector(Collector):
    """The notifier's counters per destination, read from its sinks when Prometheus scrapes."""

    def __init__(self, sinks: list[WebhookSink]) -> None:
        self.sinks = sinks

    def collect(self) -> Iterator[Metric]:
        delivered = CounterMetricFamily("newswire_notify_delivered", "Alerts a destination accepted (2xx)",
                                        labels=["destination"])
        dead = CounterMetricFamily("newswire_notify_dead_letters", "Alerts (or unreadable records) sent to the "
                                   "dead-letter topic, by reason", labels=["destination", "reason"])
        retries = CounterMetricFamily("newswire_notify_retries", "Attempts after the first, over all alerts",
                                      labels=["destination"])
        running = GaugeMetricFamily("newswire_notify_running", "1 while the destination's delivery loop runs",
                                    labels=["destination"])
        for sink in self.sinks:
            name = label(sink.destination.name)
            delivered.add_metric([name], sink.delivered)
            for reason, n in sorted(sink.dead_letters.items()):
                dead.add_metric([name, label(reason)], n)
            retries.add_metric([name], sink.retries)
            running.add_metric([name], 1 if sink.running else 0)
        yield from (delivered, dead, retries, running)


class AlertNotifier:
    """The notifier service: one `WebhookSink` per webhook destination, one shared producer for
    dead letters, and ``GET /metrics`` when ``alerts.notify_metrics_port`` is set. ``start()`` /
    ``stop()``; ``failed`` names the sinks whose loop died."""

    def __init__(self, settings: Settings, destinations: Iterable[WebhookDestinationConfig],
                 policy: RetryPolicy | None = None) -> None:
        self.settings = settings
        self._producer = make_producer(settings)
        self.sinks = [WebhookSink(settings, d, policy, self._producer) for d in destinations]
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NotifierCollector(self.sinks))
        self.metrics_server: MetricsServer | None = None

    def start(self) -> AlertNotifier:
        """Start every destination's loop, and the metrics endpoint."""
        a = self.settings.alerts
        if a.notify_metrics_port is not None:
            self.metrics_server = MetricsServer(self.registry, a.notify_metrics_host, a.notify_metrics_port,
                                                "alert notifier", alive=self.liveness, ready=self.readiness)
        for sink in self.sinks:
            sink.start()
        return self

    def stop(self) -> None:
        """Stop every loop, then the shared producer and the metrics endpoint."""
        for sink in self.sinks:
            sink.stop()
        self._producer.close(timeout=10)
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None

    @property
    def failed(self) -> list[str]:
        """Destinations whose delivery loop ended with an error."""
        return [s.destination.name for s in self.sinks if s.crashed]

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """/healthz: alive while no destination's delivery loop has died."""
        failed = self.failed
        return not failed, {"alive": not failed, "failed_destinations": failed}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """/readyz: alive, and a Kafka bootstrap server accepts connections."""
        alive, details = self.liveness()
        broker = broker_check(self.settings.kafka.bootstrap_servers)
        ready = alive and bool(broker["ok"])
        return ready, {"ready": ready, **details, "dependencies": {"kafka": broker}}
