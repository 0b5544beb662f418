"""The Newswire stage chain as a Quix Streams application: the peer that bench/peers/compare.py runs
beside the Beam pipeline (what is compared, and why it is fair: bench/peers/README.md).

    raw topic (bytes) --apply(StageChain.process)--> Deliveries (bench/stage_chain.py: the pipeline's
        stage functions, order and dead-letter routing)
      --> enriched topic (events, key event_id), DLQ topic (dead letters, the raw record's key),
          alerts topic (the alerts an event fired, key alert_id): one to_topic picking the topic
      --> the store storage.url names (events, stories, alerts): a BatchingSink around the same
          EventStore the pipeline's sink stage writes, flushed at every checkpoint

Topics, consumer group, Redis and store come from a Newswire config file, so the peer runs on the
same broker and Redis as the pipeline, each with its own names (tests/harness.Stack makes them).
Offsets: Quix's at-least-once checkpoints (every ``--commit-interval`` seconds: sinks flushed, the
producer flushed, then the offsets committed), as the pipeline commits only what every sink has.
Runs until SIGTERM/SIGINT.

    python bench/peers/quix_peer.py --config path/to/newswire.yaml [--commit-interval 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from quixstreams import Application, message_context
from quixstreams.models.serializers import SerializationContext, Serializer
from quixstreams.sinks import BatchingSink, SinkBatch

from bench.stage_chain import StageChain
from core.outage import wait_out
from core.records import REPLAY_HEADER, Delivery
from core.settings import Settings, load_settings

log = logging.getLogger("quix_peer")


class Out(NamedTuple):
    """One record to produce: which output topic (role), key, serialised value; ``delivery`` on the
    first record of each Delivery, for the store."""

    role: str
    key: bytes | None
    value: bytes
    delivery: Delivery | None


def out_records(d: Delivery) -> list[Out]:
    """The topic records of one Delivery, as the pipeline's KafkaTopicsSink writes them."""
    if d.kind == "event":
        head = Out("enriched", d.payload["event_id"].encode(), orjson.dumps(d.payload), d)
    else:
        head = Out("dlq", d.key, orjson.dumps(d.payload), d)
    return [head, *(Out("alerts", a["alert_id"].encode(), orjson.dumps(a), None) for a in d.alerts)]


class _Serialised(Serializer):
    """The value serializer of the output topics: an ``Out`` is serialised already."""

    def __call__(self, value: Out, ctx: SerializationContext) -> bytes:
        return value.value


class StoreSink(BatchingSink):
    """The pipeline's store (``storage.url``: SQLite or PostgreSQL) as a Quix sink: a checkpoint's
    events, stories and alerts upserted in one transaction per partition; an unreachable store is
    waited out like the pipeline's sink stage does."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.store: Any = None

    def setup(self) -> None:
        from connectors.sinks import store_class

        url = self.settings.storage_url
        cls = store_class(url)
        self.store = wait_out(lambda: cls(url), cls.unavailable, "store (connect)",
                              self.settings.pipeline.outage_max_wait_s)

    def write(self, batch: SinkBatch) -> None:
        for item in batch:
            if item.value.delivery is not None:
                self.store.add(item.value.delivery)
        wait_out(self.store.flush, self.store.unavailable, "sink store", self.settings.pipeline.outage_max_wait_s)
        if self.store.refused:  # the pipeline turns these into dead letters; the peer only says so
            log.error("store refused %d records: %s", len(self.store.refused), self.store.refused)


def replay_of(headers: Any) -> str | None:
    """The ``newswire-replay-of`` header (core/records.py), as the pipeline's reader reads it."""
    for name, value in headers or ():
        if name == REPLAY_HEADER:
            return value.decode("utf-8", "replace") if value is not None else ""
    return None


def build_app(settings: Settings, commit_interval: float = 5.0) -> Application:
    """The Quix Streams application of the stage chain (see the module docstring)."""
    topics = settings.kafka.topics
    app = Application(
        broker_address=settings.kafka.bootstrap_servers,
        consumer_group=settings.kafka.consumer_group,
        auto_offset_reset="earliest",
        commit_interval=commit_interval,
        processing_guarantee="at-least-once",
        state_dir=str(settings.data_dir / "quix-state"),
        use_changelog_topics=False,  # no Quix state: dedup, story and alert state is in Redis
        auto_create_topics=False,  # the topics are the project's (connectors/kafka.ensure_topics)
        # The project's client settings where librdkafka has them (connectors/kafka.py: consumers
        # fetch with a 50 ms wait; the sink's producer is idempotent, acks=all, linger 2 ms).
        consumer_extra_config={"fetch.wait.max.ms": 50,
                               "max.partition.fetch.bytes": max(1_048_576, settings.pipeline.max_fragment_bytes * 2)},
        producer_extra_config={"acks": "all", "enable.idempotence": True, "linger.ms": 2,
                               "message.max.bytes": max(1_048_576, settings.pipeline.max_fragment_bytes * 2)},
        loglevel="INFO",
    )
    raw = app.topic(topics.fragments.name, value_deserializer="bytes", key_deserializer="bytes")
    out = {role: app.topic(getattr(topics, role).name, value_serializer=_Serialised(), key_serializer="bytes")
           for role in ("enriched", "dlq", "alerts")}
    chain = StageChain(settings)

    def run_chain(value: bytes, key: bytes | None, timestamp: int, headers: Any) -> list[Out]:
        ctx = message_context()
        deliveries = chain.process(value, ctx.offset, partition=ctx.partition, timestamp_ms=timestamp, key=key,
                                   topic=ctx.topic, replay_of=replay_of(headers))
        return [o for d in deliveries for o in out_records(d)]

    sdf = app.dataframe(raw)
    sdf = sdf.apply(run_chain, expand=True, metadata=True)
    # Quix produces with the input record's timestamp; the pipeline's producer stamps the time of
    # the send (CreateTime). Stamp the send time here too, so the latency of both is measured alike.
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: round(time.time() * 1000))
    sdf = sdf.to_topic(lambda value, key, timestamp, headers: out[value.role], key=lambda value: value.key)
    sdf.sink(StoreSink(settings))
    return app


def start_peer(stack: Any, commit_interval: float = 5.0) -> subprocess.Popen[bytes]:
    """Start the peer as its own process on a tests/harness.Stack's config, as ``Stack.start_pipeline``
    starts the pipeline: same log files, and the stack's ``kill``/``stop_all``/``pipeline_log`` cover it."""
    procs = stack._procs
    with open(stack.tmp / f"pipeline-{len(procs)}.log", "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--config", str(stack.config_path),
             "--commit-interval", str(commit_interval)],
            cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    procs.append(proc)
    return proc


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--config", help="newswire.yaml (default: config/newswire.yaml)")
    ap.add_argument("--commit-interval", type=float, default=5.0, help="seconds between checkpoints (Quix default 5)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(args.config)
    build_app(settings, args.commit_interval).run()


if __name__ == "__main__":
    main()
