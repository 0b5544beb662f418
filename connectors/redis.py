"""Redis: the client, the embedded server lifecycle, and the near-duplicate state store.

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

:class:`RedisDedupStore` keeps :mod:`pipelines.text.dedup`'s per-key buckets in Redis, so every
worker and every pipeline instance pointed at one Redis shares one dedup state. It lives here, not
in ``pipelines/text`` (pure functions, no I/O), because it is the one place that knows how the
buckets are laid out in Redis.
"""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from connectors.process import EmbeddedServer, is_loopback, write_private
from pipelines.text.dedup import (
    DEFAULT_SETTINGS,
    BucketEntry,
    DedupSettings,
    DedupVerdict,
    Fingerprint,
    KeyHits,
    entry_size,
    fingerprint,
    judge,
    key_kind,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- client

#: Story and novelty memory are sets of 31-bit integers (connectors.story_store.small_hash); Redis
#: packs such a set in 4 bytes a member up to this many members (default 512, then ~60 bytes each).
#: Membership stays a binary search; an insert moves at most 64 KB. docker-compose.yml sets it too.
INTSET_ARGS = ("--set-max-intset-entries", "16384")

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


class RedisServer(EmbeddedServer):
    """The embedded ``redis-server`` on ``host:port`` with its state in ``data_dir``.

    Usage: ``with RedisServer(settings.data_dir / "redis", port=6379) as server: ...`` or
    ``start()`` / ``stop()``. The append-only file (fsync every second) is what makes state survive
    a restart; RDB snapshots are off (the AOF already holds everything). ``maxmemory`` (e.g.
    ``"2gb"``) is off by default; when set, writes past it fail loudly (``noeviction``) rather than
    silently forgetting dedup state.

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
        self.maxmemory = maxmemory
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
                *INTSET_ARGS]
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


# --------------------------------------------------------------------------- dedup state

# One Redis string per dedup key: its bucket, entries concatenated oldest first. An entry is
#   ts: float64 LE | size: uint32 LE | tag: uint8 | event id
# tag 0: the id is 32 lower-case hex chars (every id pipelines.events makes), stored as 16 raw
# bytes (29-byte entry: a one-entry bucket fits Redis' 44-byte embedded string); tag n > 0: the
# id is n bytes of UTF-8. Strings, not lists: a small list costs ~100 bytes more per key.
_ENTRY_HEAD = struct.Struct("<dIB")
_HEX_ID = re.compile(r"[0-9a-f]{32}")
_HASHED_KEY = re.compile(r"([a-z]+[0-9]*):([0-9a-f]{16}|[0-9a-f]{32})")

# Per event, atomically (a script runs alone on the server), one round trip for all its keys:
# the same steps as pipelines.text.dedup.probe_entry on each key's bucket, plus one rule for
# replays (marked *). KEYS: the event's dedup keys. ARGV: 1 event id (tag + id bytes), 2 horizon
# (float64 LE: ts - ttl), 3 one kind letter per key (e exact, b band, s sentence), 4-6 this
# event's entry for e/b/s keys, 7 max_bucket_entries, 8 TTL in ms.
# Returns {key index, hits (entries concatenated)} pairs for the keys that have hits.
_PROBE_SCRIPT = """
local own, horizon = ARGV[1], struct.unpack('<d', ARGV[2])
local kinds, entry_of = ARGV[3], {e = ARGV[4], b = ARGV[5], s = ARGV[6]}
local max_entries, ttl_ms = tonumber(ARGV[7]), tonumber(ARGV[8])
local out = {}
for i, key in ipairs(KEYS) do
  local kind = string.sub(kinds, i, i)
  local bucket = redis.call('GET', key) or ''
  local live, hits, seen, own_at = {}, {}, 0, nil
  local pos = 1
  while pos <= #bucket do
    local tag = string.byte(bucket, pos + 12)
    local len = 13 + (tag == 0 and 16 or tag)
    local e = string.sub(bucket, pos, pos + len - 1)
    pos = pos + len
    seen = seen + 1
    if struct.unpack('<d', e) >= horizon then
      live[#live + 1] = e
      if string.sub(e, 13) == own then
        own_at = #live
      elseif own_at == nil then
        -- * a replay sees only what was there before its first pass: the same verdict again
        hits[#hits + 1] = e
      end
    end
  end
  local append = own_at == nil and #live < max_entries and not (kind == 'e' and #hits > 0)
  if append then
    live[#live + 1] = entry_of[kind]
    redis.call('SET', key, table.concat(live), 'PX', ttl_ms)
  elseif #live == 0 and seen > 0 then
    redis.call('DEL', key)
  elseif #live < seen then
    redis.call('SET', key, table.concat(live), 'KEEPTTL')
  end
  if #hits > 0 then
    out[#out + 1] = i
    out[#out + 1] = table.concat(hits)
  end
end
return out
"""


def encode_event_id(event_id: str) -> bytes:
    """Tag byte + id as stored in an entry (16 raw bytes for a 32-hex id)."""
    if _HEX_ID.fullmatch(event_id):
        return b"\x00" + bytes.fromhex(event_id)
    raw = event_id.encode("utf-8")
    if not 0 < len(raw) < 256:
        raise ValueError(f"dedup: event_id must be 1-255 bytes of UTF-8, got {len(raw)} bytes: {event_id[:80]!r}")
    return bytes([len(raw)]) + raw


def encode_entry(entry: BucketEntry) -> bytes:
    """One bucket entry as stored in Redis (see the layout above)."""
    tagged = encode_event_id(entry.event_id)
    return struct.pack("<dI", entry.ts, entry.size) + tagged


def decode_entries(blob: bytes) -> list[BucketEntry]:
    """Entries concatenated as in a bucket (or a script's hits) -> BucketEntry list, in order."""
    out, pos = [], 0
    while pos < len(blob):
        ts, size, tag = _ENTRY_HEAD.unpack_from(blob, pos)
        pos += _ENTRY_HEAD.size
        n = tag or 16
        raw = blob[pos:pos + n]
        pos += n
        out.append(BucketEntry(raw.hex() if tag == 0 else raw.decode("utf-8"), ts, size))
    return out


def encode_key(key: str, namespace: bytes) -> bytes:
    """A dedup key as a Redis key: ``b07:<16 hex>`` -> namespace + ``b07`` + 8 raw bytes.

    Raw hash bytes halve the key; a key of any other shape is kept as text after a 0xFF byte, which
    no hashed key starts with, so two different dedup keys never share a Redis key.
    """
    m = _HASHED_KEY.fullmatch(key)
    if m:
        return namespace + m.group(1).encode("ascii") + bytes.fromhex(m.group(2))
    return namespace + b"\xff" + key.encode("utf-8")


class RedisDedupStore:
    """:class:`~pipelines.text.dedup.DedupIndex` with its buckets in Redis: shared, durable, expiring.

    Each event costs one round trip (:meth:`probe`): a server-side script reads and updates all
    its keys atomically, so two copies racing through different workers still meet (the one that
    runs second sees the first). Verdicts are :func:`~pipelines.text.dedup.judge`'s over the same
    hits ``DedupIndex`` would find, with one addition for replays: an event whose entry is already
    in a bucket sees only the entries stored before its own, so re-processing it (a Beam retry, a
    restart, a client retry after a timeout) gives its first verdict again and never matches
    itself. A key expires ``ttl_s`` (wall clock) after its last append; entries older than
    ``ts - ttl_s`` (event time) are ignored and dropped on every probe, as in ``DedupIndex``.
    """

    def __init__(self, client: redis.Redis, settings: DedupSettings = DEFAULT_SETTINGS,
                 namespace: bytes = b"nd:") -> None:
        self.client = client
        self.settings = settings
        self.namespace = namespace
        self._script = client.register_script(_PROBE_SCRIPT)
        self._ttl_ms = max(1, round(settings.ttl_s * 1000))

    def probe(self, fp: Fingerprint, event_id: str, ts: float) -> list[KeyHits]:
        """Read every key of the event and store the event under them; the keys' hits (one round trip)."""
        if not fp.keys:
            return []
        return self._hits(fp, self._script(*self._script_call(fp, event_id, ts)))

    def probe_many(self, events: Sequence[tuple[Fingerprint, str, float]]) -> list[list[KeyHits]]:
        """:meth:`probe` for several ``(fingerprint, event_id, ts)`` in one round trip, in order.

        Each event's script still runs alone, so a later event in the batch sees the earlier ones.
        """
        with self.client.pipeline(transaction=False) as pipe:
            for fp, event_id, ts in events:
                if fp.keys:
                    self._script(*self._script_call(fp, event_id, ts), client=pipe)
            replies = iter(pipe.execute())
        return [self._hits(fp, next(replies)) if fp.keys else [] for fp, _, _ in events]

    def _script_call(self, fp: Fingerprint, event_id: str, ts: float) -> tuple[list[bytes], list[Any]]:
        # entry_size() looks at the key's first letter only: e(xact), b(and), s(entence)
        entries = [encode_entry(BucketEntry(event_id, ts, entry_size(kind, fp))) for kind in "ebs"]
        keys = [encode_key(k, self.namespace) for k in fp.keys]
        kinds = "".join(key_kind(k)[0] for k in fp.keys)
        return keys, [encode_event_id(event_id), struct.pack("<d", ts - self.settings.ttl_s), kinds,
                      *entries, self.settings.max_bucket_entries, self._ttl_ms]

    @staticmethod
    def _hits(fp: Fingerprint, reply: Sequence[Any]) -> list[KeyHits]:
        return [KeyHits(fp.keys[int(reply[i]) - 1], tuple(decode_entries(reply[i + 1])))
                for i in range(0, len(reply), 2)]

    def observe(self, event_id: str, fp: Fingerprint, ts: float) -> DedupVerdict:
        """Match the event against earlier ones and store it: :meth:`DedupIndex.observe` on Redis."""
        return DedupVerdict(event_id, judge(fp, self.probe(fp, event_id, ts), self.settings), fp)

    def add(self, event_id: str, text: str, ts: float, **fingerprint_kw: str) -> DedupVerdict:
        """Fingerprint ``text`` and :meth:`observe` it (``url=``, ``guid=``, ``content_hash=`` optional)."""
        return self.observe(event_id, fingerprint(text, settings=self.settings, **fingerprint_kw), ts)
