"""Prism as the pipeline runs it: built with our source patches (it and its SDK worker pool listen on
loopback only, a binary that listens beyond loopback is refused; a bundle of a stage without outputs
does not keep it busy)."""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from connectors.process import listening_sockets
from connectors.toolchain import (
    PRISM_PATCHES,
    PrismPatch,
    PrismServer,
    ToolchainError,
    apply_prism_patches,
    prism_patch_id,
)
from core.settings import load_settings
from pipelines.run import runner_options

# Stands in for a Prism build that listens on every interface (as the upstream binary does).
FAKE_PRISM = f"""#!{sys.executable}
import socket, sys, time
port = int(sys.argv[sys.argv.index("--job_port") + 1])
server = socket.socket()
server.bind(("0.0.0.0", port))
server.listen()
time.sleep(60)
"""


def test_a_prism_listening_beyond_loopback_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "prism"
    fake.write_text(FAKE_PRISM)
    fake.chmod(0o755)
    prism = PrismServer(tmp_path / "prism.log", binary=fake)
    with pytest.raises(RuntimeError, match=r"listens on 0\.0\.0\.0:\d+, beyond loopback"):
        prism.start(timeout_s=20)
    assert prism.proc is None  # stopped again


@pytest.mark.e2e
def test_prism_and_the_worker_pool_listen_on_loopback_only(tmp_path: Path) -> None:
    prism = PrismServer(tmp_path / "prism.log")  # the loopback build `newswire setup` makes
    endpoint = prism.start()
    try:
        assert prism.proc is not None
        job = listening_sockets(prism.proc.pid)
        assert [(str(ip), port) for ip, port in job] == [("127.0.0.1", prism.port)], job
        assert endpoint == f"localhost:{prism.port}"
        host, _, port = prism.worker_endpoint.rpartition(":")
        assert host == "127.0.0.1"
        assert (ipaddress.ip_address("127.0.0.1"), int(port)) in listening_sockets(os.getpid())
    finally:
        prism.stop()
    assert not any(p == int(port) for _, p in listening_sockets(os.getpid()))  # the pool stopped with it


def test_every_patch_is_applied_once_and_a_missing_one_stops_the_build(tmp_path: Path) -> None:
    for patch in PRISM_PATCHES:  # a tree holding each patched text once, amid other code
        source = tmp_path / patch.path
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"package x\n{patch.old}// more\n")
    apply_prism_patches(tmp_path, "test")
    for patch in PRISM_PATCHES:
        assert (tmp_path / patch.path).read_text() == f"package x\n{patch.new}// more\n"
    moved = PrismPatch(PRISM_PATCHES[1].path, "\tnot there\n", "\tx\n", "what the patch is for")
    with pytest.raises(ToolchainError, match=r"stage\.go no longer holds .* once; update PRISM_PATCHES .*what the patch"):
        apply_prism_patches(tmp_path, "test", [moved])


def test_a_changed_patch_set_gets_a_binary_of_its_own() -> None:
    changed = [*PRISM_PATCHES[:1], PRISM_PATCHES[1]._replace(new=PRISM_PATCHES[1].new + "\n")]
    assert prism_patch_id(changed) != prism_patch_id() == prism_patch_id(PRISM_PATCHES)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def prism(tmp_path: Path) -> Iterator[PrismServer]:
    server = PrismServer(tmp_path / "prism.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class SlowSink(beam.DoFn):
    """A DoFn with no output, whose bundle takes ``seconds`` (as a delivery bundle's sink flushes do)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def process(self, element: bytes) -> Iterator[int]:
        time.sleep(self.seconds)
        return iter(())


@pytest.mark.e2e
def test_a_bundle_of_a_stage_without_outputs_does_not_keep_prism_busy(prism: PrismServer) -> None:
    """Stock Prism 2.77 spins in stage.Execute while such a bundle runs (a core for its whole length);
    the build PRISM_PATCHES makes waits instead."""
    settings = load_settings(environ={})
    options = PipelineOptions(runner_options(settings, f"localhost:{prism.port}", prism.worker_endpoint))
    with beam.Pipeline(options=options) as p:
        _ = p | beam.Impulse() | beam.ParDo(SlowSink(3.0))
        assert prism.proc is not None
        before = cpu_s(prism.proc.pid)
    spent = cpu_s(prism.proc.pid) - before
    assert spent < 1.0, f"Prism used {spent:.2f} s of CPU during a 3 s bundle of a stage without outputs"
