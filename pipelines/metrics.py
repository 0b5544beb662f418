"""``GET /metrics`` of the pipeline process: the running job's Beam metrics, consumer lag, job state.

Everything is read when Prometheus scrapes (a custom collector), nothing is sampled in between:

* **Beam metrics** of the job, asked afresh from the job service each time
  (`pipelines.run.RunningPipeline.live_metrics`; Beam's ``PipelineResult.metrics()`` keeps its
  first answer). Prism answers for a running streaming job: ``committed`` holds the totals of
  finished bundles and grows while the job runs, ``attempted`` only what bundles still in flight
  have reported (docs/deploy.md#metrics). We export ``committed`` where the runner gives it, else
  ``attempted``. A resubmitted job starts from zero: Prometheus' ``rate()`` treats that as a
  counter reset.
* **Consumer lag** per raw-topic partition: the end offset minus the pipeline group's committed
  offset (pipelines/io.py commits only what every sink has), with kafka-python.
* **Job state**: the supervisor's and the runner's.

A source that does not answer (the job service's state or metrics, the broker) is reported with
``newswire_pipeline_source_up{source=...} 0`` and its series left out; /metrics itself still answers.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kafka import TopicPartition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from connectors.kafka import make_consumer
from connectors.metrics import label
from core.outage import OUTAGES
from core.settings import Settings
from pipelines.io import DEAD_LETTER_COUNTERS, commit_stats

if TYPE_CHECKING:
    from pipelines.supervisor import PipelineSupervisor

log = logging.getLogger(__name__)

#: Seconds one scrape may wait for each source (Prometheus' default scrape timeout is 10 s).
SOURCE_TIMEOUT_S = 3.0
#: The distribution every stage keeps of its per-event wall time (pipelines/transforms/common.py).
LATENCY_NAME = "latency_us"
#: The supervisor's states (pipelines/supervisor.py), each reported 0 or 1.
SUPERVISOR_STATES = ("starting", "running", "restarting", "failed", "stopped")
#: Beam's job states (beam_job_api JobState), each reported 0 or 1.
JOB_STATES = ("UNSPECIFIED", "STOPPED", "RUNNING", "DONE", "FAILED", "CANCELLED", "UPDATED", "DRAINING",
              "DRAINED", "STARTING", "CANCELLING", "UPDATING")


def beam_values(results: dict[str, list[Any]]) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], Any]]:
    """Counters and distributions of a ``MetricResults.query()`` answer, summed over the steps that
    report under the same (namespace, name): committed where the runner has it, else attempted."""
    counters: dict[tuple[str, str], int] = {}
    for r in results.get("counters", ()):
        value = r.committed if r.committed is not None else r.attempted
        if value is not None:
            key = (r.key.metric.namespace, r.key.metric.name)
            counters[key] = counters.get(key, 0) + int(value)
    distributions: dict[tuple[str, str], Any] = {}
    for r in results.get("distributions", ()):
        value = r.committed if r.committed is not None else r.attempted
        if value is None or not value.count:
            continue
        key = (r.key.metric.namespace, r.key.metric.name)
        seen = distributions.get(key)
        distributions[key] = value if seen is None else _merged(seen, value)
    return counters, distributions


def _merged(a: Any, b: Any) -> Any:
    from apache_beam.metrics.cells import DistributionData, DistributionResult

    return DistributionResult(DistributionData(a.sum + b.sum, a.count + b.count, min(a.min, b.min), max(a.max, b.max)))


def beam_families(results: dict[str, list[Any]]) -> list[Metric]:
    """The Prometheus families for one answer of the job's Beam metrics."""
    counters, distributions = beam_values(results)
    counter = CounterMetricFamily("newswire_pipeline_counter", "Beam counters of the running job: per stage "
                                  "(namespace) and name, e.g. dedup/near_duplicates, sinks/events_written",
                                  labels=["stage", "name"])
    dead = CounterMetricFamily("newswire_pipeline_dead_letters", "Records the delivery step sent to the "
                               "dead-letter topic, by the stage that refused them and the reason code",
                               labels=["stage", "reason"])
    for (namespace, name), value in sorted(counters.items()):
        if namespace == DEAD_LETTER_COUNTERS:
            stage, _, reason = name.rpartition(":")
            dead.add_metric([label(stage), label(reason)], value)
        else:
            counter.add_metric([label(namespace), label(name)], value)
    latency = SummaryMetricFamily("newswire_pipeline_stage_latency_seconds", "Wall time of one event in a "
                                  "stage (outage waits included): count and sum", labels=["stage"])
    low = GaugeMetricFamily("newswire_pipeline_stage_latency_min_seconds", "Fastest event in a stage since the "
                            "job started", labels=["stage"])
    high = GaugeMetricFamily("newswire_pipeline_stage_latency_max_seconds", "Slowest event in a stage since the "
                             "job started", labels=["stage"])
    for (namespace, name), d in sorted(distributions.items()):
        if name != LATENCY_NAME:
            continue
        labels = [label(namespace)]
        latency.add_metric(labels, d.count, d.sum / 1e6)
        low.add_metric(labels, d.min / 1e6)
        high.add_metric(labels, d.max / 1e6)
    return [counter, dead, latency, low, high]


def _slug(text: str) -> str:
    """A dependency name from core/outage.py ("Kafka (read)", "sink sqlite") as a label value."""
    return label(re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:64])


class ConsumerLag:
    """Per raw-topic partition (the ones this pipeline reads): end offset minus the pipeline
    group's committed offset (the log start when it has none). One consumer, created on first use and
    again after a failure; it never subscribes, so it never joins the group."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: Any = None
        self._lock = threading.Lock()  # kafka-python consumers are not thread-safe; scrapes can overlap

    def read(self, timeout_s: float = SOURCE_TIMEOUT_S) -> dict[int, int]:
        """{partition: records not yet committed}; raises when the broker does not answer."""
        s = self.settings
        topic = s.kafka.topics.fragments.name
        timeout_ms = int(timeout_s * 1000)
        with self._lock:
            try:
                if self._consumer is None:
                    self._consumer = make_consumer(s, group_id=s.kafka.consumer_group, client_id="newswire-metrics",
                                                   bootstrap_timeout_ms=timeout_ms)
                consumer = self._consumer
                known = consumer.partitions_for_topic(topic) or range(s.kafka.topics.fragments.partitions)
                mine = s.pipeline.partitions
                tps = [TopicPartition(topic, p) for p in sorted(known) if mine is None or p in mine]
                ends = consumer.end_offsets(tps, timeout_ms=timeout_ms)
                starts = consumer.beginning_offsets(tps, timeout_ms=timeout_ms)
                lag = {}
                for tp in tps:
                    committed = consumer.committed(tp, timeout_ms=timeout_ms)
                    position = max(committed if committed is not None else 0, starts[tp])
                    lag[tp.partition] = max(0, ends[tp] - position)
                return lag
            except Exception:
                self._close()  # a fresh client next time
                raise

    def close(self, timeout_s: float = 10) -> None:
        """Close the client, after a scrape still using it (bounded by `timeout_s`)."""
        locked = self._lock.acquire(timeout=timeout_s)
        try:
            self._close()
        finally:
            if locked:
                self._lock.release()

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception as exc:  # noqa: BLE001 - closing a broken client
                log.debug("closing the lag consumer: %s", exc)
            self._consumer = None


class PipelineCollector(Collector):
    """The pipeline process's metrics, read at scrape time from the supervisor and its job."""

    def __init__(self, supervisor: PipelineSupervisor) -> None:
        self.supervisor = supervisor
        self.lag = ConsumerLag(supervisor.settings)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("newswire_pipeline_source_up", "1 when this scrape could read the source "
                               "(job_service: the job's state; beam_metrics: its Beam metrics; kafka: consumer "
                               "lag), else 0", labels=["source"])
        yield from self._supervisor()
        job = self.supervisor.job
        state = self._job_state(job)
        up.add_metric(["job_service"], 1 if state is not None else 0)
        yield from state or ()
        beam = self._beam(job)
        up.add_metric(["beam_metrics"], 1 if beam is not None else 0)
        yield from beam or ()
        lag = self._lag()
        up.add_metric(["kafka"], 1 if lag is not None else 0)
        yield from lag or ()
        yield up

    def _supervisor(self) -> Iterator[Metric]:
        sup = self.supervisor
        state = GaugeMetricFamily("newswire_pipeline_supervisor_state", "The supervisor's view of the job "
                                  "(1 for the current state)", labels=["state"])
        for name in SUPERVISOR_STATES:
            state.add_metric([name], 1 if sup.state == name else 0)
        yield state
        yield CounterMetricFamily("newswire_pipeline_job_restarts", "Times the supervisor resubmitted a failed "
                                  "job", value=sup.restarts)
        outages = GaugeMetricFamily("newswire_pipeline_outage", "1 while a step waits out an unavailable "
                                    "dependency (core/outage.py)", labels=["dependency"])
        for name in sorted(OUTAGES.current()):
            outages.add_metric([_slug(name)], 1)
        yield outages
        commits, failures, pending = commit_stats()
        yield CounterMetricFamily("newswire_pipeline_offset_commits", "Offset commits to the consumer group that "
                                  "landed (the background committer, pipelines/io.py OffsetCommitter)", value=commits)
        yield CounterMetricFamily("newswire_pipeline_offset_commit_failures", "Offset commit attempts that failed "
                                  "(each is kept and retried)", value=failures)
        yield GaugeMetricFamily("newswire_pipeline_offset_commit_pending", "Partitions whose flushed offsets wait "
                                "for the committer (a commit in flight counts one)", value=pending)

    # No job (stopped) or one that cannot report (a failed submission) has no live_state/live_metrics.
    def _job_state(self, job: Any) -> list[Metric] | None:
        try:
            current = job.live_state(SOURCE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the job service is away; /metrics must still answer
            log.debug("job state unavailable for /metrics: %s", exc)
            return None
        state = GaugeMetricFamily("newswire_pipeline_job_state", "The runner's state of the job (1 for the "
                                  "current one)", labels=["state"])
        for name in JOB_STATES:
            state.add_metric([name], 1 if current == name else 0)
        return [state]

    def _beam(self, job: Any) -> list[Metric] | None:
        try:
            results = job.live_metrics(SOURCE_TIMEOUT_S).query()
        except Exception as exc:  # noqa: BLE001 - as above; a runner may also not serve metrics
            log.debug("Beam metrics unavailable for /metrics: %s", exc)
            return None
        return beam_families(results)

    def _lag(self) -> list[Metric] | None:
        try:
            lag = self.lag.read()
        except Exception as exc:  # noqa: BLE001 - the broker is away; /metrics must still answer
            log.debug("consumer lag unavailable for /metrics: %s", exc)
            return None
        family = GaugeMetricFamily("newswire_pipeline_consumer_lag", "Records on a raw-topic partition that the "
                                   "pipeline's consumer group has not committed yet", labels=["topic", "partition"])
        topic = label(self.supervisor.settings.kafka.topics.fragments.name)
        for partition, value in sorted(lag.items()):
            family.add_metric([topic, str(partition)], value)
        return [family]

    def close(self) -> None:
        self.lag.close()
