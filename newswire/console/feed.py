"""The console's live view of the alerts, dead-letter and stats topics: one background consumer.

It reads the topics from ``backlog`` records before their end, keeps the newest alerts and dead
letters in memory (the dead-letter page reads them: the store keeps no dead letters) with counts
per stage and reason, and the pipeline's fragment counts per window (throughput on the health
page), and hands each new alert to every open live stream (SSE) on its event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, deque
from typing import Any

import orjson
from kafka import TopicPartition

from connectors.kafka import make_consumer
from core.settings import Settings

log = logging.getLogger(__name__)


class TopicFeed:
    """Tails ``news.alerts`` and ``news.dlq`` (their configured names) in a daemon thread."""

    #: Live streams further behind than this many alerts lose the oldest (a stalled browser tab).
    QUEUE_SIZE = 1000
    #: Fragment-count windows kept, and stats records read back at start (one per source and window).
    STATS_WINDOWS = 60
    STATS_BACKLOG = 2000

    def __init__(self, settings: Settings, alert_backlog: int, dead_letter_backlog: int) -> None:
        self.settings = settings
        self.topics = {settings.kafka.topics.alerts.name: "alert", settings.kafka.topics.dlq.name: "dlq",
                       settings.kafka.topics.stats.name: "stats"}
        self.alerts: deque[dict[str, Any]] = deque(maxlen=alert_backlog)
        #: the newest dead letters, each with ``dlq_partition`` and ``dlq_offset`` (where it is on the topic) added
        self.dead_letters: deque[dict[str, Any]] = deque(maxlen=dead_letter_backlog)
        #: (stage, reason) -> dead letters seen since the console started (its backlog included)
        self.dead_letter_counts: Counter[tuple[str, str]] = Counter()
        #: (window start, window end) -> (source, the counting job's partitions, None: all) -> fragments,
        #: the newest STATS_WINDOWS windows (``windows`` adds up the jobs)
        self._counts: dict[tuple[str, str], dict[tuple[str, tuple[int, ...] | None], int]] = {}
        self.error: str | None = "not connected yet"
        self._backlog = {"alert": alert_backlog, "dlq": dead_letter_backlog, "stats": self.STATS_BACKLOG}
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any] | None]]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def windows(self) -> dict[tuple[str, str], dict[str, int]]:
        """(window start, window end) -> fragments per source. Several jobs (`up --workers N`) each
        count their own partitions of a source and window: their counts add up."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for window, counts in list(self._counts.items()):
            per_source = out[window] = {}
            for (source, _), n in list(counts.items()):
                per_source[source] = per_source.get(source, 0) + n
        return out

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="console-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._publish(None)  # open live streams end now instead of at their next heartbeat
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    @property
    def live_streams(self) -> int:
        """Open live streams (subscribed queues)."""
        with self._lock:
            return len(self._subscribers)

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue on the running event loop that receives every alert from now on, and None when
        the feed stops."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self.QUEUE_SIZE)
        with self._lock:
            self._subscribers.add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        with self._lock:
            self._subscribers = {s for s in self._subscribers if s[1] is not queue}

    def _publish(self, alert: dict[str, Any] | None) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(_put_latest, queue, alert)
            except RuntimeError:  # that loop has closed; its stream is gone
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception as exc:  # noqa: BLE001 - broker away or topics missing: say so, retry
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("console feed: %s; retrying", self.error)
                self._stop.wait(2)

    def _consume(self) -> None:
        # A short bootstrap wait keeps stop() prompt while the broker is away (the loop retries anyway).
        consumer = make_consumer(self.settings, group_id=None, enable_auto_commit=False, bootstrap_timeout_ms=2000)
        try:
            partitions = []
            for topic in self.topics:
                found = consumer.partitions_for_topic(topic)
                if not found:
                    raise LookupError(f"topic {topic} does not exist yet (the pipeline creates it)")
                partitions += [TopicPartition(topic, p) for p in sorted(found)]
            consumer.assign(partitions)
            ends = consumer.end_offsets(partitions)
            starts = consumer.beginning_offsets(partitions)
            for tp in partitions:
                consumer.seek(tp, max(starts[tp], ends[tp] - self._backlog[self.topics[tp.topic]]))
            self.error = None
            while not self._stop.is_set():
                for tp, records in consumer.poll(timeout_ms=100).items():
                    for record in records:
                        self.take(self.topics[tp.topic], record.value, tp.partition, record.offset)
        finally:
            consumer.close()

    def take(self, role: str, value: bytes, partition: int, offset: int) -> None:
        """Keep one record of the alerts (`role` "alert") or dead-letter ("dlq") topic."""
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return
        if not isinstance(doc, dict):
            return
        if role == "alert":
            self.alerts.append(doc)
            self._publish(doc)
        elif role == "stats":
            window = (str(doc.get("window_start")), str(doc.get("window_end")))
            share = doc.get("partitions")
            # A late refiring of one job's window replaces that job's count.
            job = (str(doc.get("source")), tuple(share) if isinstance(share, list) else None)
            self._counts.setdefault(window, {})[job] = int(doc.get("fragments") or 0)
            for old in sorted(self._counts)[:-self.STATS_WINDOWS]:
                del self._counts[old]
        else:
            self.dead_letters.append({**doc, "dlq_partition": partition, "dlq_offset": offset})
            self.dead_letter_counts[(str(doc.get("stage")), str(doc.get("reason")))] += 1


    def dead_letter(self, partition: int, offset: int) -> dict[str, Any] | None:
        """The kept dead letter at `partition` and `offset` of the dead-letter topic, or None."""
        return next((d for d in self.dead_letters if (d["dlq_partition"], d["dlq_offset"]) == (partition, offset)),
                    None)


def _put_latest(queue: asyncio.Queue[dict[str, Any] | None], item: dict[str, Any] | None) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)
