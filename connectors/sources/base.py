"""What every source shares: `FragmentWriter` (validate, key, produce, confirm) and `BaseSource`."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from connectors.kafka import make_producer
from newswire.schemas import SchemaViolation, validate
from newswire.settings import Settings
from pipelines.events import dead_letter, utc_now_iso


@dataclass
class WriteReport:
    """What a write did: how many fragments the broker acknowledged, and what was rejected why."""

    accepted: int = 0
    rejected: list[str] = field(default_factory=list)


def fragment_key(fragment: dict[str, Any]) -> bytes:
    """Partition key: parts of one story (or one source item) land on one partition, in order."""
    return (fragment.get("story_key") or f"{fragment['source']}:{fragment.get('id') or fragment.get('url') or ''}"
            ).encode()


class FragmentWriter:
    """Validates fragments against config/schemas/fragment.v1.json and produces them to the raw topic.

    Invalid input goes to the dead-letter topic with the reason (stage 'ingest'). ``write`` returns
    only after the broker acknowledged every record (acks=all, idempotent producer); a failed
    delivery raises instead of being dropped.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer = make_producer(settings)

    def write(self, fragments: Iterable[dict[str, Any] | tuple[str, bytes]], timeout_s: float = 60) -> WriteReport:
        """Produce fragments; items may be (error, original bytes) pairs for input that did not parse."""
        report = WriteReport()
        futures = []
        topics = self.settings.kafka.topics
        for item in fragments:
            if isinstance(item, tuple):
                error, original = item
                self._dead_letter("parse", "not_json", error, original)
                report.rejected.append(error)
                continue
            item = {**item, "received_at": item.get("received_at") or utc_now_iso()}
            try:
                validate("fragment", item)
            except SchemaViolation as exc:
                self._dead_letter("validate", "schema", str(exc), orjson.dumps(item))
                report.rejected.append(str(exc))
                continue
            futures.append(self._producer.send(topics.fragments.name, key=fragment_key(item),
                                               value=orjson.dumps(item)))
        self._producer.flush(timeout=timeout_s)
        for f in futures:
            f.get(timeout=0)  # raises KafkaError if the broker did not take it
            report.accepted += 1
        return report

    def _dead_letter(self, stage: str, reason: str, error: str, original: bytes) -> None:
        record = dead_letter(f"ingest:{stage}", reason, error, original, None, "(ingest)", -1, -1, None)
        self._producer.send(self.settings.kafka.topics.dlq.name, value=orjson.dumps(record))

    def close(self) -> None:
        self._producer.close()


class BaseSource(abc.ABC):
    """A source connector: ``start()`` begins pushing fragments to ``default_topic``; ``stop()`` ends it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def default_topic(self) -> str:
        return self.settings.kafka.topics.fragments.name

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...
