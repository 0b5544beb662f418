"""`newswire up --workers N`: how the raw topic's partitions and the health ports are dealt out."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.kafka import make_producer
from newswire.cli import _workers_arg
from newswire.workers import PipelineWorkers, default_workers, split_partitions, worker_env
from tests.harness import Stack, has_sources, pids_with


def test_partitions_are_dealt_round_robin_and_cover_the_topic_once() -> None:
    assert split_partitions(4, 1) == [(0, 1, 2, 3)]
    assert split_partitions(4, 2) == [(0, 2), (1, 3)]
    assert split_partitions(5, 3) == [(0, 3), (1, 4), (2,)]
    shares = split_partitions(16, 16)
    assert sorted(p for share in shares for p in share) == list(range(16))


def test_more_jobs_than_partitions_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="add partitions to kafka.topics.fragments"):
        split_partitions(4, 5)
    with pytest.raises(ValueError, match="workers"):
        split_partitions(4, 0)
    assert default_workers(4, cores=2) == 4 and default_workers(8, cores=2) == 4  # two per core
    assert default_workers(4, cores=16) == 4 and default_workers(1, cores=1) == 1  # at most one per partition
    assert default_workers(16, cores=16) == 16 and default_workers(64, cores=16) == 32


def test_each_worker_gets_its_partitions_and_its_own_health_port() -> None:
    assert worker_env(0, (0, 2), 8081) == {"NEWSWIRE__PIPELINE__PARTITIONS": "[0, 2]",
                                           "NEWSWIRE__PIPELINE__HEALTH_PORT": "8081"}
    assert worker_env(1, (1, 3), 8081)["NEWSWIRE__PIPELINE__HEALTH_PORT"] == "8091"  # clear of 8082
    assert worker_env(1, (1, 3), 0)["NEWSWIRE__PIPELINE__HEALTH_PORT"] == "0"  # a free port each
    assert "NEWSWIRE__PIPELINE__HEALTH_PORT" not in worker_env(1, (1,), None)


def test_the_cli_takes_auto_or_a_count() -> None:
    assert _workers_arg("auto") == "auto" and _workers_arg("3") == "3"
    for bad in ("0", "-1", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="--workers"):
            _workers_arg(bad)


def test_a_job_reading_some_partitions_says_which_in_its_window_counts() -> None:
    from pipelines.transforms.stats import window_count

    assert window_count("wire", 3, 0.0, 60.0, (1, 3))["partitions"] == [1, 3]  # a share: sum per window
    assert window_count("wire", 3, 0.0, 60.0)["partitions"] is None  # the whole topic


# --------------------------------------------------------------------------- the launcher (e2e)

def _shared_mb(pid: int) -> float:
    """Memory of ``pid`` that it shares with other processes (MB, /proc smaps_rollup)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    return sum(int(fields[k].split()[0]) for k in ("Shared_Clean", "Shared_Dirty")) / 1024


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _gone(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(map(_alive, pids)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.e2e
def test_the_launcher_forks_jobs_that_share_its_models_and_serve_their_partitions(stack: Stack) -> None:
    pids = stack.start_jobs(2, verbose=True, log_format="json")  # `newswire -v --log-format json up`
    launcher = stack.process_roots()[0]
    assert len(pids) == 2 and all(int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) == launcher
                                  for p in pids)
    producer = make_producer(stack.settings)
    for p in range(4):
        producer.send(stack.settings.kafka.topics.fragments.name, partition=p,
                      value=orjson.dumps({"source": "wire", "id": f"p{p}", "text": f"Fragment {p} on partition {p}."}))
    producer.close()
    got = stack.consume("enriched", has_sources(*(f"p{p}" for p in range(4))), timeout_s=120)
    assert {e["origin"]["partition"] for e in got} == {0, 1, 2, 3}, stack.pipeline_log()
    # The models were loaded once, by the launcher: each job still shares well over 100 MB with it
    # (the place table alone is ~280 MB loaded; each job's own allocations are not shared).
    assert all(_shared_mb(p) > 150 for p in pids), [_shared_mb(p) for p in pids]
    log = (stack.tmp / "workers" / "pipeline-launcher.log").read_text()
    assert "preloaded the stage models" in log and "forking with" not in log  # one thread when it forked
    # The jobs log as the command line asked: INFO lines, as JSON objects
    for i in range(2):
        lines = [orjson.loads(line) for line in (stack.tmp / "workers" / f"pipeline-worker-{i}.log").read_text(
            ).splitlines() if line.startswith("{")]
        assert any(line["level"] == "INFO" and line["logger"] == "pipelines.warmup" for line in lines), i


@pytest.mark.e2e
def test_a_job_that_ends_by_itself_ends_the_launcher_which_names_it_and_stops_the_other(
        broker_overrides: dict[str, Any], tmp_path: Path) -> None:
    stack = Stack(broker_overrides, tmp_path)
    pool = PipelineWorkers(stack.config_path, 4, 2, tmp_path / "workers").start()
    try:
        pids = pool.job_pids()
        os.killpg(pids[1], signal.SIGKILL)  # worker 1 and its Prism die
        assert _gone(pids, 60), "the other job was not stopped"
        assert pool.proc is not None and pool.proc.wait(30) == 1
        assert pool.failed and "worker 1 exited -9" in pool.failed[0], pool.failed
    finally:
        pool.stop()
    assert pids_with(str(stack.config_path).encode()) == []


@pytest.mark.e2e
def test_jobs_do_not_outlive_a_killed_launcher(broker_overrides: dict[str, Any], tmp_path: Path) -> None:
    stack = Stack(broker_overrides, tmp_path)
    pool = PipelineWorkers(stack.config_path, 4, 2, tmp_path / "workers").start()
    try:
        pids = pool.job_pids()
        assert pool.proc is not None
        os.kill(pool.proc.pid, signal.SIGKILL)  # no chance to stop them: the kernel tells them (PDEATHSIG)
        assert _gone(pids, 90), "jobs outlived their launcher"
    finally:
        pool.stop()
    assert pids_with(str(stack.config_path).encode()) == []  # their Prism runners too
