"""The embedded Apache Kafka broker: real JVM, data that survives restarts, no orphan processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from connectors.kafka import KafkaBroker, make_consumer, make_producer, wait_for_broker
from core.settings import load_settings
from tests.harness import REPO, free_port, pids_with

pytestmark = pytest.mark.e2e


def broker_settings(tmp_path: Path):
    return load_settings(overrides={"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}",
                                    "kafka.embedded.controller_port": free_port(),
                                    "data_dir": str(tmp_path)}, environ={})


def java_pids(data_dir: Path) -> list[int]:
    return pids_with(b"kafka.Kafka", str(data_dir).encode())


def test_restart_keeps_topics_and_records_and_stop_leaves_no_process(tmp_path: Path) -> None:
    settings = broker_settings(tmp_path)
    topic = settings.kafka.topics.fragments.name
    with KafkaBroker(settings):
        producer = make_producer(settings)
        producer.send(topic, key=b"k", value=b"survives a restart").get(timeout=30)
        producer.close()
    assert java_pids(tmp_path / "kafka") == []
    with KafkaBroker(settings):
        consumer = make_consumer(settings, group_id=None)
        consumer.subscribe([topic])
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while not values and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records)
        partitions = consumer.partitions_for_topic(topic)
        consumer.close()
        assert values == [b"survives a restart"]
        assert len(partitions or ()) == settings.kafka.topics.fragments.partitions
    assert java_pids(tmp_path / "kafka") == []


def test_killed_parent_takes_its_broker_down(tmp_path: Path) -> None:
    settings = broker_settings(tmp_path)
    script = (
        "import sys, time\n"
        "from core.settings import load_settings\n"
        "from connectors.kafka import KafkaBroker\n"
        f"s = load_settings(overrides={{'kafka.bootstrap_servers': '{settings.kafka.bootstrap_servers}', "
        f"'kafka.embedded.controller_port': {settings.kafka.embedded.controller_port}, 'data_dir': '{tmp_path}'}}, environ={{}})\n"
        "KafkaBroker(s).start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == b"ready"
    assert java_pids(tmp_path / "kafka"), "broker JVM should be running"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while java_pids(tmp_path / "kafka") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert java_pids(tmp_path / "kafka") == [], "the broker outlived its killed parent"
    # And the next start on the same data dir works.
    with KafkaBroker(settings):
        pass


def test_waiting_for_a_broker_ends_when_the_process_is_told_to_stop() -> None:
    """A pipeline job that gets SIGTERM while it waits for the broker (`up` stopping, or failing,
    before the broker is there) stops then, not after the whole wait."""
    nobody = f"127.0.0.1:{free_port()}"
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    assert wait_for_broker(nobody, timeout_s=60, stop=stop) is False
    assert time.monotonic() - started < 5  # at the next probe after the signal, not after the 60 s
    with pytest.raises(TimeoutError, match="no Kafka broker ready"):
        wait_for_broker(nobody, timeout_s=0.5)
