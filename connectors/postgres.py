"""PostgreSQL: the embedded server lifecycle, its roles and database creation.

The embedded server is the real ``postgres`` from Debian's packages (``postgresql``, 15; ``make
setup`` installs it) run as a child process, like the embedded Kafka broker and Redis: its own
cluster under ``data_dir`` (``initdb`` on first start), listening on one loopback port, its unix
socket inside the cluster directory; tied to its parent with PR_SET_PDEATHSIG so a killed parent
leaves no orphan; a stale server found through ``postmaster.pid`` on start is stopped first.

Authentication is scram-sha-256 for every connection, socket or TCP (``pg_hba.conf`` is rewritten
on every start). Two roles:

* ``postgres``, the cluster's superuser, used only here (roles and databases); its password is
  generated at ``initdb`` into ``data_dir/postgres.pgpass``;
* the application role (the URL's user, ``newswire`` by default): LOGIN and nothing else (no
  superuser, CREATEDB, CREATEROLE, replication or server-file roles), owner of the databases
  :meth:`PostgresServer.create_database` makes. Its password is generated on first start (or
  given) into ``data_dir/<role>.pgpass``, and the URLs this module hands out point libpq at that
  file (``?passfile=``), so no password is ever in a URL, a config file or a log.

The password files are libpq's pgpass format, mode 0600, owned by whoever started the server.

PostgreSQL refuses to run as root. As root, ``initdb`` and ``postgres`` run as the unprivileged
``postgres`` account (created by the Debian package; created here if missing) through ``setpriv``,
which keeps the parent-death signal across the user change and leaves the server no capability
at all (bounding, inheritable and ambient sets cleared, no-new-privileges). So the account must be
able to reach ``data_dir``: every directory above it needs search (x) permission for it (not so
under pytest's ``/tmp/pytest-of-root``, 0700; tests use :func:`tests.harness.reachable_tmp_dir`).
As any other user, they run as that user.

The store that writes into the database is :class:`connectors.sinks.postgres.PostgresSink`.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
from pathlib import Path
from typing import Self
from urllib.parse import quote

import psycopg
from psycopg import sql

from connectors.process import EmbeddedServer, write_private

log = logging.getLogger(__name__)

#: The unprivileged account the server runs as when we are root (the Debian package creates it).
SERVER_USER = "postgres"
#: The cluster's superuser role: role and database setup only, never handed to the application.
SUPERUSER = "postgres"
#: The application role by default (the URL's user names it).
APP_USER = "newswire"
#: What the application role may do: log in. Not superuser, so no pg_read_file, COPY ... PROGRAM or
#: untrusted languages (and the pg_read/write_server_files, pg_execute_server_program roles are not
#: granted); it owns its databases, which is all the store's migrations need.
_APP_ROLE_OPTIONS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
_HBA = """# Written by connectors/postgres.py on every start; edits are overwritten.
# A password (scram-sha-256) for every connection; listen_addresses decides who can connect at all.
local all all scram-sha-256
host  all all all scram-sha-256
"""
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
    # No capability survives: the uid change empties the permitted and effective sets, and the
    # bounding, inheritable and ambient sets are emptied too; --nnp: no setuid program
    # (COPY ... PROGRAM 'sudo ...') can gain any back.
    return [setpriv, f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups",
            "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--nnp", "--pdeathsig=keep",
            "--", *argv]


def _blocking_folder(path: Path, account: pwd.struct_passwd) -> Path | None:
    """The first folder on the way to `path` (itself included) that `account` may not enter, or None."""
    groups = set(os.getgrouplist(account.pw_name, account.pw_gid))
    for folder in [*reversed(path.parents), path]:
        st = folder.stat()
        if st.st_uid == account.pw_uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def pgpass_line(role: str, password: str) -> str:
    """A libpq password-file line for `role` on any host, port and database."""
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:{escape(role)}:{escape(password)}\n"


class PostgresServer(EmbeddedServer):
    """The embedded PostgreSQL server on ``host:port`` with its cluster in ``data_dir``.

    Usage: ``with PostgresServer(settings.data_dir / "postgres", port=5433) as server: ...`` or
    ``start()`` / ``stop()``. Layout: ``data_dir/cluster`` (PGDATA, also the unix socket
    directory), ``data_dir/postgres.log``, and the password files ``data_dir/postgres.pgpass``
    (superuser) and ``data_dir/<user>.pgpass`` (application role). :meth:`create_database` makes a
    database owned by the application role and returns its URL.

    ``user``: the application role; ``password``: its password (default: generated on first start
    and kept in its password file; given, it replaces the role's password on every start).
    """

    name = "postgres"
    # Fast shutdown (SIGINT: clients disconnected, a checkpoint written; SIGTERM would wait for every
    # client), then immediate (SIGQUIT), then SIGKILL. SIGINT is also what it gets when its parent dies.
    stop_signals = (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL)

    def __init__(self, data_dir: Path, port: int = 5433, host: str = "127.0.0.1",
                 database: str = "newswire", user: str = APP_USER, password: str | None = None) -> None:
        if user == SUPERUSER:
            raise ValueError(f"postgres: the application role may not be '{SUPERUSER}', the cluster's superuser; "
                             f"use another user in storage.url, e.g. postgresql://{APP_USER}@127.0.0.1:{port}/{database}")
        self.dir = Path(data_dir).resolve()
        self.host, self.port = host, port
        self.database = database
        self.user = user
        self.password = password or None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pgdata(self) -> Path:
        return self.dir / "cluster"

    @property
    def log_file(self) -> Path:
        return self.dir / "postgres.log"

    @property
    def passfile(self) -> Path:
        """The application role's password file (libpq pgpass format, mode 0600)."""
        return self.dir / f"{self.user}.pgpass"

    @property
    def superuser_passfile(self) -> Path:
        return self.dir / f"{SUPERUSER}.pgpass"

    def _url(self, user: str, database: str, passfile: Path) -> str:
        return f"postgresql://{user}@{self.host}:{self.port}/{database}?passfile={quote(str(passfile), safe='/')}"

    def url_for(self, database: str) -> str:
        """``postgresql://newswire@host:port/<database>?passfile=...``: what ``storage.url`` takes."""
        return self._url(self.user, database, self.passfile)

    @property
    def url(self) -> str:
        """The URL of the server's default database."""
        return self.url_for(self.database)

    def _superuser_url(self, database: str = "postgres") -> str:
        return self._url(SUPERUSER, database, self.superuser_passfile)

    def create_database(self, name: str) -> str:
        """Create database `name` (if absent) owned by the application role; returns its URL."""
        owner = sql.Identifier(self.user)
        with psycopg.connect(self._superuser_url(), autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), owner))
                except psycopg.errors.DuplicateDatabase:
                    pass  # another process created it between our check and our CREATE
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), owner))
        return self.url_for(name)

    def _socket_dir(self) -> str:
        # Too long a path for a unix socket: TCP only (the sinks always connect over TCP).
        return str(self.pgdata) if len(f"{self.pgdata}/.s.PGSQL.{self.port}") <= _MAX_SOCKET_PATH else ""

    def _check_reachable(self) -> None:
        """As root: the server's account must be able to enter ``data_dir`` (no capability lets it skip that)."""
        if os.geteuid() != 0:
            return
        account = _server_account()
        mode = self.dir.stat().st_mode
        if not mode & stat.S_IXOTH:  # our own folder: others may enter it, not list it; the secrets are 0600
            self.dir.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
        blocked = _blocking_folder(self.dir, account)
        if blocked is not None:
            raise RuntimeError(f"postgres: {self.dir} is out of reach of the '{SERVER_USER}' account the server runs "
                               f"as under root: it may not enter {blocked} (mode "
                               f"{stat.S_IMODE(blocked.stat().st_mode):o}). Put data_dir where every folder above "
                               "it is searchable by others (chmod o+x), or run newswire as a non-root user.")

    def _prepare_cluster(self, bin_dir: Path) -> None:
        """initdb into PGDATA when it holds no cluster yet (UTF-8, C.UTF-8, scram-sha-256, a superuser password)."""
        if (self.pgdata / "PG_VERSION").exists():
            if not self.superuser_passfile.exists():
                raise RuntimeError(
                    f"postgres: {self.pgdata} has no superuser password file {self.superuser_passfile}: it was "
                    "made by an earlier Newswire (trust authentication, the application role as superuser), or "
                    "the file was removed. Export what you need (pg_dump), move the cluster folder aside, and "
                    "start again for a new cluster with password authentication.")
            return
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        password = secrets.token_urlsafe(32)
        write_private(self.superuser_passfile, pgpass_line(SUPERUSER, password))
        pwfile = self.dir / "initdb.pw"  # initdb reads the superuser's password from a file
        write_private(pwfile, password + "\n")
        if os.geteuid() == 0:
            account = _server_account()
            os.chown(self.pgdata, account.pw_uid, account.pw_gid)
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        command = _as_server_user([str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER,
                                   f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                                   "--locale=C.UTF-8", "--no-instructions"])
        try:
            with open(self.log_file, "ab") as out:
                done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"initdb {self.pgdata} failed with {done.returncode}:\n{tail}")

    def _write_hba(self) -> None:
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(_HBA)
        if os.geteuid() == 0:
            account = _server_account()
            os.chown(hba, account.pw_uid, account.pw_gid)

    def _command(self, bin_dir: Path) -> list[str]:
        return _as_server_user([
            str(bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
            "-c", f"listen_addresses={self.host}", "-c", f"unix_socket_directories={self._socket_dir()}",
            "-c", "password_encryption=scram-sha-256",
            "-c", "logging_collector=off", "-c", "max_connections=200"])

    def start(self, timeout_s: float = 60) -> Self:
        """initdb if needed, start the server, wait until it takes connections, set up the
        application role and create its database."""
        bin_dir = bindir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._check_reachable()
        self._prepare_cluster(bin_dir)
        self._write_hba()
        self._stop_stale(self.pgdata / "postmaster.pid", b"postgres", str(self.pgdata).encode(), wait_s=30)
        self._spawn(self._command(bin_dir), self.host, self.port,
                    "is another PostgreSQL running? Use a free port in storage.url, or set "
                    "storage.postgres_embedded: false to use the server that is there.")
        try:
            self._wait_until(self._accepts_connections, timeout_s, f"take connections on {self.host}:{self.port}")
            self._ensure_app_role()
            self.create_database(self.database)
        except BaseException:
            self.stop()
            raise
        return self

    def _accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self._superuser_url(), connect_timeout=1):
                return True
        except psycopg.OperationalError as exc:  # not listening yet, or "the database system is starting up"
            if "password authentication failed" in str(exc):
                raise RuntimeError(f"postgres: the superuser password in {self.superuser_passfile} does not match "
                                   f"the cluster's ({exc})") from None
            return False

    def _ensure_app_role(self) -> None:
        """Create the application role, or bring an existing one back to LOGIN only; set its password
        when one is given or its password file is missing."""
        with psycopg.connect(self._superuser_url(), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.user,)).fetchone() is not None
            password = self.password or (None if exists and self.passfile.exists() else secrets.token_urlsafe(32))
            verb = sql.SQL("ALTER ROLE {} WITH" if exists else "CREATE ROLE {} WITH")
            parts = [verb.format(sql.Identifier(self.user)), sql.SQL(_APP_ROLE_OPTIONS)]
            if password is not None:
                # The SCRAM verifier is computed here (libpq): the password itself never reaches the server.
                verifier = conn.pgconn.encrypt_password(password.encode(), self.user.encode(), b"scram-sha-256")
                parts.append(sql.SQL("PASSWORD {}").format(sql.Literal(verifier.decode())))
            conn.execute(sql.SQL(" ").join(parts))
        if password is not None:  # after the role has it: a crash in between only means a new password next start
            write_private(self.passfile, pgpass_line(self.user, password))

    def stop(self, timeout_s: float = 60) -> None:
        """Fast shutdown; immediate shutdown, then SIGKILL, only if it hangs (see ``stop_signals``)."""
        super().stop(timeout_s)
