"""KafkaTopicsSink: events to the enriched topic, dead letters to the DLQ topic, alerts to the
alerts topic (config/schemas/*.json; keys and headers in docs/schemas.md).

``flush`` produces everything buffered and waits for the acknowledgements. Records the broker cannot
take now (unreachable, no leader: retriable errors) are sent again with backoff for up to
``pipeline.outage_max_wait_s``, then ``OutageGaveUp``. An event the broker refuses for good (too
large, invalid) is replaced by its dead letter (``delivery_failed``), which goes out in the same
flush and is listed in ``refused``; a dead letter or an alert it refuses for good raises, since
nothing smaller is left to send. Duplicates on the topics are possible (at-least-once): consumers
dedupe by key (event_id, alert_id).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from kafka.errors import KafkaTimeoutError

from connectors.kafka import make_producer
from connectors.sinks import Sink
from core.outage import OUTAGES, OutageGaveUp, kafka_unavailable
from core.records import Delivery, delivery_failed
from core.settings import Settings

log = logging.getLogger(__name__)


class KafkaTopicsSink(Sink):
    """The enriched, DLQ and alerts topics as one sink (see the module docstring)."""

    name = "topics"
    refused_reason = "delivery_failed"

    def __init__(self, settings: Settings, linger_ms: int = 2) -> None:
        super().__init__()
        self.settings = settings
        self._producer = make_producer(settings, linger_ms=linger_ms)
        self._buffer: list[Delivery] = []

    def add(self, item: Delivery | dict[str, Any]) -> None:
        if not isinstance(item, Delivery):
            raise TypeError("KafkaTopicsSink takes Deliveries (an event, or a dead letter, with its alerts)")
        self._buffer.append(item)

    @staticmethod
    def unavailable(error: BaseException) -> bool:
        return kafka_unavailable(error)

    def _records(self, d: Delivery) -> list[tuple[str, bytes | None, bytes]]:
        topics = self.settings.kafka.topics
        if d.kind == "event":
            head = (topics.enriched.name, d.payload["event_id"].encode(), orjson.dumps(d.payload))
        else:
            head = (topics.dlq.name, d.key, orjson.dumps(d.payload))
        # A replayed event fires the same alert (same alert_id) again: consumers dedupe by key.
        return [head, *((topics.alerts.name, a["alert_id"].encode(), orjson.dumps(a)) for a in d.alerts)]

    def flush(self) -> int:
        self.refused = {}
        out = self._buffer
        todo = list(range(len(out)))
        deadline = time.monotonic() + self.settings.pipeline.outage_max_wait_s
        attempt = 0
        while todo:
            sent: list[tuple[int, Any, str]] = []
            for n in todo:
                for topic, key, value in self._records(out[n]):
                    try:
                        sent.append((n, self._producer.send(topic, key=key, value=value), topic))
                    except Exception as exc:  # noqa: BLE001 - judged below like a failed future
                        sent.append((n, exc, topic))
            try:
                self._producer.flush(timeout=max(1.0, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - the futures say which records failed
                log.warning("producer flush: %s: %s", type(exc).__name__, exc)
            retry: set[int] = set()
            outage = False
            for n, future, topic in sent:
                error = future if isinstance(future, BaseException) else (
                    future.exception if future.is_done else KafkaTimeoutError("not acknowledged in time"))
                if error is None:
                    continue
                if kafka_unavailable(error):
                    retry.add(n)
                    outage = True
                    OUTAGES.waiting("Kafka (produce)", error)
                elif out[n].kind == "event" and topic == self.settings.kafka.topics.enriched.name:
                    why = f"topic {topic} refused it: {type(error).__name__}: {error}"
                    log.error("event %s: %s", out[n].payload.get("event_id"), why)
                    self.refused[out[n].payload["event_id"]] = why
                    out[n] = delivery_failed(out[n], self.name, self.refused_reason, why)
                    retry.add(n)  # its dead letter goes out on the next round
                else:
                    raise RuntimeError(f"topic {topic} refused a record: {type(error).__name__}: {error}")
            todo = sorted(retry)
            if todo and outage:
                if time.monotonic() >= deadline:
                    raise OutageGaveUp(f"Kafka did not take {len(todo)} records for "
                                       f"{self.settings.pipeline.outage_max_wait_s:g}s (pipeline.outage_max_wait_s)")
                time.sleep(min(5.0, 0.2 * 2 ** attempt))
                attempt += 1
        if attempt:
            OUTAGES.recovered("Kafka (produce)")
        written = len(out)
        self._buffer = []
        return written

    def close(self) -> None:
        self._producer.close()
