"""Redis: the client and the embedded server lifecycle.

The embedded server is the real ``redis-server`` (Debian package ``redis-server``, 7.0; ``make
setup`` installs it) run as a child process, like the embedded Kafka broker: its own directory
under ``data_dir`` with an append-only file, so dedup state survives restarts; tied to its parent
with PR_SET_PDEATHSIG so a killed parent leaves no orphan; a stale server found through the pid
file on start is stopped first. It listens on 127.0.0.1 by default with protected mode on; on any
other address it needs a password (``requirepass``). The commands the project never sends and that
would hand a client more than the data (``CONFIG`` writes files where it likes, ``MODULE`` loads
code, ``REPLICAOF`` pulls a dataset from anywhere, ``MIGRATE`` connects out; see
:data:`DISABLED_COMMANDS`) are switched off with ``rename-command``, so neither a client nor a
script can reach them.

What the pipeline keeps in Redis, and how, lives with each stateful stage
(pipelines/stages/<stage>/state.py); this module only connects to and runs the server.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Self
from urllib.parse import quote

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from connectors.process import EmbeddedServer, is_loopback, write_private

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- client

#: Story and novelty memory are sets of 31-bit integers (pipelines.stages.stories.state.small_hash); Redis
#: packs such a set in 4 bytes a member up to this many members (default 512, then ~48 bytes each as a
#: hash table). 65536 = NoveltySettings.max_shingles, the cap a story's shingle set grows to, so even a
#: long live blog's set stays packed (256 KB instead of ~3 MB). Membership stays a binary search; an
#: insert moves at most 256 KB (a 100-member SADD into a full set: ~0.25-0.5 ms of Redis time,
#: bench/RESULTS.md "State size"). docker-compose.yml sets it too.
INTSET_ARGS = ("--set-max-intset-entries", "65536")
#: Story posting lists are hash fields of up to 12 x 17 bytes (pipelines.stages.stories.state), and
#: the near-duplicate index's hashes hold records of events with long non-hex ids and, until they
#: expire, the earlier layout's 25-byte entries (pipelines.stages.dedup.state); past 64 bytes a
#: value (default) would turn its whole hash from one listpack into a hash table (~2-2.5x the
#: memory). docker-compose.yml sets it too.
LISTPACK_ARGS = ("--hash-max-listpack-value", "256")

def mark_if_keys_left(client: redis.Redis, pattern: bytes | str, marker: bytes | str, px: int,
                      pages: int = 16) -> bool:
    """Set ``marker`` (expiring in ``px`` ms, never extended) when a key matching ``pattern`` turns
    up in the first ``pages`` ``SCAN`` pages; whether one did. How a stateful stage notices keys an
    earlier layout of its state left, to keep reading them until they have expired: such keys are
    a sizeable share of the keyspace, so a few pages find them."""
    cursor = 0
    for _ in range(pages):
        cursor, keys = client.scan(cursor, match=pattern, count=1000)
        if keys:
            client.set(marker, b"1", px=px, nx=True)
            return True
        if not cursor:
            return False
    return False


def make_redis(url: str, *, retries: int = 5, socket_timeout_s: float = 5.0) -> redis.Redis:
    """A client for ``url`` (``redis://host:port/db``) that returns bytes and retries what can pass.

    Connection errors, timeouts and ``LOADING`` (a restarted server replaying its append-only
    file) are retried ``retries`` times with exponential backoff (0.1 s doubling, capped at 2 s,
    about 3 s in all for the default 5), reconnecting each time; then the error is raised. Other
    errors (a script error, ``OOM`` under ``maxmemory``) are raised at once.
    """
    return redis.Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=min(2.0, socket_timeout_s),
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries,
                    supported_errors=(RedisConnectionError, RedisTimeoutError, BusyLoadingError)),
        health_check_interval=30,
        client_name="newswire",
    )


# --------------------------------------------------------------------------- embedded server

#: Commands the embedded server refuses (``rename-command X ""``): none is sent by the pipeline,
#: the connectors or the tests, and each hands a client more than the data. FLUSHALL/FLUSHDB wipe
#: every namespace at once (benches that need them pass ``enable_commands``); CONFIG rewrites
#: ``dir``/``dbfilename`` (a file written anywhere the server may write); DEBUG and SHUTDOWN stop or
#: stall it (``stop()`` signals the process); MODULE loads a shared library; SLAVEOF/REPLICAOF,
#: SYNC/PSYNC and FAILOVER make it a replica of, or stream its dataset to, whoever asks; MIGRATE
#: connects to any host; ACL edits users and passwords; FUNCTION stores Lua for later (EVAL suffices).
DISABLED_COMMANDS = ("FLUSHALL", "FLUSHDB", "CONFIG", "DEBUG", "SHUTDOWN", "MODULE", "SLAVEOF", "REPLICAOF",
                     "SYNC", "PSYNC", "FAILOVER", "MIGRATE", "ACL", "FUNCTION")


def resolve_maxmemory(value: str | None) -> str | None:
    """``redis.maxmemory`` as redis-server takes it: ``"auto"`` is half of this machine's physical
    memory (the other half for the broker, the pipeline and the OS), in MiB; other values as given."""
    if value != "auto":
        return value
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{total // 2 // 2**20}mb"


def share_maxmemory(value: str | None, servers: int) -> str | None:
    """``redis.maxmemory`` for each of ``servers`` embedded servers: ``"auto"`` (half of this
    machine's memory) is shared out equally, so together they still keep to it; a size given is
    each server's own."""
    resolved = resolve_maxmemory(value)
    if value != "auto" or servers <= 1 or resolved is None:
        return resolved
    return f"{int(resolved[:-2]) // servers}mb"


class RedisServer(EmbeddedServer):
    """The embedded ``redis-server`` on ``host:port`` with its state in ``data_dir``.

    Usage: ``with RedisServer(settings.data_dir / "redis", port=6379) as server: ...`` or
    ``start()`` / ``stop()``. The append-only file (fsync every second) is what makes state survive
    a restart; RDB snapshots are off (the AOF already holds everything). ``maxmemory`` (e.g.
    ``"2gb"``, or ``"auto"``: half of this machine's memory, see :func:`resolve_maxmemory`) is off
    when None; when set, writes past it fail loudly (``noeviction``) rather than silently forgetting
    dedup state.

    ``password``: clients must AUTH with it (``requirepass``; :attr:`url` carries it). Required when
    ``host`` is not a loopback address. It goes into ``data_dir/redis.conf`` (mode 0600), never on
    the command line, where every local user could read it. ``enable_commands``: names from
    :data:`DISABLED_COMMANDS` to keep (a bench's FLUSHALL).
    """

    name = "redis-server"

    def __init__(self, data_dir: Path, port: int = 6379, host: str = "127.0.0.1",
                 maxmemory: str | None = None, password: str | None = None,
                 enable_commands: Iterable[str] = ()) -> None:
        self.dir = Path(data_dir).resolve()
        self.host, self.port = host, port
        self.maxmemory = resolve_maxmemory(maxmemory)
        self.password = password or None
        self.enable_commands = {c.upper() for c in enable_commands}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]host:port/0``: what :func:`make_redis` and the dedup stage take."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "redis.log"

    @property
    def config_file(self) -> Path:
        """``data_dir/redis.conf``: the password and the disabled commands, rewritten on every start."""
        return self.dir / "redis.conf"

    def _write_config(self) -> None:
        lines = ["# Written by connectors/redis.py on every start; edits are overwritten."]
        if self.password:
            lines.append(f"requirepass {_config_string(self.password)}")
        lines += [f'rename-command {c} ""' for c in DISABLED_COMMANDS if c not in self.enable_commands]
        write_private(self.config_file, "\n".join(lines) + "\n")

    def _command(self) -> list[str]:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found on PATH: the near-duplicate stage keeps its state in "
                               "Redis. `make setup` installs it (on Debian: apt-get install -y redis-server).")
        if not self.password and not is_loopback(self.host):
            raise RuntimeError(f"redis: refusing to listen on {self.host} without a password: anyone who reaches "
                               f"{self.host}:{self.port} could read and rewrite the pipeline state. Give RedisServer "
                               "a password (clients put it in redis.url: redis://:PASSWORD@host:port/0), or bind "
                               "127.0.0.1.")
        args = [exe, str(self.config_file), "--bind", self.host, "--port", str(self.port), "--dir", str(self.dir),
                "--daemonize", "no", "--protected-mode", "yes", "--logfile", "",
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                *INTSET_ARGS, *LISTPACK_ARGS]
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        return args

    def start(self, timeout_s: float = 30) -> Self:
        """Start the server (loading its append-only file, if any) and wait until it answers PING."""
        command = self._command()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        # redis-server rewrites its title to "redis-server host:port"
        self._stop_stale(self.pid_file, b"redis-server", f":{self.port}".encode(), wait_s=10)
        self._spawn(command, self.host, self.port,
                    "is another Redis running? Stop it or configure a free port for the embedded Redis.")
        client = redis.Redis(host=self.host, port=self.port, password=self.password, socket_timeout=1,
                             socket_connect_timeout=1, retry=Retry(ExponentialBackoff(), 0))

        def answers() -> bool:
            try:
                return bool(client.ping())  # LOADING (replaying the AOF) raises BusyLoadingError: keep waiting
            except (RedisConnectionError, RedisTimeoutError):
                return False

        try:
            self._wait_until(answers, timeout_s, f"answer PING on {self.host}:{self.port}", poll_s=0.05)
            return self
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()



def _config_string(value: str) -> str:
    """`value` as a double-quoted redis.conf string: its UTF-8 bytes, the unsafe ones as \\xHH."""
    return '"' + "".join(chr(b) if 0x20 <= b < 0x7F and b not in b'"\\' else f"\\x{b:02x}"
                         for b in value.encode("utf-8")) + '"'
