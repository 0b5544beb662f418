"""`newswire up` with two pipeline jobs (the default on a 2-core machine): the demo is enriched and
stored by the two jobs together, and neither job outlives `up`, whether it stops normally or fails
after starting them."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.harness import REPO, Stack, free_port, pids_with

pytestmark = pytest.mark.e2e


def _up_stack(broker_overrides: dict[str, Any], tmp: Path, **overrides: Any) -> Stack:
    """The session's broker and Redis (not embedded ones), this test's topics, group, namespace and
    store, and free ports for everything `up` serves."""
    return Stack(broker_overrides, tmp, **{
        "kafka.embedded.enabled": False, "redis.embedded": False, "storage.postgres_embedded": False,
        "pipeline.health_port": free_port(), "console.port": free_port(),
        "connectors.http.port": free_port(), "connectors.rss.enabled": False,
        "connectors.inbox.path": str(tmp / "inbox"), **overrides})


def _up(stack: Stack, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newswire.cli", "--config", str(stack.config_path), "up", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False)


def test_up_with_two_jobs_enriches_the_demo_and_stops_both(broker_overrides: dict[str, Any], tmp_path: Path) -> None:
    stack = _up_stack(broker_overrides, tmp_path)
    done = _up(stack, "--demo", "--workers", "2", "--seconds", "45")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "2 pipeline jobs by raw-topic partition (worker 0: [0, 2]; worker 1: [1, 3])" in out
    # Both jobs served: the demo's six accepted fragments are stored, and its four storm reports
    # (en, fr, de and a copy) form one story across the jobs' partitions.
    with sqlite3.connect(stack.settings.sqlite_path) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 6
        assert db.execute("SELECT max(source_count) FROM stories").fetchone()[0] == 4
    assert pids_with(str(stack.config_path).encode()) == []  # no job left behind


def test_a_failure_after_the_jobs_started_stops_them(broker_overrides: dict[str, Any], tmp_path: Path) -> None:
    with socket.socket() as taken:  # the console's port is in use: `up` fails after starting the jobs
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack = _up_stack(broker_overrides, tmp_path, **{"console.port": taken.getsockname()[1]})
        done = _up(stack, "--workers", "2", "--seconds", "30")
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert "2 pipeline jobs by raw-topic partition" in out
    assert pids_with(str(stack.config_path).encode()) == []
