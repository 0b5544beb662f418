"""Where the long-running parts say how they are doing: one Redis hash the console's health page reads.

Key ``<redis.namespace>status`` (``nd:status`` by default), one field per reporter, its value a JSON
object with ``updated_at``:

- ``connector:rss:<feed>``, ``connector:inbox:<source>``, ``connector:http:<source>``: a
  :class:`ConnectorStatus` (last success, last error with its message, counts), written by the
  connector through a :class:`StatusBoard` (in the background, at most every ``interval_s``: a
  connector never waits for Redis, and a Redis outage costs the status, not the ingestion);
- ``alert-rules``: the alerts stage's view of config/alerts.yaml (rules in force, the last reload
  error and when), written by each pipeline worker when it checks or reloads the file.

Why Redis: every part that runs long already has ``redis.url`` in its settings, the pipeline's state
lives there, the console reads it for the health page, and a hash field is one small overwrite (no
history to trim). Status text is untrusted on the way out (an error quotes a feed's or a client's
input): the console escapes it like everything else.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
import redis

from connectors.redis import make_redis
from core.records import utc_now_iso
from core.settings import Settings

log = logging.getLogger(__name__)

#: The hash's key under ``redis.namespace``.
STATUS_KEY = "status"
#: The field the alerts stage writes.
ALERT_RULES = "alert-rules"
#: The longest error message kept in a status record.
MAX_ERROR_CHARS = 1000


def status_key(namespace: str) -> str:
    """The status hash's key for a Redis namespace (``redis.namespace``)."""
    return f"{namespace}{STATUS_KEY}"


@dataclass
class ConnectorStatus:
    """What a connector reports: which one (``kind``: rss, inbox, http; ``name``: the feed or
    source; ``target``: what it reads or serves), its last success and last error (ISO-8601 UTC,
    the error's message), and counts since it started (rss: since its memory began)."""

    kind: str
    name: str
    target: str
    last_success: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Its field in the status hash."""
        return f"connector:{self.kind}:{self.name}"

    def failed(self, error: str) -> None:
        """Record an error now (its message cut at MAX_ERROR_CHARS)."""
        self.last_error, self.last_error_at = error[:MAX_ERROR_CHARS], utc_now_iso()

    def succeeded(self) -> None:
        self.last_success = utc_now_iso()

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def publish(client: redis.Redis, namespace: str, name: str, record: dict[str, Any]) -> None:
    """Write one status record now (``updated_at`` added); raises what Redis raises."""
    client.hset(status_key(namespace), name, orjson.dumps({**record, "updated_at": utc_now_iso()}))


def read_status(client: redis.Redis, namespace: str) -> dict[str, dict[str, Any]]:
    """Every status record by field; a field whose value is not a JSON object is skipped."""
    out = {}
    for name, value in client.hgetall(status_key(namespace)).items():
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out[name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)] = record
    return out


class StatusBoard:
    """A connector's writer of status records: ``report(status)`` marks it changed; a daemon
    thread writes changed records every ``interval_s``, and ``stop()`` writes the last ones."""

    def __init__(self, settings: Settings, interval_s: float = 2.0) -> None:
        self.namespace = settings.redis.namespace
        self.interval_s = interval_s
        self._client = make_redis(settings.redis.url, retries=0, socket_timeout_s=2.0)
        self._changed: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def report(self, status: ConnectorStatus) -> None:
        """Have `status` (a snapshot of it now) written with the next flush."""
        with self._lock:
            self._changed[status.key] = asdict(status)

    def start(self) -> StatusBoard:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="status-board", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.flush()
        self._client.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def flush(self) -> None:
        """Write the changed records; on failure keep them for the next try and say so once."""
        with self._lock:
            changed, self._changed = self._changed, {}
        if not changed:
            return
        try:
            for name, record in changed.items():
                publish(self._client, self.namespace, name, record)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._changed = {**changed, **self._changed}
            if not self._failing:
                log.warning("connector status not written to Redis (the console's health page will show it "
                            "stale): %s", exc)
            self._failing = True
            return
        if self._failing:
            log.info("connector status written to Redis again")
        self._failing = False
