"""The runner flags keep a streaming job's state and message streams open for good."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions

from core.settings import load_settings
from pipelines.run import runner_options


def test_the_job_streams_outlive_beams_five_minute_default() -> None:
    for runner in ("prism", "flink"):
        settings = load_settings(overrides={"pipeline.runner": runner}, environ={})
        flags = runner_options(settings, "localhost:1", "127.0.0.1:2")
        timeout = PipelineOptions(flags).view_as(PortableOptions).job_server_timeout
        assert timeout >= 365 * 24 * 3600, (runner, timeout)  # Beam's 300 s ended every job after 5 min
