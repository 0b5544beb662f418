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


def test_a_prism_job_is_submitted_without_running_pip_freeze() -> None:
    """Beam stages the output of ``pip freeze`` with every PortableRunner job unless told not to: a
    Python subprocess per submission (~0.3 s of CPU; four jobs starting on two cores waited ~1 s for
    theirs), for a runner whose workers run in the submitting process."""
    from apache_beam.runners.portability.stager import SUBMISSION_ENV_DEPENDENCIES_FILE
    from apache_beam.transforms.environments import python_sdk_dependencies

    settings = load_settings(overrides={"pipeline.runner": "prism"}, environ={})
    artifacts = python_sdk_dependencies(PipelineOptions(runner_options(settings, "localhost:1", "127.0.0.1:2")))
    staged = [a.role_payload for a in artifacts]
    assert not any(SUBMISSION_ENV_DEPENDENCIES_FILE.encode() in payload for payload in staged), staged
    # what the test guards against: the same call with Beam's default stages the list
    default = python_sdk_dependencies(PipelineOptions(["--runner=PortableRunner"]))
    assert any(SUBMISSION_ENV_DEPENDENCIES_FILE.encode() in a.role_payload for a in default)
