"""The Newswire pipeline: argument parsing -> PipelineOptions -> pipeline graph.

    raw topic -> Parse -> Normalise -> Language -> Enrich -> Dedup -> Stories -> Alerts -> Emit +
                   |         |           |           |                                         |
                   +---------+-----------+-----------+-------------- dead letters -------------+
                   |                                                                           v
                   |       Deliver: store (events, stories, alerts), enriched/DLQ/alerts topics, offsets
                   +-> FragmentCounts (event-time windows) -> stats topic
Normalise .. Emit run as one fused DoFn (pipelines/transforms/common.ChainFn), each stage with its own
metrics and dead letters. Every element from the reader to the sinks is one reader poll's batch.
The same graph runs on Prism locally and on Flink/Dataflow deployed; only the options differ.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from connectors.toolchain import PrismServer
from core.settings import Settings, load_settings
from pipelines.io import DeliverToSinks, ReadFromKafka
from pipelines.stages.alerts.transform import EvaluateAlerts
from pipelines.stages.dedup.exact import ExactDuplicates
from pipelines.stages.dedup.transform import DeduplicateWithRedis
from pipelines.stages.stories.transform import AssignStories
from pipelines.transforms.common import chain_steps, drop_original
from pipelines.transforms.emit import EmitEvents
from pipelines.transforms.enrich import TagEntities
from pipelines.transforms.language import DetectLanguage
from pipelines.transforms.normalise import NormaliseText
from pipelines.transforms.parse import ParseFragments
from pipelines.transforms.stats import FragmentCounts


def build_pipeline(p: beam.Pipeline, settings: Settings) -> None:
    """Add the Newswire graph to `p`. The per-event stages between Parse and delivery run as one
    fused DoFn (pipelines/transforms/common.ChainFn: same metrics and dead letters per stage, a
    fraction of the framework cost); only a Beam-state stage (exact dedup) splits the chain."""
    records = p | "ReadFragments" >> ReadFromKafka(settings)
    parsed = records | "Parse" >> ParseFragments(settings)
    s = settings.pipeline
    steps: list[tuple[str, Any]] = [("Normalise", NormaliseText(s.analysis_max_chars)),
                                    ("Language", DetectLanguage(s.language))]
    if s.enrichment.entities != "off":
        steps.append(("Enrich", TagEntities(s.enrichment)))
    steps += [("DropOriginal", drop_original), ("Dedup", deduplicate(settings))]
    if s.stories.enabled:
        steps.append(("Stories", assign_stories(settings)))
    if settings.alerts.enabled:
        steps.append(("Alerts", EvaluateAlerts(settings)))
    steps.append(("Emit", EmitEvents(s.max_list_items, s.max_event_bytes)))
    dead_letters = [parsed.dead_letters]
    deliveries = chain_steps(parsed.events, steps, dead_letters)
    (
        (deliveries, *dead_letters)
        | "AllDeliveries" >> beam.Flatten()
        | "Deliver" >> DeliverToSinks(settings)
    )
    _ = parsed.events | "FragmentCounts" >> FragmentCounts(settings)


def deduplicate(settings: Settings) -> beam.PTransform:
    """The configured duplicate detection (pipeline.dedup.mode): near-duplicates with the index in
    Redis, or exact content-hash duplicates in Beam state."""
    d = settings.pipeline.dedup
    if d.mode == "exact":
        return ExactDuplicates()
    return DeduplicateWithRedis(settings.redis.url_for("dedup"), d, match_url=d.match_url, match_guid=d.match_guid,
                                namespace=settings.redis.namespace,
                                outage_max_wait_s=settings.pipeline.outage_max_wait_s)


def assign_stories(settings: Settings) -> beam.PTransform:
    """Story clustering and novelty as configured (pipeline.stories), with the state in Redis."""
    c = settings.pipeline.stories
    return AssignStories(settings.redis.url_for("stories"), c, c.novelty,
                         namespace=settings.redis.namespace, outage_max_wait_s=settings.pipeline.outage_max_wait_s)


#: PortableRunner opens the job's state and message streams with ``--job_server_timeout`` as their
#: gRPC deadline (Beam's default 300 s): a streaming job's streams then end with DEADLINE_EXCEEDED
#: after five minutes, wait_until_finish raises, and the supervisor resubmitted a healthy job every
#: five minutes until it gave up (seen with `newswire up --demo`). A streaming job runs for good:
#: ten years. The same value bounds the prepare/run calls, which answer at once from a live server.
JOB_SERVER_TIMEOUT_S = 10 * 365 * 24 * 3600


def runner_options(settings: Settings, job_endpoint: str | None = None, worker_endpoint: str | None = None
                   ) -> list[str]:
    """Beam flags for the configured runner (more can be given on the command line)."""
    runner = settings.pipeline.runner
    timeout = f"--job_server_timeout={JOB_SERVER_TIMEOUT_S}"
    if runner == "prism":
        # Prism runs as a job server we own (connectors.toolchain.PrismServer); workers run in-process, in
        # the pool PrismServer serves on 127.0.0.1 (LOOPBACK's own pool would listen on every interface).
        # Beam stages `pip freeze`'s output with each PortableRunner job, for remote workers to compare
        # with; these workers are this process, and the subprocess cost each (re)submission ~0.3 s of
        # CPU: four jobs starting on two cores came up ~0.5-1 s later (bench/RESULTS.md, start-up).
        return ["--runner=PortableRunner", f"--job_endpoint={job_endpoint}", "--environment_type=EXTERNAL",
                f"--environment_config={worker_endpoint}", "--experiments=disable_logging_submission_environment",
                timeout]
    if runner == "flink":
        p = settings.pipeline.portable
        return ["--runner=PortableRunner", f"--job_endpoint={p.job_endpoint}",
                f"--environment_type={p.environment_type}", f"--environment_config={p.environment_config}",
                f"--parallelism={p.parallelism}", timeout]
    raise ValueError(f"unknown runner '{runner}'")


class RunningPipeline:
    """A submitted streaming job and, for Prism, the runner process it runs on."""

    def __init__(self, result: beam.runners.runner.PipelineResult, prism: PrismServer | None) -> None:
        self.result = result
        self.prism = prism

    def cancel(self) -> None:
        """Cancel the job, then stop Prism."""
        try:
            self.result.cancel()
        finally:
            if self.prism is not None:
                self.prism.stop()

    def wait_until_finish(self) -> Any:
        return self.result.wait_until_finish()

    # Beam's PortableRunner PipelineResult.metrics() keeps its first answer, and neither it nor
    # ``state`` takes a timeout; a scrape (pipelines/metrics.py) asks the job service itself.
    def live_metrics(self, timeout_s: float) -> Any:
        """The job's Beam metrics now (MetricResults), asked afresh from the job service."""
        from apache_beam.portability.api import beam_job_api_pb2
        from apache_beam.runners.portability.portable_runner import PortableMetrics

        result: Any = self.result  # a PortableRunner PipelineResult
        request = beam_job_api_pb2.GetJobMetricsRequest(job_id=result._job_id)
        return PortableMetrics(result._job_service.GetJobMetrics(request, timeout=timeout_s))

    def live_state(self, timeout_s: float) -> str:
        """The runner's state of the job now (a beam_job_api JobState name, e.g. RUNNING)."""
        from apache_beam.portability.api import beam_job_api_pb2

        result: Any = self.result
        request = beam_job_api_pb2.GetJobStateRequest(job_id=result._job_id)
        state = result._job_service.GetState(request, timeout=timeout_s).state
        return str(beam_job_api_pb2.JobState.Enum.Name(state))


def run(argv: Sequence[str] | None = None, settings: Settings | None = None) -> RunningPipeline:
    """Start the streaming pipeline and return its handle (it runs until cancelled)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", help="path of newswire.yaml (default: config/newswire.yaml)")
    known, beam_args = parser.parse_known_args(argv)
    settings = settings or load_settings(known.config)
    prism = None
    endpoint = workers = None
    if settings.pipeline.runner == "prism":
        prism = PrismServer(settings.data_dir / "prism.log")
        endpoint = prism.start(worker_options=PipelineOptions(beam_args))
        workers = prism.worker_endpoint
    try:
        options = PipelineOptions([*runner_options(settings, endpoint, workers), *beam_args])
        options.view_as(StandardOptions).streaming = True
        p = beam.Pipeline(options=options)
        build_pipeline(p, settings)
        return RunningPipeline(p.run(), prism)
    except BaseException:
        if prism is not None:
            prism.stop()
        raise


def main(argv: Sequence[str] | None = None) -> None:
    """Run until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = run(argv)
    try:
        result.wait_until_finish()
    except KeyboardInterrupt:
        result.cancel()


if __name__ == "__main__":
    main()
