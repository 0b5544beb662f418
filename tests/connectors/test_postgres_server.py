"""The embedded PostgreSQL server: initdb once, data kept across restarts, gone with a killed parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from connectors.postgres import PostgresServer
from connectors.process import port_open
from tests.harness import REPO, free_port


def test_restart_keeps_the_data_and_the_database(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path / "postgres", port=free_port(), database="nw")
    with server:
        with psycopg.connect(server.url) as conn:
            conn.execute("CREATE TABLE kept (v TEXT)")
            conn.execute("INSERT INTO kept VALUES ('survives a restart')")
        assert server.create_database("nw") == server.url  # already there: no error
    assert not port_open(server.host, server.port)
    with server, psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("survives a restart",)]


def test_killed_parent_takes_its_server_down(tmp_path: Path) -> None:
    port = free_port()
    script = (
        "import time\n"
        "from connectors.postgres import PostgresServer\n"
        f"PostgresServer({str(tmp_path / 'postgres')!r}, port={port}).start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == b"ready"
    pid = int((tmp_path / "postgres" / "cluster" / "postmaster.pid").read_text().split()[0])
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists(), "postgres outlived its killed parent"
    # And the next start on the same cluster works.
    with PostgresServer(tmp_path / "postgres", port=port) as server, psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
