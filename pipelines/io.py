"""Kafka I/O for the pipeline: an unbounded splittable-DoFn reader and the delivering sink stage.

Why a Python SDF and not Beam's cross-language KafkaIO: see docs/decisions/0001-runner.md.

Reading (`ReadFromKafka`): one restriction per partition, ``OffsetRange(start, 2**62)`` where
``start`` is the consumer group's committed offset (earliest when none). Each ``process()`` call
polls one batch, claims its records and emits them as ONE element (a list of `KafkaRecord`s,
timestamped with its earliest record's time), moves a manual watermark (max record time; wall
clock minus a lag while the partition is idle), and defers the rest of the restriction. Offsets
are NOT committed by the reader. A poll's records stay one element down to the sinks (parse, the
fused stage chain and delivery take and hand on lists): the framework's per-element cost is paid
once per poll, not once per record (bench/RESULTS.md, "One element per poll").

Delivering (`DeliverToSinks`): every record the reader emitted ends in exactly one `Delivery`
(an enriched event or a dead letter), routed by partition to one worker. The sink stage writes
storage and topics in ``finish_bundle`` and only then marks the records' offset intervals done in
an `OffsetLedger`, whose contiguous prefix per partition the process's `OffsetCommitter` commits to
the consumer group on a thread of its own (in order, never backwards). So a crash at any point
replays from the last committed offset, whose records are all in every sink: at-least-once, and
sinks upsert by ``event_id`` so storage holds each accepted fragment once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, NamedTuple

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp
from kafka import OffsetAndMetadata, TopicPartition

from connectors.kafka import make_consumer
from connectors.sinks import open_sinks
from core.outage import OUTAGES, backoff_s, kafka_unavailable, wait_out
from core.records import REPLAY_HEADER, Delivery, delivery_failed
from core.settings import Settings

log = logging.getLogger(__name__)

#: Beam counter namespace of the dead letters per stage and reason (counter name "stage:reason").
DEAD_LETTER_COUNTERS = "dead_letters"

#: End of an open restriction: far beyond any real offset, small enough for OffsetRange arithmetic.
UNBOUNDED_END = 2**62


class KafkaRecord(NamedTuple):
    """One record read from the raw topic. ``start`` is the reader's position before it (the previous
    record's offset + 1, or the restriction start): offsets need not be contiguous (transaction
    markers, compaction), so the ledger chains ``start -> offset + 1`` instead of assuming ``+1``.
    ``replay_of``: the event id a ``newswire replay`` record carries in its header (else None)."""

    topic: str
    partition: int
    offset: int
    start: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    replay_of: str | None = None


# --------------------------------------------------------------------------- reading

class _PartitionTracker(OffsetRestrictionTracker):
    """Offset tracker that allows checkpoints (fraction 0) but no fractional splits: a partition is
    read by one consumer, in order; a split of an open range would only create an idle reader."""

    def try_split(self, fraction_of_remainder: float) -> Any:
        if fraction_of_remainder > 0:
            return None
        return super().try_split(fraction_of_remainder)


class _PartitionRestrictions(RestrictionProvider):
    def initial_restriction(self, element: tuple[str, int, int, int]) -> OffsetRange:
        return OffsetRange(element[2], UNBOUNDED_END)

    def create_tracker(self, restriction: OffsetRange) -> _PartitionTracker:
        return _PartitionTracker(restriction)

    def restriction_size(self, element: Any, restriction: OffsetRange) -> int:
        return 1  # unbounded: the real backlog is unknown without a broker round trip

    def split(self, element: Any, restriction: OffsetRange) -> Iterator[OffsetRange]:
        yield restriction


class _WatermarkFromRecords(WatermarkEstimatorProvider):
    def initial_estimator_state(self, element: Any, restriction: OffsetRange) -> None:
        return None

    def create_watermark_estimator(self, state: Timestamp | None) -> ManualWatermarkEstimator:
        return ManualWatermarkEstimator(state)


class _ListPartitions(beam.DoFn):
    """Impulse -> one (topic, partition, start_offset, partition_count) per partition, at run time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _mine(self, partition: int) -> bool:
        """Whether this pipeline instance reads ``partition`` (pipeline.partitions; all when unset)."""
        only = self.settings.pipeline.partitions
        return only is None or partition in only

    def process(self, _: bytes) -> Iterator[tuple[str, int, int, int]]:

        topic = self.settings.kafka.topics.fragments.name
        consumer = wait_out(lambda: make_consumer(self.settings, group_id=self.settings.kafka.consumer_group),
                            kafka_unavailable, "Kafka (list partitions)", self.settings.pipeline.outage_max_wait_s)
        try:
            deadline = time.monotonic() + 60
            partitions = consumer.partitions_for_topic(topic)
            while not partitions:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"topic '{topic}' does not exist on {self.settings.kafka.bootstrap_servers}")
                time.sleep(0.5)
                partitions = consumer.partitions_for_topic(topic)
            tps = [TopicPartition(topic, p) for p in sorted(partitions) if self._mine(p)]
            if not tps:
                raise RuntimeError(f"pipeline.partitions {list(self.settings.pipeline.partitions or [])} "
                                   f"names none of topic '{topic}''s partitions {sorted(partitions)}")
            beginning = consumer.beginning_offsets(tps)
            for tp in tps:
                committed = consumer.committed(tp)
                start = max(committed if committed is not None else 0, beginning[tp])
                log.info("reading %s[%d] from offset %d (committed=%s)", topic, tp.partition, start, committed)
                yield (topic, tp.partition, start, len(tps))
        finally:
            consumer.close()


class _PartitionWatermarks:
    """Process-wide per-partition watermarks; each partition reports the minimum over all of them.

    Prism keeps, for an SDF stage, only the watermark estimate of the latest finished bundle
    ("aggregated here until it makes a difference", prism/internal/engine/elementmanager.go), not
    the minimum over the restrictions in flight. With one restriction per partition, the stage
    watermark would jump to whichever partition reported last and records still unread on a slower
    partition would be late. Reporting the minimum over the partitions this process reads keeps it
    correct there, and is harmless where a runner takes the minimum itself (Flink).
    Until every partition of the topic has reported (or ``settle_s`` has passed, for runners that
    give a process only some partitions), nothing advances.
    """

    def __init__(self, settle_s: float = 10.0) -> None:
        self._lock = threading.Lock()
        self._own: dict[str, dict[int, Timestamp | None]] = {}
        self._first: dict[str, float] = {}
        self.settle_s = settle_s

    def own(self, topic: str, partition: int) -> Timestamp | None:
        with self._lock:
            return self._own.get(topic, {}).get(partition)

    def report(self, topic: str, partition: int, own: Timestamp | None, partitions: int) -> Timestamp | None:
        """Record this partition's own watermark; return the one it may report (or None: hold)."""
        with self._lock:
            marks = self._own.setdefault(topic, {})
            marks[partition] = own
            first = self._first.setdefault(topic, time.monotonic())
            if len(marks) < partitions and time.monotonic() - first < self.settle_s:
                return None
            known = list(marks.values())
            if any(m is None for m in known):
                return None
            return min(m for m in known if m is not None)


    def reset(self) -> None:
        """Forget every partition (a new job starts reading from the committed offsets)."""
        with self._lock:
            self._own.clear()
            self._first.clear()


_WATERMARKS = _PartitionWatermarks()


def reset_process_state() -> None:
    """Forget the process-wide reader and ledger state of a previous job in this process, before a
    resubmitted job starts from the committed offsets (pipelines/supervisor.py). Offsets the previous
    job's bundles handed to the background committer are committed first."""
    finish_commits()
    _WATERMARKS.reset()
    with OffsetLedger._lock:
        OffsetLedger._instances.clear()


class _ReadPartition(beam.DoFn):
    """Splittable DoFn: reads one Kafka partition forever, one poll per process() call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.records_read = Metrics.counter("kafka", "records_read")

    def setup(self) -> None:
        self._consumers: dict[tuple[str, int], Any] = {}
        self._closing = False

    def _consumer(self, topic: str, partition: int, partitions: int) -> Any:
        key = (topic, partition)
        if key not in self._consumers:
            p = self.settings.pipeline
            # A fetch waits for a batch (fetch_min_bytes), never longer than this job's poll does.
            consumer = make_consumer(self.settings, max_poll_records=p.poll_max_records,
                                     fetch_min_bytes=p.fetch_min_bytes,
                                     fetch_max_wait_ms=min(p.fetch_max_wait_ms, poll_timeout_ms(self.settings, partitions)))
            consumer.assign([TopicPartition(topic, partition)])
            self._consumers[key] = consumer
        return self._consumers[key]

    def process(
        self,
        element: tuple[str, int, int, int],
        # Beam passes a RestrictionTrackerView / estimator at run time; the defaults declare which.
        tracker: Any = beam.DoFn.RestrictionParam(_PartitionRestrictions()),
        watermark: Any = beam.DoFn.WatermarkEstimatorParam(_WatermarkFromRecords()),
    ) -> Iterator[TimestampedValue]:

        topic, partition, _, partitions = element
        if self._closing:  # the runner is shutting this worker down: hand the rest back untouched
            tracker.defer_remainder(Duration(seconds=1))
            return
        tp = TopicPartition(topic, partition)
        position = tracker.current_restriction().start
        try:
            consumer = self._consumer(topic, partition, partitions)  # connects on first use: may meet an outage
            if consumer.position(tp) != position:
                consumer.seek(tp, position)
            batch = consumer.poll(timeout_ms=poll_timeout_ms(self.settings, partitions),
                                  max_records=self.settings.pipeline.poll_max_records).get(tp, [])
        except Exception as exc:
            if not kafka_unavailable(exc):
                raise
            # The broker is away: keep the restriction and ask again shortly (the client reconnects).
            OUTAGES.waiting("Kafka (read)", exc)
            tracker.defer_remainder(Duration(seconds=1))
            return
        own = _WATERMARKS.own(topic, partition)
        records: list[KafkaRecord] = []
        stopped = False
        for rec in batch:
            if not tracker.try_claim(rec.offset):
                stopped = True  # the runner split the restriction here: the rest is not ours
                break
            records.append(KafkaRecord(topic, partition, rec.offset, position, rec.timestamp, rec.key, rec.value,
                                       _replay_of(rec.headers)))
            position = rec.offset + 1
        if records:
            # One element per poll: the batch's time is its first record's (LogAppendTime: the
            # partition's earliest), so nothing in it is older than the element, and the watermark
            # then moves to its last record's.
            last = Timestamp(micros=max(r.timestamp_ms for r in records) * 1000)
            own = last if own is None or last > own else own
            yield TimestampedValue(records, Timestamp(micros=min(r.timestamp_ms for r in records) * 1000))
            self.records_read.inc(len(records))
        if stopped:
            return
        if not batch:
            # An empty poll does not prove the partition is drained (a fetch may still be in flight),
            # so ask the broker. If our position is its end offset as of `asked`, every record we
            # have not read was appended after `asked`, and the raw topic stamps LogAppendTime
            # (connectors/kafka.topic_configs): nothing unread can be older than `asked`, less the
            # allowed clock skew between broker and worker (idle_watermark_lag_s).
            asked = time.time()
            try:
                drained = consumer.end_offsets([tp])[tp] <= position
                OUTAGES.recovered("Kafka (read)")
            except Exception as exc:
                if not kafka_unavailable(exc):
                    raise
                OUTAGES.waiting("Kafka (read)", exc)  # unknown, so not drained: the watermark holds
                drained = False
            if drained:
                idle = Timestamp.of(asked - self.settings.pipeline.idle_watermark_lag_s)
                own = idle if own is None or idle > own else own
        reported = _WATERMARKS.report(topic, partition, own, partitions)
        current = watermark.current_watermark()
        if reported is not None and (current is None or reported > current):
            watermark.set_watermark(reported)
        tracker.defer_remainder(Duration(seconds=0) if batch else Duration(seconds=0.02))

    def teardown(self) -> None:
        self._closing = True
        for consumer in getattr(self, "_consumers", {}).values():
            consumer.close()


def poll_timeout_ms(settings: Settings, partitions: int) -> int:
    """How long one poll may wait for records when this job reads ``partitions`` partitions. A poll
    returns as soon as records arrive, so this is the length of an idle partition's empty bundle:
    short when other partitions may wait behind it, longer when the job reads one partition (each
    empty bundle costs the runner and the SDK a few ms of CPU: bench/RESULTS.md, "Fewer empty
    polls"). Either way the partition's watermark moves once per poll."""
    p = settings.pipeline
    return max(p.poll_timeout_ms, p.lone_poll_timeout_ms) if partitions == 1 else p.poll_timeout_ms


def _replay_of(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    """The ``newswire-replay-of`` header's value, if the record has one (see core/records.py)."""
    for name, value in headers or ():
        if name == REPLAY_HEADER:
            return value.decode("utf-8", "replace") if value is not None else ""
    return None


class ReadFromKafka(beam.PTransform):
    """Unbounded read of the raw fragments topic as `KafkaRecord`s timestamped with the record time."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection[KafkaRecord]:
        return (
            pbegin
            | "Impulse" >> beam.Impulse()
            | "ListPartitions" >> beam.ParDo(_ListPartitions(self.settings))
            | "ReadPartitions" >> beam.ParDo(_ReadPartition(self.settings))
        )


# --------------------------------------------------------------------------- delivering

class OffsetLedger:
    """Per-partition record of which offset intervals every sink has; commits the contiguous prefix.

    One ledger per (bootstrap servers, group) per worker process. Records of a partition are routed
    to one key, hence one worker, so that worker sees every interval of the partition.
    """

    _instances: ClassVar[dict[tuple[str, str], OffsetLedger]] = {}
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}  # first offset not yet done, per partition
        self._pending: dict[tuple[str, int], dict[int, int]] = {}  # start -> next_offset, out of order
        self._guard = threading.Lock()

    @classmethod
    def shared(cls, bootstrap: str, group: str) -> OffsetLedger:
        with cls._lock:
            return cls._instances.setdefault((bootstrap, group), cls())

    def mark_done(self, intervals: Iterable[tuple[str, int, int, int]],
                  initial: Callable[[tuple[str, int]], int]) -> dict[tuple[str, int], int]:
        """Record (topic, partition, start, next_offset) intervals as done in every sink; return the
        partitions whose committable offset advanced, with the new offset. ``initial(tp)`` gives the
        position the reader started the partition from (the group's committed offset) the first
        time a partition is seen, because intervals may arrive out of order."""
        advanced: dict[tuple[str, int], int] = {}
        with self._guard:
            for topic, partition, start, nxt in intervals:
                tp = (topic, partition)
                if tp not in self._next:
                    self._next[tp] = initial(tp)
                if start < self._next[tp]:
                    continue  # a redelivered interval that is already committed
                pending = self._pending.setdefault(tp, {})
                pending[start] = max(nxt, pending.get(start, nxt))
                pos = self._next[tp]
                while pos in pending:
                    pos = pending.pop(pos)
                if pos != self._next[tp]:
                    self._next[tp] = pos
                    advanced[tp] = pos
        return advanced


#: The readiness name of the background offset commit while it cannot commit (core/outage.py).
COMMIT_DEPENDENCY = "Kafka (offset commit)"


class OffsetCommitter:
    """Commits a worker process's offsets to the consumer group on a thread of its own.

    The keyed delivery bundle holds its partition until ``finish_bundle`` returns (Prism runs one
    bundle per key at a time), and a synchronous commit was the largest part of that hold (10-50 ms
    measured, bench/RESULTS.md). The bundle now hands the offsets its ledger advanced to this
    committer and returns; the commit happens here, so the next bundle of the partition starts
    while the commit is on the wire.

    Guarantees, unchanged from the synchronous commit:

    * only offsets whose records every sink has flushed are handed over (``finish_bundle`` flushes
      first), so whatever is committed is in every sink; a crash before a commit lands replays
      those records (at-least-once; sinks upsert by ``event_id``);
    * per partition the committed offset never goes back: only the highest offset handed over
      counts, a lower one (a bundle of another thread that finished later) is dropped;
    * offsets handed over while a commit is in flight are coalesced into the next commit.

    A commit that fails (broker away, or refused) is kept and retried with backoff, never dropped;
    while it fails, ``COMMIT_DEPENDENCY`` is an outage, so ``/readyz`` says not ready and
    ``newswire_pipeline_outage`` shows it. One committer per (bootstrap servers, group) per
    process; :func:`finish_commits` commits what is pending and stops them (job stop, resubmission).
    """

    _instances: ClassVar[dict[tuple[str, str], OffsetCommitter]] = {}
    _lock = threading.Lock()

    def __init__(self, settings: Settings, *, first_backoff_s: float = 0.2, max_backoff_s: float = 5.0) -> None:
        self._settings = settings
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._cond = threading.Condition()
        self._high: dict[tuple[str, int], int] = {}  # highest offset handed over, per partition
        self._pending: dict[tuple[str, int], int] = {}  # handed over, not committed yet
        self._busy = False  # a commit is on the wire
        self._closed = False
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self.commits = 0  # commits that landed
        self.failures = 0  # commit attempts that failed (each is retried)

    @classmethod
    def shared(cls, settings: Settings) -> OffsetCommitter:
        """This process's committer for the settings' broker and group (started on first use)."""
        key = (settings.kafka.bootstrap_servers, settings.kafka.consumer_group)
        with cls._lock:
            committer = cls._instances.get(key)
            if committer is None:
                committer = cls._instances[key] = cls(settings)
            return committer

    @classmethod
    def every(cls) -> list[OffsetCommitter]:
        """This process's committers."""
        with cls._lock:
            return list(cls._instances.values())

    def submit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Hand over (topic, partition) -> next offset to commit; returns at once."""
        with self._cond:
            if self._closed:  # a bundle of a job being stopped or replaced: its records are read again
                log.warning("offset commit: committer closed, %d partition offset(s) not committed", len(offsets))
                return
            for tp, offset in offsets.items():
                if offset > self._high.get(tp, -1):
                    self._high[tp] = self._pending[tp] = offset
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="newswire-offset-commit", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def pending(self) -> int:
        """Partitions with an offset handed over and not committed yet (in flight included)."""
        with self._cond:
            return len(self._pending) + (1 if self._busy else 0)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every offset handed over so far is committed; False if ``timeout_s`` ran out."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout_s: float) -> bool:
        """Commit what is pending (for at most ``timeout_s``), then stop the thread. Offsets still
        pending after that are not committed: their records are replayed by the next start."""
        done = self.flush(timeout_s)
        with self._cond:
            self._closed = True
            left = dict(self._pending)
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.1, timeout_s))
        if not done:
            log.warning("offset commit: %d partition(s) not committed at shutdown (%s); their records "
                        "will be read again", len(left), ", ".join(f"{t}/{p}@{o}" for (t, p), o in sorted(left.items())))
        if self._consumer is not None and (self._thread is None or not self._thread.is_alive()):
            self._consumer.close()
            self._consumer = None
        return done

    def _run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch, self._pending = self._pending, {}
                self._busy = True
            ok = self._commit(batch)
            with self._cond:
                self._busy = False
                if not ok:  # keep it, unless a newer offset was handed over meanwhile
                    for tp, offset in batch.items():
                        self._pending[tp] = max(offset, self._pending.get(tp, offset))
                self._cond.notify_all()
                if ok:
                    failures = 0
                    continue
                self._cond.wait_for(lambda: self._closed, backoff_s(failures, self._first_backoff_s, self._max_backoff_s))
                failures += 1

    def _commit(self, batch: dict[tuple[str, int], int]) -> bool:
        try:
            if self._consumer is None:
                s = self._settings
                self._consumer = make_consumer(s, group_id=s.kafka.consumer_group)
            self._consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in batch.items()})
        except Exception as exc:  # noqa: BLE001 - kept and retried; readiness reports it
            self.failures += 1
            outage = OUTAGES.waiting(COMMIT_DEPENDENCY, exc)
            if outage.attempts == 1 or outage.attempts % 10 == 0:
                level = logging.WARNING if kafka_unavailable(exc) else logging.ERROR
                log.log(level, "offset commit failed (%s), attempt %d; kept and retried", outage.error,
                        outage.attempts)
            if not kafka_unavailable(exc) and self._consumer is not None:
                self._consumer.close()  # a refused commit: start again with a fresh client
                self._consumer = None
            return False
        self.commits += 1
        over = OUTAGES.recovered(COMMIT_DEPENDENCY)
        if over is not None:
            log.warning("offset commit works again after %.1fs", time.time() - over.since)
        return True


def commit_stats() -> tuple[int, int, int]:
    """(commits landed, commit attempts failed, partitions pending) over this process's committers
    since the job started (``newswire_pipeline_offset_commit*`` on /metrics)."""
    committers = OffsetCommitter.every()
    return (sum(c.commits for c in committers), sum(c.failures for c in committers),
            sum(c.pending() for c in committers))


def flush_commits(timeout_s: float) -> bool:
    """Wait until this process's committers have committed every offset handed over so far."""
    flushed = [c.flush(timeout_s) for c in OffsetCommitter.every()]  # every one, not up to the first that fails
    return all(flushed)


def finish_commits(timeout_s: float = 10.0) -> bool:
    """Commit every offset this process's committers hold, then stop and forget them (before a
    resubmitted job reads the committed offsets, and when the pipeline stops). False if some
    offsets could not be committed in ``timeout_s`` (their records are read again)."""
    with OffsetCommitter._lock:
        committers = list(OffsetCommitter._instances.values())
        OffsetCommitter._instances.clear()
    closed = [c.close(timeout_s) for c in committers]  # every one, not up to the first that fails
    return all(closed)


class DeliverToSinks(beam.PTransform):
    """Terminal stage: write every Delivery to its sinks, then commit the Kafka offsets it covers."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def expand(self, deliveries: beam.PCollection[list[Delivery]]) -> beam.PCollection[int]:
        return (
            deliveries
            | "KeyByPartition" >> beam.FlatMap(by_partition).with_output_types(tuple[str, Any])
            | "WriteAndCommit" >> beam.ParDo(_WriteAndCommit(self.settings))
        )


def by_partition(batch: list[Delivery]) -> Iterator[tuple[str, list[Delivery]]]:
    """A batch of deliveries keyed by their raw-topic partition. A batch comes from one poll of one
    partition, so this is one element; a batch that mixes partitions is split, never mis-routed."""
    groups: dict[str, list[Delivery]] = {}
    for d in batch:
        groups.setdefault(f"{d.topic}/{d.partition}", []).append(d)
    yield from groups.items()


class _WriteAndCommit(beam.DoFn):
    """Buffers a bundle's deliveries; in finish_bundle: add them to every sink (connectors.sinks.
    open_sinks: the store, then the topics), flush each, waiting out an unreachable sink, and
    only then hand the offsets to the process's `OffsetCommitter`. An event a sink refuses for
    good becomes a dead letter for the sinks after it. Keyed (stateful) so each partition has one
    owner."""

    OWNER = ReadModifyWriteStateSpec("owner", VarIntCoder())

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.events_written = Metrics.counter("sinks", "events_written")
        self.dead_letters = Metrics.counter("sinks", "dead_letters")
        self.alerts_sent = Metrics.counter("sinks", "alerts")
        self.commits = Metrics.counter("kafka", "offset_commits")
        self.refused = Metrics.counter("sinks", "refused")

    def setup(self) -> None:
        # Clients connect in their constructors: a worker set up during an outage waits it out too.
        s = self.settings
        self._sinks = open_sinks(s)
        self._positions = self._wait_out(lambda: make_consumer(s, group_id=s.kafka.consumer_group),
                                         kafka_unavailable, "Kafka (setup)")
        self._ledger = OffsetLedger.shared(s.kafka.bootstrap_servers, s.kafka.consumer_group)

    def start_bundle(self) -> None:
        self._buffer: list[Delivery] = []

    def process(self, element: tuple[str, list[Delivery]],
                _owner: Any = beam.DoFn.StateParam(OWNER)) -> Iterator[int]:
        # The state cell is never read or written (each access is a runner round trip): declaring it
        # makes this DoFn stateful, which is what routes all of a partition's records to one worker.
        self._buffer.extend(element[1])
        return iter(())

    def finish_bundle(self) -> None:
        if not self._buffer:
            return
        deliveries = self._buffer
        for sink in self._sinks:
            for d in deliveries:
                sink.add(d)
            self._wait_out(sink.flush, sink.unavailable, f"sink {sink.name}")
            if sink.refused:
                self.refused.inc(len(sink.refused))
                deliveries = [delivery_failed(d, sink.name, sink.refused_reason, sink.refused[d.payload["event_id"]])
                              if d.kind == "event" and d.payload["event_id"] in sink.refused else d
                              for d in deliveries]
        events = sum(1 for d in deliveries if d.kind == "event")
        self.events_written.inc(events)
        self.dead_letters.inc(len(deliveries) - events)
        for (stage, reason), n in Counter((d.payload["stage"], d.payload["reason"]) for d in deliveries
                                          if d.kind == "dead_letter").items():
            # one counter per stage and reason code (both set by our code, never by a record):
            # newswire_pipeline_dead_letters_total{stage, reason} on /metrics (pipelines/metrics.py)
            Metrics.counter(DEAD_LETTER_COUNTERS, f"{stage}:{reason}").inc(n)
        self.alerts_sent.inc(sum(len(d.alerts) for d in deliveries))
        advanced = self._ledger.mark_done(
            ((d.topic, d.partition, d.start, d.next_offset) for d in deliveries), self._committed_position)
        if advanced:  # committed by this process's committer thread: the partition's next bundle need not wait
            OffsetCommitter.shared(self.settings).submit(advanced)
            self.commits.inc()
        self._buffer = []

    def _wait_out(self, call: Callable[[], Any], unavailable: Callable[[BaseException], bool], what: str) -> Any:
        return wait_out(call, unavailable, what, self.settings.pipeline.outage_max_wait_s)

    def _committed_position(self, tp: tuple[str, int]) -> int:
        """Where the reader started this partition: the group's committed offset, else the log start."""

        part = TopicPartition(*tp)
        committed = self._wait_out(lambda: self._positions.committed(part), kafka_unavailable, "Kafka (offsets)")
        beginning = self._wait_out(lambda: self._positions.beginning_offsets([part])[part], kafka_unavailable,
                                   "Kafka (offsets)")
        return max(committed if committed is not None else 0, beginning)

    def teardown(self) -> None:
        # A worker shutting down (on runners whose workers are other processes): land what its
        # bundles handed over.
        flush_commits(5.0)
        positions = getattr(self, "_positions", None)
        if positions is not None:
            positions.close()
        for sink in getattr(self, "_sinks", ()):
            sink.close()
