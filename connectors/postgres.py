"""PostgreSQL: the embedded server lifecycle and database creation.

The embedded server is the real ``postgres`` from Debian's packages (``postgresql``, 15; ``make
setup`` installs it) run as a child process, like the embedded Kafka broker and Redis: its own
cluster under ``data_dir`` (``initdb`` on first start), listening on one loopback port with trust
authentication (loopback only) and its unix socket inside the cluster directory; tied to its
parent with PR_SET_PDEATHSIG so a killed parent leaves no orphan; a stale server found through
``postmaster.pid`` on start is stopped first.

PostgreSQL refuses to run as root. As root, ``initdb`` and ``postgres`` run as the unprivileged
``postgres`` user (created by the Debian package; created here if missing) through ``setpriv``,
which keeps the parent-death signal across the user change and hands the server
CAP_DAC_READ_SEARCH alone, so it can reach a cluster under a root-only directory (pytest's
``/tmp/pytest-of-root`` is 0700) without owning it. As any other user, they run as that user.

The store that writes into the database is :class:`connectors.sinks.postgres.PostgresSink`.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from connectors.process import EmbeddedServer

log = logging.getLogger(__name__)

#: The unprivileged account the server runs as when we are root (the Debian package creates it).
SERVER_USER = "postgres"
#: The cluster's superuser role by default (the URL's user names it); trust on loopback, so no password.
SUPERUSER = "newswire"
_CAP_DAC_READ_SEARCH = 2
#: Longest unix socket path the kernel takes (sun_path is 108 bytes with the terminating NUL).
_MAX_SOCKET_PATH = 107


def bindir() -> Path:
    """Directory of the PostgreSQL server binaries (``initdb``, ``postgres``).

    ``pg_config --bindir`` when it names one that has them, else the newest
    ``/usr/lib/postgresql/*/bin`` (Debian keeps the server off ``PATH``), else ``PATH``.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout
        candidates.append(Path(out.strip()))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                      if Path(p).parent.name.isdigit() else 0, reverse=True)
    candidates += [Path(p) for p in versions]
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "postgres").is_file() and (folder / "initdb").is_file():
            return folder
    raise RuntimeError("PostgreSQL server binaries (initdb, postgres) not found: storage.url points at an "
                       "embedded PostgreSQL. `make setup` installs them (on Debian: apt-get install -y "
                       "postgresql), or set storage.postgres_embedded: false and use your own server.")


def _server_account() -> pwd.struct_passwd:
    """The unprivileged account the server runs as under root, created (system user) if missing."""
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", SERVER_USER], check=True)
        return pwd.getpwnam(SERVER_USER)


def _can_grant_dac_read_search() -> bool:
    """Whether CAP_DAC_READ_SEARCH is in our bounding set (a locked-down container may drop it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return bool(int(line.split()[1], 16) >> _CAP_DAC_READ_SEARCH & 1)
    return False


def _as_server_user(argv: list[str]) -> list[str]:
    """`argv` run as the server's account: unchanged unless we are root (postgres refuses root)."""
    if os.geteuid() != 0:
        return argv
    account = _server_account()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("running as root needs setpriv (util-linux) to start PostgreSQL as "
                           f"'{SERVER_USER}': apt-get install -y util-linux")
    # --pdeathsig=keep: a uid change clears the parent-death signal; keep the one set before exec.
    prefix = [setpriv, f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups",
              "--pdeathsig=keep"]
    if _can_grant_dac_read_search():
        prefix += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return [*prefix, "--", *argv]


def maintenance_url(url: str) -> str:
    """The same server's ``postgres`` database (where CREATE DATABASE is run from)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres"))


def ensure_database(url: str) -> str:
    """Create the database ``url`` names if it does not exist yet; returns ``url``."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(maintenance_url(url), autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it between our check and our CREATE
    return url


class PostgresServer(EmbeddedServer):
    """The embedded PostgreSQL server on ``host:port`` with its cluster in ``data_dir``.

    Usage: ``with PostgresServer(settings.data_dir / "postgres", port=5433) as server: ...`` or
    ``start()`` / ``stop()``. Layout: ``data_dir/cluster`` (PGDATA, also the unix socket
    directory) and ``data_dir/postgres.log``. :meth:`create_database` makes a database and returns
    its URL.
    """

    name = "postgres"
    # Fast shutdown (SIGINT: clients disconnected, a checkpoint written; SIGTERM would wait for every
    # client), then immediate (SIGQUIT), then SIGKILL. SIGINT is also what it gets when its parent dies.
    stop_signals = (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL)

    def __init__(self, data_dir: Path, port: int = 5433, host: str = "127.0.0.1",
                 database: str = "newswire", user: str = SUPERUSER) -> None:
        self.dir = Path(data_dir).resolve()
        self.host, self.port = host, port
        self.database = database
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pgdata(self) -> Path:
        return self.dir / "cluster"

    @property
    def log_file(self) -> Path:
        return self.dir / "postgres.log"

    def url_for(self, database: str) -> str:
        """``postgresql://newswire@host:port/<database>``: what ``storage.url`` takes."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        """The URL of the server's default database."""
        return self.url_for(self.database)

    def create_database(self, name: str) -> str:
        """Create database `name` (if absent) on the running server; returns its URL."""
        return ensure_database(self.url_for(name))

    def _socket_dir(self) -> str:
        # Too long a path for a unix socket: TCP only (the sinks always connect over TCP).
        return str(self.pgdata) if len(f"{self.pgdata}/.s.PGSQL.{self.port}") <= _MAX_SOCKET_PATH else ""

    def _prepare_cluster(self, bin_dir: Path) -> None:
        """initdb into PGDATA when it holds no cluster yet (UTF-8, C.UTF-8 collation, trust on loopback)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            account = _server_account()
            os.chown(self.pgdata, account.pw_uid, account.pw_gid)
        command = _as_server_user([str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U", self.user,
                                   "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"])
        with open(self.log_file, "ab") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"initdb {self.pgdata} failed with {done.returncode}:\n{tail}")

    def _command(self, bin_dir: Path) -> list[str]:
        return _as_server_user([
            str(bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
            "-c", f"listen_addresses={self.host}", "-c", f"unix_socket_directories={self._socket_dir()}",
            "-c", "logging_collector=off", "-c", "max_connections=200"])

    def start(self, timeout_s: float = 60) -> Self:
        """initdb if needed, start the server, wait until it takes connections, create the database."""
        bin_dir = bindir()
        self._prepare_cluster(bin_dir)
        self._stop_stale(self.pgdata / "postmaster.pid", b"postgres", str(self.pgdata).encode(), wait_s=30)
        self._spawn(self._command(bin_dir), self.host, self.port,
                    "is another PostgreSQL running? Use a free port in storage.url, or set "
                    "storage.postgres_embedded: false to use the server that is there.")
        try:
            self._wait_until(self._accepts_connections, timeout_s, f"take connections on {self.host}:{self.port}")
            self.create_database(self.database)
        except BaseException:
            self.stop()
            raise
        return self

    def _accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self.url_for("postgres"), connect_timeout=1):
                return True
        except psycopg.OperationalError:  # not listening yet, or "the database system is starting up"
            return False

    def stop(self, timeout_s: float = 60) -> None:
        """Fast shutdown; immediate shutdown, then SIGKILL, only if it hangs (see ``stop_signals``)."""
        super().stop(timeout_s)
