"""The consumer contract (docs/consumers.md) checked from outside the project's own Kafka client:
one pipeline run writes real enriched events, a dead letter and an alert, then confluent-kafka
(librdkafka) and the kcat binary read them; every value must match its JSON Schema and every key the
documented one."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer
from jsonschema import Draft202012Validator, FormatChecker

from core.schemas import load_schema
from core.settings import Settings
from tests.harness import NATO_FINLAND_RULES

pytestmark = pytest.mark.e2e

N_FERRY = 4
N_GOOD = N_FERRY + 2  # the ferry updates plus the two shared samples (two sources: the rule fires)
BAD_KEY = b"wire:bad-1"



@dataclass(frozen=True)
class Message:
    """One record as a foreign client saw it."""

    partition: int
    key: bytes | None
    value: bytes
    headers: list[Any]


def fragments(samples: dict[str, str]) -> list[dict[str, Any]]:
    ferry = [{"source": "contract:wire", "id": f"c-{i}", "title": f"Ferry update {i}",
              "text": f"Update {i}: the harbour authority said ferry services to the islands would resume on "
                      f"Wednesday once the storm had passed, with {i + 2} extra sailings planned."}
             for i in range(N_FERRY)]
    return [*ferry, {"source": "contract:outlet-a", "id": "s-a", "text": samples["russia-warns-finland-sweden"]},
            {"source": "contract:outlet-b", "id": "s-b", "text": samples["liveblog-fragment-2-26"]}]


def read_with_confluent_kafka(settings: Settings, topic: str, n: int, timeout_s: float) -> list[Message]:
    """Read `topic` from the beginning with librdkafka until `n` records arrived."""
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "group.id": f"contract-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            out.append(Message(msg.partition(), msg.key(), msg.value(), msg.headers() or []))
    finally:
        consumer.close()
    return out


def read_with_kcat(settings: Settings, topic: str) -> list[Message]:
    """The whole topic through `kcat -C -J -e -o beginning` (one JSON envelope per record)."""
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat not found on PATH: `make system-deps` installs it (Debian package kcat)")
    done = subprocess.run([kcat, "-C", "-b", settings.kafka.bootstrap_servers, "-t", topic, "-J", "-e", "-q",
                           "-o", "beginning"], capture_output=True, timeout=60, check=True)
    out = []
    for line in done.stdout.splitlines():
        env = orjson.loads(line)
        key = env.get("key")
        out.append(Message(env["partition"], key.encode() if key is not None else None, env["payload"].encode(),
                           env.get("headers") or []))
    return out


def check_enriched(messages: list[Message]) -> None:
    validator = Draft202012Validator(load_schema("enriched-event"), format_checker=FormatChecker())
    assert len(messages) == N_GOOD
    for m in messages:
        event = orjson.loads(m.value)
        validator.validate(event)
        assert event["schema"] == "enriched-event/1"
        assert m.key == event["event_id"].encode()  # keyed by event_id, UTF-8
        assert m.headers == []  # no Kafka headers on this topic (docs/consumers.md)
        assert event["story_id"] and "story" in event and "novelty" in event  # pipeline.stories is on
    assert {orjson.loads(m.value)["source_id"] for m in messages} == {*(f"c-{i}" for i in range(N_FERRY)), "s-a", "s-b"}


def check_dead_letters(messages: list[Message], topic: str) -> None:
    validator = Draft202012Validator(load_schema("dead-letter"), format_checker=FormatChecker())
    assert len(messages) == 1
    letter = orjson.loads(messages[0].value)
    validator.validate(letter)
    assert messages[0].key == BAD_KEY  # the original record's key
    assert (letter["stage"], letter["reason"]) == ("parse", "not_json")
    assert base64.b64decode(letter["original_b64"]) == b"this is not json"
    assert letter["origin"]["topic"] == topic


def check_alerts(messages: list[Message], stored: list[tuple[str, str]]) -> None:
    """The run fires the rule once. A replayed event may re-publish the same alert (same alert_id,
    docs/consumers.md), so the contract is: every record valid, keyed by its alert_id, one id."""
    validator = Draft202012Validator(load_schema("alert"), format_checker=FormatChecker())
    assert messages
    for m in messages:
        alert = orjson.loads(m.value)
        validator.validate(alert)
        assert alert["schema"] == "alert/1"
        assert m.key == alert["alert_id"].encode()  # keyed by alert_id, UTF-8
        assert m.headers == []  # no Kafka headers on this topic (docs/consumers.md)
        assert alert["rule"] == "nato-finland" and alert["counts"]["sources"] == 2
    ids = {orjson.loads(m.value)["alert_id"] for m in messages}
    assert len(ids) == 1, ids
    assert stored == [(ids.pop(), "nato-finland")]  # the same alert in the store's alerts table



def test_enriched_dead_letters_and_alerts_read_by_confluent_kafka_and_kcat(
        make_stack: Any, samples: dict[str, str]) -> None:
    stack = make_stack(**{"alerts.rules_path": str(NATO_FINLAND_RULES)})
    topics = stack.settings.kafka.topics
    stack.start_pipeline()
    stack.produce([b"this is not json", *fragments(samples)], key=lambda i: BAD_KEY if i == 0 else f"k{i}".encode())

    enriched = read_with_confluent_kafka(stack.settings, topics.enriched.name, N_GOOD, timeout_s=90)
    assert len(enriched) == N_GOOD, stack.pipeline_log()
    check_enriched(enriched)
    dead = read_with_confluent_kafka(stack.settings, topics.dlq.name, 1, timeout_s=30)
    check_dead_letters(dead, topics.fragments.name)
    # An alert is produced in the same bundle as the event that fired it, so it is already there.
    alerts = read_with_confluent_kafka(stack.settings, topics.alerts.name, 1, timeout_s=30)
    assert alerts, stack.pipeline_log()
    check_alerts(alerts, stack.stored_alerts())

    check_enriched(read_with_kcat(stack.settings, topics.enriched.name))
    check_dead_letters(read_with_kcat(stack.settings, topics.dlq.name), topics.fragments.name)
    check_alerts(read_with_kcat(stack.settings, topics.alerts.name), stack.stored_alerts())
