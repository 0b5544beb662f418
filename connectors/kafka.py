"""Kafka: client settings, topic admin, and the embedded single-node Apache Kafka broker (KRaft).

The embedded broker is the real Apache Kafka (jars from Maven Central, see connectors/toolchain.py)
run as a child JVM. Its data directory survives restarts; the child is tied to its parent with
PR_SET_PDEATHSIG so a killed parent leaves no orphan broker, and a stale broker found through the
pid file on start is stopped first.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Self

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, NewPartitions, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from connectors.process import EmbeddedServer, port_open
from connectors.toolchain import BROKER_DIR, kafka_libs
from core.settings import Settings, Topic

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- client settings

def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Settings for every producer in the project: acks=all and idempotent, so retries never duplicate."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": settings.kafka.bootstrap_servers.split(","),
        "acks": "all",
        "enable_idempotence": True,
        "retries": 2**31 - 1,
        "delivery_timeout_ms": 120_000,
        "linger_ms": 5,
        "compression_type": None,
        "max_request_size": max(1_048_576, settings.pipeline.max_fragment_bytes * 2),
        "client_id": "newswire",
    }
    cfg.update(overrides)
    return cfg


def consumer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Settings for consumers: manual commits only (offsets follow the sinks, never a timer)."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": settings.kafka.bootstrap_servers.split(","),
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "client_id": "newswire",
        "fetch_max_wait_ms": 50,
        "max_partition_fetch_bytes": max(1_048_576, settings.pipeline.max_fragment_bytes * 2),
    }
    cfg.update(overrides)
    return cfg


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer with the project's delivery settings."""
    return KafkaProducer(**producer_config(settings, **overrides))


def make_consumer(settings: Settings, **overrides: Any) -> KafkaConsumer:
    """A consumer with the project's settings (no subscription; call subscribe() or assign())."""
    return KafkaConsumer(**consumer_config(settings, **overrides))


# --------------------------------------------------------------------------- topic admin

def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Per-topic broker settings the pipeline relies on.

    The raw topic stamps records with the broker's append time: the pipeline's event time and
    watermarks come from record timestamps, and a producer's own clock (CreateTime) can lag by
    its batching and retries, which would make records late for the windows. LogAppendTime is
    monotonic per partition and on the broker's clock.
    """
    return {settings.kafka.topics.fragments.name: {"message.timestamp.type": "LogAppendTime"}}


def ensure_topics(settings: Settings, topics: tuple[Topic, ...] | None = None, timeout_s: float = 30) -> None:
    """Create the project's topics if missing, grow their partition counts to the configured ones,
    and apply `topic_configs` (also to topics that already exist)."""
    wanted = {t.name: t for t in (topics or settings.kafka.topics.all())}
    configs = topic_configs(settings)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers.split(","),
                             client_id="newswire-admin", request_timeout_ms=int(timeout_s * 1000))
    try:
        existing = {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}
        missing = [NewTopic(t.name, t.partitions, 1, topic_configs=configs.get(n, {}))
                   for n, t in wanted.items() if n not in existing]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=int(timeout_s * 1000))
            except TopicAlreadyExistsError:
                pass
        grow = {n: NewPartitions(t.partitions) for n, t in wanted.items()
                if n in existing and existing[n] < t.partitions}
        if grow:
            admin.create_partitions(grow)
        update = [ConfigResource("TOPIC", n, configs=c) for n, c in configs.items() if n in existing and n in wanted]
        if update:
            admin.alter_configs(update)  # incremental SET: leaves other topic settings alone
        # Wait until every partition has a leader, so the first produce does not fail.
        deadline = time.monotonic() + timeout_s
        while True:
            described = {t["name"]: t for t in admin.describe_topics(list(wanted))}
            ready = all(
                described.get(n) and len(described[n]["partitions"]) >= t.partitions
                and all(p["leader_id"] >= 0 for p in described[n]["partitions"])
                for n, t in wanted.items()
            )
            if ready:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {sorted(wanted)} not ready after {timeout_s}s")
            time.sleep(0.2)
    finally:
        admin.close()


def broker_check(bootstrap_servers: str) -> dict[str, Any]:
    """Whether a bootstrap server accepts a TCP connection now (any one is enough), as a readiness
    check's entry: ``{"ok": bool, "detail": str}``."""
    up = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        address = (host or server.strip()).strip("[]"), int(port) if port.isdigit() else 9092
        if port_open(*address):
            up.append(f"{address[0]}:{address[1]}")
    return {"ok": bool(up), "detail": f"reachable: {', '.join(up)}" if up else
            f"broker unavailable: none of {bootstrap_servers} accepts connections"}


def wait_for_broker(bootstrap_servers: str, timeout_s: float = 60, stop: threading.Event | None = None) -> bool:
    """Block until a broker answers metadata requests (KRaft: it has joined the quorum and unfenced):
    True. False as soon as ``stop`` is set (a process told to stop while it waits stops, instead of
    waiting out ``timeout_s`` first)."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            return False
        # No client until a bootstrap server accepts connections: kafka-python's bootstrap retries
        # an unreachable one for ~30 s (logging each refusal) before it gives up.
        reachable = broker_check(bootstrap_servers)
        if not reachable["ok"]:
            last = OSError(reachable["detail"])
        else:
            try:
                admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","), client_id="newswire-probe",
                                         request_timeout_ms=3000)
                try:
                    brokers = admin.describe_cluster()["brokers"]
                    if brokers and not any(b.get("is_fenced") for b in brokers):
                        return True
                finally:
                    admin.close()
            except (KafkaError, OSError) as exc:
                last = exc
        if stop is not None:
            stop.wait(0.3)
        else:
            time.sleep(0.3)
    raise TimeoutError(f"no Kafka broker ready at {bootstrap_servers} after {timeout_s}s (last error: {last})")


# --------------------------------------------------------------------------- embedded broker

class KafkaBroker(EmbeddedServer):
    """The embedded single-node Apache Kafka broker in KRaft mode (broker and controller in one JVM).

    Usage: ``with KafkaBroker(settings) as broker: ...`` or ``start()`` / ``stop()``.
    """

    name = "Kafka broker"

    def __init__(self, settings: Settings, data_dir: Path | None = None) -> None:
        self.settings = settings
        host, _, port = settings.kafka.bootstrap_servers.split(",")[0].rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.controller_port = settings.kafka.embedded.controller_port
        self.dir = (data_dir or settings.data_dir / "kafka").resolve()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid_file(self) -> Path:
        return self.dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "broker.out"

    def _properties(self) -> str:
        h, p, c = self.host, self.port, self.controller_port
        return "\n".join([
            "# Written by connectors/kafka.py for the embedded broker; edits are overwritten on start.",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{h}:{c}",
            f"listeners=PLAINTEXT://{h}:{p},CONTROLLER://{h}:{c}",
            f"advertised.listeners=PLAINTEXT://{h}:{p}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.dir / 'data'}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            f"message.max.bytes={max(1_048_588, self.settings.pipeline.max_fragment_bytes * 2)}",
            "log.retention.hours=168",
            "",
        ])

    def _java_cmd(self, main: str, *args: str) -> list[str]:
        libs = kafka_libs(self.settings.kafka.embedded.version)
        return ["java", f"-Xmx{self.settings.kafka.embedded.heap}", "-XX:+UseG1GC",
                "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.dir}",
                f"-Dlog4j2.configurationFile={BROKER_DIR / 'log4j2.properties'}",
                "-cp", f"{libs}/*", main, *args]

    def start(self, timeout_s: float = 90) -> Self:
        """Format storage on first use, start the JVM, wait until ready, create the project's topics."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._stop_stale(self.pid_file, b"kafka.Kafka", str(self.dir).encode())
        props = self.dir / "server.properties"
        props.write_text(self._properties())
        if not (self.dir / "data" / "meta.properties").exists():
            # --cluster-id=ID, not "-t ID": a urlsafe id starting with "-" (1 in 64) would read as a flag.
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(self._java_cmd("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                                                "-c", str(props)), capture_output=True, text=True, check=False)
            if fmt.returncode != 0:
                raise RuntimeError(f"formatting Kafka storage in {self.dir} failed: {fmt.stdout}{fmt.stderr}")
        self._spawn(self._java_cmd("kafka.Kafka", str(props)), self.host, self.port,
                    "is another broker running? Stop it or set kafka.bootstrap_servers to a free port.")
        try:
            deadline = time.monotonic() + timeout_s
            self._wait_until(lambda: port_open(self.host, self.port), timeout_s, f"open {self.host}:{self.port}",
                             poll_s=0.2)
            wait_for_broker(self.bootstrap_servers, max(5.0, deadline - time.monotonic()))
            ensure_topics(self.settings)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

