"""Chaos: SIGKILLs and dependency outages while fragments flow; nothing lost, nothing stored twice.

Starts its own Kafka broker, Redis and (with ``--store postgresql``, the default) PostgreSQL on
free loopback ports, the pipeline as ``python -m newswire.cli --config X pipeline`` (the shipped
config with this run's ports, topics and store; /readyz on a free port), and the HTTP ingest
endpoint (HttpSource) in this process. Two feeders run throughout at a steady, bounded rate: one
produces fragments straight to the raw topic, one POSTs them to /fragments and retries a 503 the
way a client should. Every fragment has a unique ``id``; it counts as *accepted* once the broker
acknowledged it or the endpoint answered 202. Then, one after the other:

1. ``--kills`` SIGKILLs of the pipeline's process group, each followed by an immediate restart
   (what systemd would do: the supervisor inside the process cannot help against SIGKILL);
2. a broker outage (``--broker-s``): stopped, then started again on the same ports and data dir;
3. a Redis outage (``--redis-s``), same port and data dir;
4. a PostgreSQL outage (``--postgres-s``; only with ``--store postgresql``).

During the outages the pipeline process is left alone: it has to ride them out itself. At the end
the feeders stop, the pipeline catches up, and every accepted fragment is looked up in the store.
Per fault (a fragment belongs to the fault during or after which it was accepted): lost (accepted,
never stored), duplicate rows (one id stored more than once), dead letters (valid input must
produce none), the longest recovery (fault over -> first new row stored), whether the pipeline
process exited on its own, and whether a manual step was needed. Exit status 1 if anything was lost
or duplicated, or the pipeline needed a hand.

    python bench/chaos.py                                   # the acceptance run (~10-15 min)
    python bench/chaos.py --quick                           # 3 kills, 10 s outages (~3-4 min)
    python bench/chaos.py --store sqlite --kills 5 --broker-s 20 --redis-s 20

tests/test_chaos.py runs a small subset of this in CI with the same code.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from connectors.kafka import KafkaBroker, make_consumer, make_producer
from connectors.postgres import PostgresServer
from connectors.process import free_port
from connectors.redis import RedisServer
from connectors.sinks import sqlite_path
from connectors.sources.http import HttpSource
from core.settings import load_settings
from tests.harness import Stack, http_ingest

log = logging.getLogger("chaos")

_TOKEN = "chaos-bench"  # the in-process ingest endpoint's bearer token

# --------------------------------------------------------------------------- fragments

_PLACES = ("Helsinki", "Tallinn", "Riga", "Oslo", "Gdansk", "Turku", "Tampere", "Vilnius", "Stockholm",
           "Bergen", "Aarhus", "Kaunas", "Tartu", "Uppsala", "Malmo", "Rostock")
_SUBJECTS = ("The harbour authority", "The regional council", "Police", "The ferry operator", "Rescue services",
             "The city's mayor", "A spokesperson for the utility", "The weather service", "Rail operators",
             "The coast guard", "Hospital officials", "The airport")
_VERBS = ("said", "confirmed", "announced", "warned", "reported", "told reporters")
_THINGS = ("ferry services would resume", "the bridge would reopen", "power had been restored to {n} homes",
           "{n} flights had been cancelled", "schools would stay closed", "the road to the port was flooded",
           "{n} people had been evacuated", "the water level had fallen by {n} centimetres",
           "repairs would take {n} days", "a curfew would start at {n} o'clock")


def chaos_fragment(tag: str, channel: str, n: int) -> dict[str, Any]:
    """A distinct, plausible fragment with the unique id ``{tag}-{channel}-{n}``."""
    rng = random.Random(f"{tag}-{channel}-{n}")
    sentences = []
    for _ in range(rng.randint(3, 6)):
        thing = rng.choice(_THINGS).format(n=rng.randint(2, 9000))
        sentences.append(f"{rng.choice(_SUBJECTS)} in {rng.choice(_PLACES)} {rng.choice(_VERBS)} that {thing}.")
    fid = f"{tag}-{channel}-{n}"
    return {"source": f"chaos:{channel}", "id": fid, "text": f"Update {fid}: " + " ".join(sentences)}


# --------------------------------------------------------------------------- the store, read directly

def stored_source_ids(url: str) -> list[str] | None:
    """source_id of every row in the store (one entry per row), or None while it cannot be read."""
    query = "SELECT source_id FROM events"
    try:
        if url.startswith("sqlite:///"):
            path = sqlite_path(url)
            if not path.exists():
                return []
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
                return [r[0] for r in db.execute(query)]
        import psycopg

        with psycopg.connect(url, connect_timeout=2) as conn:
            return [r[0] for r in conn.execute(query)]
    except Exception as exc:  # noqa: BLE001 - no table yet, or the store is down: "unknown"
        if "no such table" in str(exc) or "does not exist" in str(exc):
            return []
        return None


def row_count(url: str) -> int | None:
    """Rows in the events table, or None while the store cannot be read."""
    query = "SELECT count(*) FROM events"
    try:
        if url.startswith("sqlite:///"):
            path = sqlite_path(url)
            if not path.exists():
                return 0
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
                return int(db.execute(query).fetchone()[0])
        import psycopg

        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute(query).fetchone()
            return int(row[0]) if row else 0
    except Exception as exc:  # noqa: BLE001 - see stored_source_ids
        if "no such table" in str(exc) or "does not exist" in str(exc):
            return 0
        return None


def readyz(port: int | None) -> int | None:
    """HTTP status of the pipeline's /readyz, or None when nothing answers."""
    if port is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as r:
            return int(r.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return None


# --------------------------------------------------------------------------- feeders

class Accepted:
    """Thread-safe record of what the feeders offered and what was acknowledged (id -> wall time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.offered: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self.refusals: Counter[str] = Counter()

    def offer(self, fid: str) -> None:
        with self._lock:
            self.offered.setdefault(fid, time.time())

    def ack(self, fid: str) -> None:
        with self._lock:
            self.acked.setdefault(fid, time.time())

    def refuse(self, why: str) -> None:
        with self._lock:
            self.refusals[why] += 1


class KafkaFeeder(threading.Thread):
    """Produces ``rate`` fragments a second to the raw topic; a fragment is accepted once acked."""

    def __init__(self, stack: Stack, accepted: Accepted, tag: str, rate: float) -> None:
        super().__init__(name="chaos-kafka-feeder", daemon=True)
        self.stack, self.accepted, self.tag, self.rate = stack, accepted, tag, rate
        self.stop_event = threading.Event()
        self.sent = 0

    def run(self) -> None:
        # send() must not block the steady rate for long while the broker is away (metadata is
        # cached, so records queue in the producer and go out when it is back).
        producer = make_producer(self.stack.settings, max_block_ms=2000)
        topic = self.stack.settings.kafka.topics.fragments.name
        n = 0
        next_at = time.monotonic()
        try:
            while not self.stop_event.is_set():
                doc = chaos_fragment(self.tag, "kafka", n)
                fid = doc["id"]
                n += 1
                self.accepted.offer(fid)
                try:
                    future = producer.send(topic, key=f"chaos:kafka:{fid}".encode(), value=orjson.dumps(doc))
                    future.add_callback(lambda _md, fid=fid: self.accepted.ack(fid))
                    future.add_errback(lambda exc: self.accepted.refuse(f"kafka: {type(exc).__name__}"))
                    self.sent += 1
                except Exception as exc:  # noqa: BLE001 - not accepted; the next one may go through
                    self.accepted.refuse(f"kafka send: {type(exc).__name__}")
                next_at += 1 / self.rate
                self.stop_event.wait(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic() - 1)  # no catch-up burst after a stall
        finally:
            producer.flush(timeout=150)  # what is in flight is acked or failed before the accounting
            producer.close()


class HttpFeeder(threading.Thread):
    """POSTs ``rate`` fragments a second to /fragments; retries each on 429/503 (honouring
    Retry-After) until it is answered 202, like a well-behaved client; a 202 makes it accepted."""

    def __init__(self, url: str, accepted: Accepted, tag: str, rate: float, retry_for_s: float = 300) -> None:
        super().__init__(name="chaos-http-feeder", daemon=True)
        self.url, self.accepted, self.tag, self.rate = url, accepted, tag, rate
        self.retry_for_s = retry_for_s
        self.stop_event = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        import httpx

        n = 0
        next_at = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {_TOKEN}"}) as client:
            while not self.stop_event.is_set():
                doc = chaos_fragment(self.tag, "http", n)
                n += 1
                self.accepted.offer(doc["id"])
                self._post_until_accepted(client, doc)
                next_at += 1 / self.rate
                self.stop_event.wait(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic() - 1)

    def _post_until_accepted(self, client: Any, doc: dict[str, Any]) -> None:
        import httpx

        give_up = time.monotonic() + self.retry_for_s
        body = orjson.dumps(doc)
        while time.monotonic() < give_up:
            try:
                r = client.post("/fragments", content=body, headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                self.accepted.refuse(f"http: {type(exc).__name__}")
                time.sleep(1)
                continue
            if r.status_code == 202:
                self.accepted.ack(doc["id"])
                return
            self.accepted.refuse(f"http {r.status_code}")
            if r.status_code not in (429, 503):
                self.errors.append(f"{doc['id']}: {r.status_code} {r.text[:300]}")
                return
            time.sleep(float(r.headers.get("retry-after", "1")))
        # Feeders stop at the end of the run: what is still being retried then was never accepted.


# --------------------------------------------------------------------------- faults and their outcome

@dataclass
class Fault:
    """One kind of fault as injected: when, how it went, and what the pipeline needed to recover."""

    name: str
    start: float  # wall clock
    end: float = 0.0
    recoveries_s: list[float] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)  # pipeline exits the bench did not cause
    job_failures: int = 0  # jobs the supervisor saw fail (and resubmitted) while the fault lasted
    manual: list[str] = field(default_factory=list)  # what a person would have had to do
    ready_during: Counter[int | None] = field(default_factory=Counter)
    ready_after_s: float | None = None  # fault over -> /readyz 200

    @property
    def max_recovery_s(self) -> float | None:
        return max(self.recoveries_s) if self.recoveries_s else None


@dataclass
class FaultOutcome:
    """The accounting for one fault (the fragments accepted while it lasted and until the next one)."""

    fault: Fault
    accepted: int
    lost: list[str]
    duplicate_rows: int
    dead_letters: int


@dataclass
class Report:
    """What the run found, per fault and in total."""

    outcomes: list[FaultOutcome]
    accepted: int
    stored: int
    unacked_stored: int  # stored though its producer never got an ack (a timed-out post): allowed
    unknown_stored: list[str]  # stored ids no feeder ever offered: must be none
    refusals: Counter[str]
    caught_up_s: float
    store: str
    dead_letter_reasons: Counter[str]
    startup_s: float | None = None  # first pipeline start -> first row stored
    other_job_failures: int = 0  # job failures outside any fault (between faults, or while catching up)
    alive_at_end: bool = True  # the pipeline process (the last one started) still ran after catching up

    @property
    def lost(self) -> int:
        return sum(len(o.lost) for o in self.outcomes)

    @property
    def duplicate_rows(self) -> int:
        return sum(o.duplicate_rows for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return (not self.lost and not self.duplicate_rows and not self.unknown_stored
                and not self.other_job_failures and not any(o.dead_letters or o.fault.exits or o.fault.manual or o.fault.job_failures
                            for o in self.outcomes))

    def table(self) -> str:
        head = ("| fault | accepted | lost | duplicate rows | dead letters | max recovery | "
                "pipeline exited | job failed (resubmitted) | manual step |")
        lines = [head, "|---|---|---|---|---|---|---|---|---|"]
        for o in self.outcomes:
            f = o.fault
            rec = f"{f.max_recovery_s:.1f} s" if f.max_recovery_s is not None else "-"
            lines.append(f"| {f.name} | {o.accepted} | {len(o.lost)} | {o.duplicate_rows} | {o.dead_letters} | "
                         f"{rec} | {'yes: ' + '; '.join(f.exits) if f.exits else 'no'} | "
                         f"{f.job_failures or 'no'} | {'yes: ' + '; '.join(f.manual) if f.manual else 'no'} |")
        lines.append(f"| **total** | {self.accepted} | {self.lost} | {self.duplicate_rows} | "
                     f"{sum(o.dead_letters for o in self.outcomes)} | | | | |")
        return "\n".join(lines)

    def summary(self) -> str:
        out = [(f"store {self.store}: {self.stored} rows, {self.accepted} fragments accepted, caught up "
               f"{self.caught_up_s:.1f} s after the feeders stopped")]
        if self.startup_s is not None:
            out.append(f"first start: first row stored {self.startup_s:.1f} s after the pipeline process started")
        if self.other_job_failures:
            out.append(f"job failures outside any fault: {self.other_job_failures}")
        if self.unacked_stored:
            out.append(f"{self.unacked_stored} stored fragments were never acknowledged to their producer "
                       "(a post timed out and was retried, or the run ended): allowed, not counted as accepted")
        if self.unknown_stored:
            out.append(f"stored but never offered: {self.unknown_stored[:10]}")
        if self.refusals:
            out.append("producer-side refusals (retried or not accepted): "
                       + ", ".join(f"{k} x{v}" for k, v in self.refusals.most_common()))
        if self.dead_letter_reasons:
            out.append("dead letters: " + ", ".join(f"{k} x{v}" for k, v in self.dead_letter_reasons.most_common()))
        for o in self.outcomes:
            f = o.fault
            if f.ready_during:
                after = f"{f.ready_after_s:.1f} s after it ended" if f.ready_after_s is not None else "never"
                out.append(f"{f.name}: /readyz during {dict(f.ready_during)}, 200 again {after}")
            if f.recoveries_s and len(f.recoveries_s) > 1:
                rs = sorted(f.recoveries_s)
                out.append(f"{f.name}: recovery min {rs[0]:.1f} s, median {rs[len(rs) // 2]:.1f} s, "
                           f"max {rs[-1]:.1f} s")
            if o.lost:
                out.append(f"{f.name}: lost {o.lost[:10]}")
        return "\n".join(out)


# --------------------------------------------------------------------------- one pipeline under chaos

class ChaosRun:
    """A pipeline process on ``stack`` with feeders running, faults injected one at a time, and the
    accounting at the end. Use as a context manager (stops the feeders, the endpoint and the pipeline).

    Start and stop servers (``outage``'s callables) from the thread that created them: their
    children get PR_SET_PDEATHSIG, which fires when that *thread* ends.
    """

    def __init__(self, stack: Stack, rate: float = 20.0, http: bool = True, tag: str | None = None,
                 recovery_timeout_s: float = 180.0) -> None:
        self.stack = stack
        self.url = stack.settings.storage_url
        self.health_port = stack.settings.pipeline.health_port
        self.rate, self.http = rate, http
        self.tag = tag or uuid.uuid4().hex[:6]
        self.recovery_timeout_s = recovery_timeout_s
        self.accepted = Accepted()
        self.faults: list[Fault] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.source: HttpSource | None = None
        self._servers = contextlib.ExitStack()  # the ingest endpoint
        self._feeders: list[Any] = []
        self.started_at = 0.0
        self.startup_s: float | None = None  # pipeline start -> first row stored
        self.pipeline_starts = 0  # processes started: 1 + the restarts after SIGKILL (or an exit)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout_s: float = 180) -> None:
        """Start the pipeline, the endpoint and the feeders; return once the first row is stored."""
        self.started_at = time.time()
        self.proc = self._start_pipeline()
        kafka_rate = self.rate / 2 if self.http else self.rate
        feeder = KafkaFeeder(self.stack, self.accepted, self.tag, kafka_rate)
        self._feeders.append(feeder)
        if self.http:
            self.source = self._servers.enter_context(http_ingest(self.stack.settings, _TOKEN))
            self._feeders.append(HttpFeeder(self.source.url, self.accepted, self.tag, self.rate / 2))
        for f in self._feeders:
            f.start()
        self.startup_s = self._wait_for_new_rows(0, timeout_s)
        if self.startup_s is None:
            raise RuntimeError(f"the pipeline stored nothing in {timeout_s:g}s\n{self.stack.pipeline_log()}")

    def close(self) -> None:
        self.stop_feeders()
        self._servers.close()
        self.source = None
        if self.proc is not None and self.proc.poll() is None:
            self.stack.kill(self.proc, signal.SIGTERM)

    def stop_feeders(self) -> None:
        for f in self._feeders:
            f.stop_event.set()
        for f in self._feeders:
            f.join(180)
        self._feeders = []

    def _start_pipeline(self) -> subprocess.Popen[bytes]:
        self.pipeline_starts += 1
        return self.stack.start_pipeline()

    # ------------------------------------------------------------------ measuring
    def job_failures(self) -> int:
        """Jobs the supervisor saw fail so far, over every pipeline process of this run (their logs)."""
        return sum(p.read_text(errors="replace").count("pipeline job failed")
                   for p in self.stack.tmp.glob("pipeline-*.log"))

    def _wait_for_new_rows(self, above: int, timeout_s: float) -> float | None:
        """Seconds until the store holds more than ``above`` rows (None: not within the timeout)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            n = row_count(self.url)
            if n is not None and n > above:
                return time.monotonic() - t0
            time.sleep(0.1)
        return None

    def _count_now(self, timeout_s: float = 30) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            n = row_count(self.url)
            if n is not None or time.monotonic() > deadline:
                return n or 0
            time.sleep(0.2)

    def _pipeline_exited(self, fault: Fault) -> None:
        """Note that the pipeline exited on its own, and restart it (as systemd would) so the run goes on."""
        assert self.proc is not None
        code = self.proc.poll()
        fault.exits.append(f"exit code {code}")
        fault.manual.append("the pipeline process exited and had to be restarted")
        log.error("%s: the pipeline exited with %s; restarting it\n%s", fault.name, code,
                  self.stack.pipeline_log()[-3000:])
        self.proc = self._start_pipeline()

    def _recover(self, fault: Fault, what: str) -> None:
        """After a fault: wait for the first new row, and for /readyz 200 when there is a port."""
        ended = time.monotonic()
        above = self._count_now()
        took = self._wait_for_new_rows(above, self.recovery_timeout_s)
        if took is None:
            fault.manual.append(f"no new row within {self.recovery_timeout_s:g}s after {what}")
        else:
            fault.recoveries_s.append(time.monotonic() - ended)
        if self.health_port is not None:
            while time.monotonic() - ended < self.recovery_timeout_s:
                if readyz(self.health_port) == 200:
                    fault.ready_after_s = time.monotonic() - ended
                    break
                time.sleep(0.2)

    # ------------------------------------------------------------------ faults
    def steady(self, seconds: float) -> None:
        """Let fragments flow without a fault (the pipeline is checked for exits meanwhile)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.2)
            if self.proc is not None and self.proc.poll() is not None and self.faults:
                self._pipeline_exited(self.faults[-1])

    def sigkill_cycles(self, n: int, rng: random.Random | None = None, min_up_s: float = 1.0,
                       max_up_s: float = 4.0) -> Fault:
        """``n`` times: let the (recovered) pipeline work ``min_up_s``-``max_up_s`` seconds, SIGKILL its
        process group, restart it at once; recovery = restart -> first new row stored."""
        rng = rng or random.Random(7)
        fault = Fault(f"SIGKILL x{n}", time.time())
        self.faults.append(fault)
        failures_before = self.job_failures()
        for i in range(n):
            self.steady(rng.uniform(min_up_s, max_up_s))
            assert self.proc is not None
            if self.proc.poll() is not None:
                self._pipeline_exited(fault)
            self.stack.kill(self.proc, signal.SIGKILL)
            self.proc = self._start_pipeline()
            self._recover(fault, f"restart {i + 1}")
            log.info("SIGKILL %d/%d: first new row %.1f s after the restart", i + 1, n, fault.recoveries_s[-1]
                     if fault.recoveries_s else float("nan"))
        fault.job_failures = self.job_failures() - failures_before
        fault.end = time.time()
        return fault

    def outage(self, name: str, stop: Callable[[], Any], start: Callable[[], Any], seconds: float) -> Fault:
        """Stop a dependency for ``seconds``, start it again; the pipeline process must stay up all
        along and be storing again after it (recovery = dependency back -> first new row)."""
        fault = Fault(name, time.time())
        self.faults.append(fault)
        assert self.proc is not None
        failures_before = self.job_failures()
        stop()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._pipeline_exited(fault)
            if self.health_port is not None:
                fault.ready_during[readyz(self.health_port)] += 1
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        start()
        if self.proc.poll() is not None:
            self._pipeline_exited(fault)
        self._recover(fault, f"{name} ended")
        if self.proc.poll() is not None:
            self._pipeline_exited(fault)
        fault.job_failures = self.job_failures() - failures_before
        fault.end = time.time()
        log.info("%s: first new row %.1f s after it ended", name,
                 fault.recoveries_s[-1] if fault.recoveries_s else float("nan"))
        return fault

    # ------------------------------------------------------------------ the accounting
    def finish(self, catch_up_timeout_s: float = 300) -> Report:
        """Stop the feeders, wait until every accepted fragment is stored (or the timeout), account."""
        for fault in self.faults:
            fault.end = fault.end or time.time()
        self.stop_feeders()
        stopped = time.monotonic()
        if self.proc is not None and self.proc.poll() is not None and self.faults:
            self._pipeline_exited(self.faults[-1])
        acked = dict(self.accepted.acked)
        ids: list[str] = []
        deadline = stopped + catch_up_timeout_s
        while time.monotonic() < deadline:
            got = stored_source_ids(self.url)
            if got is not None:
                ids = got
                if set(acked) <= set(ids):
                    break
            time.sleep(1)
        caught_up = time.monotonic() - stopped
        time.sleep(2)  # a replay still in flight would add its row now
        ids = stored_source_ids(self.url) or ids
        counts = Counter(ids)
        letters = self._dead_letters()

        phases = [Fault("no fault (before the first)", self.started_at), *self.faults]

        def phase_of(t: float) -> int:
            i = 0
            for n, f in enumerate(phases):
                if t >= f.start:
                    i = n
            return i

        outcomes = [FaultOutcome(f, 0, [], 0, 0) for f in phases]
        for fid, t in acked.items():
            o = outcomes[phase_of(t)]
            o.accepted += 1
            if counts[fid] == 0:
                o.lost.append(fid)
            o.duplicate_rows += max(0, counts[fid] - 1)
        offered = dict(self.accepted.offered)
        for fid, _reason in letters:
            outcomes[phase_of(acked.get(fid) or offered.get(fid) or time.time())].dead_letters += 1
        return Report(outcomes=outcomes, accepted=len(acked), stored=len(ids),
                      unacked_stored=len((set(ids) - set(acked)) & set(offered)),
                      unknown_stored=sorted(set(ids) - set(offered)), refusals=Counter(self.accepted.refusals),
                      caught_up_s=caught_up, store=self.url.split(":", 1)[0],
                      dead_letter_reasons=Counter(r for _, r in letters), startup_s=self.startup_s,
                      other_job_failures=self.job_failures() - sum(f.job_failures for f in self.faults),
                      alive_at_end=self.proc is not None and self.proc.poll() is None)

    def _dead_letters(self) -> list[tuple[str, str]]:
        """(fragment id or '?', reason) of every record on this run's DLQ topic."""
        import base64

        consumer = make_consumer(self.stack.settings, group_id=None, consumer_timeout_ms=3000)
        consumer.subscribe([self.stack.settings.kafka.topics.dlq.name])
        out = []
        try:
            for rec in consumer:
                letter = orjson.loads(rec.value)
                try:
                    fid = orjson.loads(base64.b64decode(letter["original_b64"])).get("id", "?")
                except Exception:  # noqa: BLE001 - not a fragment of ours
                    fid = "?"
                out.append((fid, f"{letter['stage']}/{letter['reason']}"))
        finally:
            consumer.close()
        return out


# --------------------------------------------------------------------------- servers of the bench's own

@contextlib.contextmanager
def own_servers(tmp: Path, postgres: bool) -> Iterator[tuple[KafkaBroker, RedisServer, PostgresServer | None,
                                                             dict[str, Any]]]:
    """A Kafka broker, Redis and (optionally) PostgreSQL on free loopback ports, data under ``tmp``;
    yields them with the settings overrides that point at them (what conftest's fixtures give tests)."""
    redis = RedisServer(tmp / "redis", port=free_port()).start()
    pg = None
    broker = None
    try:
        base = {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}",
                "kafka.embedded.controller_port": free_port(), "data_dir": str(tmp), "redis.url": redis.url}
        broker = KafkaBroker(load_settings(overrides=base, environ={}), data_dir=tmp / "kafka").start()
        if postgres:
            pg = PostgresServer(tmp / "postgres", port=free_port()).start()
        yield broker, redis, pg, base
    finally:
        for server in (pg, broker, redis):
            if server is not None:
                server.stop()


def restart_in_place(server: Any) -> Callable[[], Any]:
    """``server.start`` again (same ports, same data dir), retrying while its old port lingers."""
    def start() -> Any:
        deadline = time.monotonic() + 60
        while True:
            try:
                return server.start()
            except RuntimeError as exc:
                if "already in use" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    return start


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--kills", type=int, default=20, help="SIGKILL + restart cycles (default 20)")
    ap.add_argument("--broker-s", type=float, default=60, help="broker outage, seconds (0: none; default 60)")
    ap.add_argument("--redis-s", type=float, default=60, help="Redis outage, seconds (0: none; default 60)")
    ap.add_argument("--postgres-s", type=float, default=30, help="PostgreSQL outage, seconds (default 30)")
    ap.add_argument("--steady-s", type=float, default=10, help="fault-free seconds between faults (default 10)")
    ap.add_argument("--rate", type=float, default=20, help="fragments/s, half over HTTP, half to Kafka")
    ap.add_argument("--quick", action="store_true", help="3 kills, 10 s outages, 5 s between (~3-4 min)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    if args.quick:
        args.kills, args.broker_s, args.redis_s, args.postgres_s, args.steady_s = 3, 10, 10, 10, 5
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("kafka", "httpx", "uvicorn", "connectors", "newswire"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)

    tmp = Path(tempfile.mkdtemp(prefix="newswire-chaos-"))
    tmp.chmod(0o711)  # PostgreSQL started as root runs as 'postgres', which must be able to reach its cluster
    t0 = time.monotonic()
    try:
        with own_servers(tmp, postgres=args.store == "postgresql") as (broker, redis, pg, base):
            overrides: dict[str, Any] = {"pipeline.health_port": free_port()}
            if pg is not None:
                overrides["storage.url"] = pg.create_database("chaos")
            (tmp / "stack").mkdir()
            stack = Stack(base, tmp / "stack", **overrides)
            print(f"chaos: store {stack.settings.storage_url}, broker {broker.bootstrap_servers}, "
                  f"Redis {redis.url}, {args.rate:g} fragments/s; logs in {tmp}", flush=True)
            rng = random.Random(args.seed)
            with ChaosRun(stack, rate=args.rate) as run:
                run.start()
                run.steady(args.steady_s)
                if args.kills:
                    run.sigkill_cycles(args.kills, rng)
                    run.steady(args.steady_s)
                if args.broker_s:
                    run.outage(f"broker outage {args.broker_s:g} s", broker.stop, restart_in_place(broker),
                               args.broker_s)
                    run.steady(args.steady_s)
                if args.redis_s:
                    run.outage(f"Redis outage {args.redis_s:g} s", redis.stop, restart_in_place(redis), args.redis_s)
                    run.steady(args.steady_s)
                if args.postgres_s and pg is not None:
                    run.outage(f"PostgreSQL outage {args.postgres_s:g} s", pg.stop, restart_in_place(pg),
                               args.postgres_s)
                    run.steady(args.steady_s)
                report = run.finish()
                if not report.ok:
                    print(stack.pipeline_log()[-6000:], file=sys.stderr)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    cpus = os.cpu_count()
    print(f"\nchaos run: {time.monotonic() - t0:.0f} s on {cpus} cores ({platform.machine()}), shipped config, "
          f"store {report.store}, {args.rate:g} fragments/s (half HTTP, half Kafka)\n")
    print(report.table())
    print()
    print(report.summary())
    if not report.ok:
        print("\nFAILED: something was lost, stored twice, dead-lettered, or needed a hand", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
