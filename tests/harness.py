"""Test harness: the real embedded Kafka broker, isolated settings per test, pipeline processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import yaml

from connectors.kafka import ensure_topics, make_consumer, make_producer
from connectors.process import free_port
from core.schemas import config_dir
from core.settings import Settings, load_settings
from tests.paths import FIXTURES, REPO, SHARED  # noqa: F401  (re-exported for tests)

#: A rules file for end-to-end tests (alerts.rules_path): NATO + Finland from two sources fires.
NATO_FINLAND_RULES = FIXTURES / "alerts-nato-finland.yaml"


def pids_with(*markers: bytes) -> list[int]:
    """Pids of live processes whose command line holds every marker (an embedded server's, say)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if all(m in cmd for m in markers):
                out.append(int(proc.name))
    return out


@contextmanager
def reachable_tmp_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder every local account may enter (not list), removed afterwards.

    PostgreSQL started as root runs as the 'postgres' account with no capability, so it must be
    able to walk to its cluster, and pytest's tmp_path lies under /tmp/pytest-of-root (0700).
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_connected(source: Any, timeout_s: float = 30) -> None:
    """Wait until an HttpSource's /health says the broker is connected (posts get 503 before)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=source.url) as client:
        while time.monotonic() < deadline:
            if client.get("/health").status_code == 200:
                return
            time.sleep(0.1)
    raise AssertionError(f"http ingest never connected to the broker: {source.broker_error}")


def write_config(path: Path, overrides: dict[str, Any]) -> Path:
    """config/newswire.yaml with dotted-key overrides, written to `path`."""
    raw = yaml.safe_load((config_dir() / "newswire.yaml").read_text())
    for dotted, value in overrides.items():
        node = raw
        *parents, last = dotted.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[last] = value
    path.write_text(yaml.safe_dump(raw))
    return path


class Stack:
    """Settings + config file for one test: its own topics, consumer group and SQLite file on the
    shared broker, so tests never see each other's records."""

    def __init__(self, base: dict[str, Any], tmp: Path, **overrides: Any) -> None:
        tag = uuid.uuid4().hex[:8]
        o = dict(base)
        for role in ("fragments", "enriched", "alerts", "dlq", "stats"):
            o[f"kafka.topics.{role}.name"] = f"t{tag}.{role}"
        o["kafka.consumer_group"] = f"g{tag}"
        o["redis.namespace"] = f"t{tag}:"
        o["storage.url"] = f"sqlite:///{tmp / 'newswire.db'}"
        o["data_dir"] = str(tmp)
        o["pipeline.health_port"] = None  # many pipelines per test session: a test that reads it sets a port
        o["alerts.notify_metrics_port"] = None  # likewise for the notifiers' /metrics
        o["connectors.rss.health_port"] = None  # and the polling sources' /metrics, /healthz, /readyz
        o["connectors.inbox.health_port"] = None
        o["alerts.rules_path"] = str(config_dir() / "alerts.yaml")  # the shipped rules, unless a test says
        o.update(overrides)
        self.overrides = o
        self.config_path = write_config(tmp / "newswire.yaml", o)
        self.settings: Settings = load_settings(self.config_path, environ={})
        ensure_topics(self.settings)
        self.tmp = tmp
        self._procs: list[subprocess.Popen[bytes]] = []

    # -- pipeline processes
    def stored_alerts(self) -> list[tuple[str, str]]:
        """(alert_id, rule) of every alert in this stack's SQLite store."""
        import sqlite3

        with sqlite3.connect(self.settings.sqlite_path) as db:
            return db.execute("SELECT alert_id, rule FROM alerts ORDER BY alert_id").fetchall()

    def variant_config(self, name: str, **overrides: Any) -> Path:
        """This stack's config with some keys changed (same topics, group, Redis namespace), e.g. a
        second pipeline instance's."""
        return write_config(self.tmp / f"{name}.yaml", {**self.overrides, **overrides})

    def start_pipeline(self, config_path: Path | None = None) -> subprocess.Popen[bytes]:
        config = config_path or self.config_path
        with open(self.tmp / f"pipeline-{len(self._procs)}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "newswire.cli", "--config", str(config), "pipeline"],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._procs.append(proc)
        return proc

    def start_jobs(self, workers: int, **logging: Any) -> list[int]:
        """The pipeline as `newswire up --workers N` runs it: one job, or N jobs splitting the raw topic's
        partitions, forked by one launcher (newswire/workers.py, logs in ``tmp/workers``); returns the
        jobs' process ids; kill/stop_all cover them (through the launcher). ``logging``: the
        launcher's ``verbose`` / ``log_format`` for its jobs."""
        if workers == 1:
            return [self.start_pipeline().pid]
        from newswire.workers import PipelineWorkers

        pool = PipelineWorkers(self.config_path, self.settings.kafka.topics.fragments.partitions, workers,
                               self.tmp / "workers", **logging).start()
        assert pool.proc is not None
        self._procs.append(pool.proc)
        return pool.job_pids()

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Signal the pipeline's whole process group (the Python process and its Prism child)."""
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def process_roots(self) -> list[int]:
        """The process ids this stack started (a lone job, a launcher with its jobs below it, a peer):
        their process trees hold everything that runs."""
        return [p.pid for p in self._procs if p.poll() is None]

    def stop_all(self) -> None:
        for p in self._procs:
            if p.poll() is None:
                self.kill(p, signal.SIGTERM)

    def pipeline_log(self) -> str:
        logs = [self.tmp / f"pipeline-{i}.log" for i in range(len(self._procs))]
        logs += sorted((self.tmp / "workers").glob("*.log"))  # jobs started by newswire.workers.PipelineWorkers
        return "\n".join(log.read_text(errors="replace")[-4000:] for log in logs if log.exists())

    # -- Kafka
    def produce(self, values: Iterable[bytes | dict[str, Any]], key: Callable[[int], bytes | None] = lambda i: None) -> int:
        producer = make_producer(self.settings)
        n = 0
        for i, v in enumerate(values):
            producer.send(self.settings.kafka.topics.fragments.name, key=key(i),
                          value=v if isinstance(v, bytes) else orjson.dumps(v))
            n += 1
        producer.flush()
        producer.close()
        return n

    def consume(self, role: str, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float) -> list[dict[str, Any]]:
        """Read a topic from the beginning until `until(records)` holds or the timeout passes."""
        consumer = make_consumer(self.settings, group_id=None)
        consumer.subscribe([getattr(self.settings.kafka.topics, role).name])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and not until(out):
                for records in consumer.poll(timeout_ms=200).values():
                    out.extend(orjson.loads(r.value) for r in records)
        finally:
            consumer.close()
        return out


def has_sources(*source_ids: str) -> Callable[[list[dict[str, Any]]], bool]:
    """A `consume` condition: every one of these source ids has arrived. Counting records is not
    enough after a restart, because at-least-once delivery may replay an event already read."""
    return lambda records: set(source_ids) <= {r.get("source_id") for r in records}


def status_records(settings: Settings) -> dict[str, dict[str, Any]]:
    """The status hash's records (connectors/status.py) in this settings' Redis namespace."""
    from connectors.redis import make_redis
    from connectors.status import read_status

    client = make_redis(settings.redis.url, retries=0)
    try:
        return read_status(client, settings.redis.namespace)
    finally:
        client.close()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 60) -> None:
    """Return once `predicate()` holds; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def parse_metrics(text: str) -> list[Any]:
    """A Prometheus text exposition, parsed with prometheus_client's parser: every sample."""
    from prometheus_client.parser import text_string_to_metric_families

    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def scrape(url: str) -> list[Any]:
    """GET a /metrics endpoint (it must answer 200 in the text format), parsed."""
    import httpx

    response = httpx.get(url, timeout=15)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain"), response
    return parse_metrics(response.text)


def series(samples: list[Any], name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The samples called `name`, keyed by the values of `labels` in that order (``()`` for none)."""
    return {tuple(s.labels[k] for k in labels): s.value for s in samples if s.name == name}


@contextmanager
def own_postgres_server(prefix: str = "newswire-pg-") -> Iterator[Any]:
    """A real PostgreSQL server on a free port in a folder the 'postgres' account can reach; stopped
    and removed afterwards."""
    from connectors.postgres import PostgresServer

    with reachable_tmp_dir(prefix) as folder:
        server = PostgresServer(folder / "postgres", port=free_port()).start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def http_ingest(settings: Settings, token: str | None = None) -> Iterator[Any]:
    """An HttpSource (POST /fragments) on a free port, connected to the broker; stopped afterwards."""
    from connectors.sources.http import HttpSource

    source = HttpSource(settings, port=0, token=token)
    source.start()
    try:
        wait_connected(source)
        yield source
    finally:
        source.stop()
