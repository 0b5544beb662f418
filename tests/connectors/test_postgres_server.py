"""The embedded PostgreSQL server: initdb once, data kept across restarts, gone with a killed parent;
password authentication, an application role that is no superuser, and a server without capabilities."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from connectors.postgres import SUPERUSER, PostgresServer
from connectors.process import port_open
from tests.harness import REPO, free_port, reachable_tmp_dir


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """Where a test's cluster goes: a folder the server's account can reach when we are root."""
    with reachable_tmp_dir("newswire-pg-") as folder:
        yield folder / "postgres"


def test_restart_keeps_the_data_and_the_database(pg_dir: Path) -> None:
    server = PostgresServer(pg_dir, port=free_port(), database="nw")
    with server:
        with psycopg.connect(server.url) as conn:
            conn.execute("CREATE TABLE kept (v TEXT)")
            conn.execute("INSERT INTO kept VALUES ('survives a restart')")
        assert server.create_database("nw") == server.url  # already there: no error
    assert not port_open(server.host, server.port)
    with server, psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("survives a restart",)]


def test_killed_parent_takes_its_server_down(pg_dir: Path) -> None:
    port = free_port()
    script = (
        "import time\n"
        "from connectors.postgres import PostgresServer\n"
        f"PostgresServer({str(pg_dir)!r}, port={port}).start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == b"ready"
    pid = int((pg_dir / "cluster" / "postmaster.pid").read_text().split()[0])
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists(), "postgres outlived its killed parent"
    # And the next start on the same cluster works.
    with PostgresServer(pg_dir, port=port) as server, psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_application_role_cannot_read_files_or_run_programs(postgres_server: PostgresServer,
                                                            postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        user, superuser = conn.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
                                       ).fetchone() or ("?", True)
        assert (user, superuser) == (postgres_server.user, False)
        # It owns its database: the store's migrations can create what they need.
        conn.execute("CREATE TABLE owned (v int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pg_read_file('/etc/passwd')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY owned FROM PROGRAM 'id'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY owned FROM '/etc/passwd'")


def test_every_connection_needs_the_password(postgres_server: PostgresServer) -> None:
    s = postgres_server
    for user in (s.user, SUPERUSER):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(f"postgresql://{user}@{s.host}:{s.port}/postgres", connect_timeout=5,
                            passfile="/dev/null", password="wrong").close()
    for passfile in (s.passfile, s.superuser_passfile):
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    assert "trust" not in (s.pgdata / "pg_hba.conf").read_text()


def test_server_runs_without_capabilities(postgres_server: PostgresServer) -> None:
    assert postgres_server.proc is not None
    status = dict(line.split(":\t", 1) for line in
                  Path(f"/proc/{postgres_server.proc.pid}/status").read_text().splitlines() if ":\t" in line)
    assert "postgres" in Path(f"/proc/{postgres_server.proc.pid}/cmdline").read_bytes().decode()
    for kind in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[kind], 16) == 0, (kind, status[kind])
    if os.geteuid() == 0:  # as root the server runs as 'postgres', its bounding set emptied too
        assert int(status["CapBnd"], 16) == 0, status["CapBnd"]
        assert int(status["NoNewPrivs"]) == 1
        assert status["Uid"].split()[0] != "0"
