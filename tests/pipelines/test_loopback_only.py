"""Nothing this project starts listens beyond loopback: while a pipeline runs on Prism and
processes records, every TCP listening socket of this test session's processes (the embedded
broker, Redis and PostgreSQL, the pipeline process with its SDK worker pool and health endpoint,
Prism) is on a loopback address."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from connectors.postgres import PostgresServer
from connectors.process import listening_sockets
from tests.harness import free_port

pytestmark = pytest.mark.e2e


def descendants(root: int) -> list[int]:
    """`root` and every live process below it (by parent pid, so new sessions are followed too)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:  # gone since the listing
            continue
        ppid = int(next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1])
        children.setdefault(ppid, []).append(int(proc.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def test_every_listener_of_a_running_pipeline_is_on_loopback(make_stack: Any, postgres_server: PostgresServer) -> None:
    stack = make_stack(**{"pipeline.health_port": free_port()})
    pipeline = stack.start_pipeline()
    stack.produce([{"source": "test:wire", "id": f"a-{i}",
                    "text": f"Item {i}: the harbour authority said on Tuesday that ferry services would resume."}
                   for i in range(3)])
    # Records out of the pipeline: Prism runs the job, and the SDK workers are connected.
    assert len(stack.consume("enriched", lambda r: len(r) >= 3, timeout_s=120)) == 3, stack.pipeline_log()

    listeners = {pid: listening_sockets(pid) for pid in descendants(os.getpid()) if pid != os.getpid()}
    report = "\n".join(f"{pid} {command(pid)[:100]}: {[f'{ip}:{port}' for ip, port in socks]}"
                       for pid, socks in listeners.items() if socks)
    exposed = [(pid, str(ip), port) for pid, socks in listeners.items() for ip, port in socks if not ip.is_loopback]
    assert not exposed, f"listening beyond loopback:\n{report}"
    # Not vacuous: the servers this test relies on were seen listening.
    pipeline_tree = descendants(pipeline.pid)
    prism = [pid for pid in pipeline_tree if "prism" in command(pid)]
    assert prism and any(listeners.get(pid) for pid in prism), report  # the job server
    assert len(listeners.get(pipeline.pid, [])) >= 2, report  # the SDK worker pool and the health endpoint
    assert postgres_server.proc is not None and listeners.get(postgres_server.proc.pid), report
    assert any("kafka.Kafka" in command(pid) for pid, socks in listeners.items() if socks), report
    assert any("redis-server" in command(pid) for pid, socks in listeners.items() if socks), report
