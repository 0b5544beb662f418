"""`newswire up --workers N`: how the raw topic's partitions and the health ports are dealt out."""

from __future__ import annotations

import argparse

import pytest

from newswire.cli import _workers_arg
from newswire.workers import default_workers, split_partitions, worker_env


def test_partitions_are_dealt_round_robin_and_cover_the_topic_once() -> None:
    assert split_partitions(4, 1) == [(0, 1, 2, 3)]
    assert split_partitions(4, 2) == [(0, 2), (1, 3)]
    assert split_partitions(5, 3) == [(0, 3), (1, 4), (2,)]
    shares = split_partitions(16, 16)
    assert sorted(p for share in shares for p in share) == list(range(16))


def test_more_jobs_than_partitions_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="add partitions to kafka.topics.fragments"):
        split_partitions(4, 5)
    with pytest.raises(ValueError, match="workers"):
        split_partitions(4, 0)
    assert default_workers(4, cores=2) == 2 and default_workers(4, cores=16) == 4  # at most one per partition
    assert default_workers(16, cores=16) == 16 and default_workers(1, cores=1) == 1


def test_each_worker_gets_its_partitions_and_its_own_health_port() -> None:
    assert worker_env(0, (0, 2), 8081) == {"NEWSWIRE__PIPELINE__PARTITIONS": "[0, 2]",
                                           "NEWSWIRE__PIPELINE__HEALTH_PORT": "8081"}
    assert worker_env(1, (1, 3), 8081)["NEWSWIRE__PIPELINE__HEALTH_PORT"] == "8091"  # clear of 8082
    assert worker_env(1, (1, 3), 0)["NEWSWIRE__PIPELINE__HEALTH_PORT"] == "0"  # a free port each
    assert "NEWSWIRE__PIPELINE__HEALTH_PORT" not in worker_env(1, (1,), None)


def test_the_cli_takes_auto_or_a_count() -> None:
    assert _workers_arg("auto") == "auto" and _workers_arg("3") == "3"
    for bad in ("0", "-1", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="--workers"):
            _workers_arg(bad)


def test_a_job_reading_some_partitions_says_which_in_its_window_counts() -> None:
    from pipelines.transforms.stats import window_count

    assert window_count("wire", 3, 0.0, 60.0, (1, 3))["partitions"] == [1, 3]  # a share: sum per window
    assert window_count("wire", 3, 0.0, 60.0)["partitions"] is None  # the whole topic
