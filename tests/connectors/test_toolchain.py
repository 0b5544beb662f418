"""Prism as the pipeline runs it: it and its SDK worker pool listen on loopback only, and a binary
that listens beyond loopback is refused."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import pytest

from connectors.process import listening_sockets
from connectors.toolchain import PrismServer

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
