"""The Newswire pipeline: argument parsing -> PipelineOptions -> pipeline graph.

    raw topic -> Parse -> Normalise -> Language -> Enrich -> Dedup -> Emit ---------+
                   |         |           |           |                  |            +--> Deliver: SQLite,
                   +---------+-----------+-----------+-- dead letters --+------------+    enriched + DLQ
                   +-> FragmentCounts (event-time windows) -> stats topic                 topics, offsets
The same graph runs on Prism locally and on Flink/Dataflow deployed; only the options differ.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from newswire.settings import Settings, load_settings
from pipelines.io import DeliverToSinks, ReadFromKafka
from pipelines.transforms.common import drop_original
from pipelines.transforms.dedup import ExactDuplicates
from pipelines.transforms.emit import EmitEvents
from pipelines.transforms.enrich import TagEntities
from pipelines.transforms.language import DetectLanguage
from pipelines.transforms.normalise import NormaliseText
from pipelines.transforms.parse import ParseFragments
from pipelines.transforms.stats import FragmentCounts


def build_pipeline(p: beam.Pipeline, settings: Settings) -> None:
    """Add the Newswire graph to `p`."""
    records = p | "ReadFragments" >> ReadFromKafka(settings)
    parsed = records | "Parse" >> ParseFragments(settings)
    events, bad_text = parsed.events | "Normalise" >> NormaliseText()
    events, bad_language = events | "Language" >> DetectLanguage(settings.pipeline.language)
    dead_letters = [parsed.dead_letters, bad_text, bad_language]
    if settings.pipeline.enrichment.entities != "off":
        events, bad_enrich = events | "Enrich" >> TagEntities(settings.pipeline.enrichment)
        dead_letters.append(bad_enrich)
    events = events | "DropOriginal" >> beam.Map(drop_original)
    events = events | "Dedup" >> ExactDuplicates()
    deliveries, bad_emit = events | "Emit" >> EmitEvents()
    (
        (deliveries, *dead_letters, bad_emit)
        | "AllDeliveries" >> beam.Flatten()
        | "Deliver" >> DeliverToSinks(settings)
    )
    _ = parsed.events | "FragmentCounts" >> FragmentCounts(settings)


def runner_options(settings: Settings) -> list[str]:
    """Beam flags for the configured runner (more can be given on the command line)."""
    runner = settings.pipeline.runner
    if runner == "prism":
        from newswire.toolchain import prism_binary

        return ["--runner=PrismRunner", f"--prism_location={prism_binary()}", "--environment_type=LOOPBACK",
                "--prism_log_level=warn"]
    if runner == "flink":
        p = settings.pipeline.portable
        return ["--runner=PortableRunner", f"--job_endpoint={p.job_endpoint}",
                f"--environment_type={p.environment_type}", f"--environment_config={p.environment_config}",
                f"--parallelism={p.parallelism}"]
    raise ValueError(f"unknown runner '{runner}'")


def run(argv: Sequence[str] | None = None, settings: Settings | None = None) -> beam.runners.runner.PipelineResult:
    """Start the streaming pipeline and return its result handle (it runs until cancelled)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="path of newswire.yaml (default: config/newswire.yaml)")
    known, beam_args = parser.parse_known_args(argv)
    settings = settings or load_settings(known.config)
    options = PipelineOptions([*runner_options(settings), *beam_args])
    options.view_as(StandardOptions).streaming = True
    p = beam.Pipeline(options=options)
    build_pipeline(p, settings)
    return p.run()


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
