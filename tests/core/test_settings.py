"""Config validation names the bad key; environment overrides reach nested keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import ConfigError, load_settings
from newswire.cli import main
from tests.harness import write_config


def test_default_config_is_valid() -> None:
    s = load_settings(environ={})
    assert s.kafka.topics.fragments.name == "news.fragments"
    assert s.pipeline.runner == "prism"


@pytest.mark.parametrize("key,value,message", [
    ("kafka.topics.dlq.partitions", "four", "kafka.topics.dlq.partitions: 'four' is not of type 'integer'"),
    ("pipeline.runner", "spark", "pipeline.runner: 'spark' is not one of"),
    ("kafka.bootstrap_servers", "localhost", "kafka.bootstrap_servers: 'localhost' does not match"),
    ("pipeline.enrichment.entities", "bert", "pipeline.enrichment.entities: 'bert' is not one of"),
    ("storage.url", "postgres://x", "storage.url: 'postgres://x' does not match"),
])
def test_bad_values_name_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(overrides={key: value}, environ={})
    assert message in str(err.value)
    assert "newswire.yaml" in str(err.value)


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"pipeline: Additional properties are not allowed \('runnr' was unexpected\)"):
        load_settings(environ={"NEWSWIRE__PIPELINE__RUNNR": "prism"})


def test_environment_overrides_nested_keys_with_yaml_values() -> None:
    s = load_settings(environ={"NEWSWIRE__KAFKA__BOOTSTRAP_SERVERS": "kafka:9092",
                               "NEWSWIRE__KAFKA__TOPICS__FRAGMENTS__PARTITIONS": "12",
                               "NEWSWIRE__KAFKA__EMBEDDED__ENABLED": "false"})
    assert s.kafka.bootstrap_servers == "kafka:9092"
    assert s.kafka.topics.fragments.partitions == 12
    assert s.kafka.embedded.enabled is False


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, environ={})


def test_cli_reports_config_errors_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "newswire.yaml"
    bad.write_text("data_dir: var\nkafka: {}\npipeline: {}\nstorage: {url: 'sqlite:///x.db'}\n")
    assert main(["--config", str(bad), "config"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "kafka: 'bootstrap_servers' is a required property" in err


def test_cli_config_checks_the_alert_rules_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text("version: 1\nrules:\n  - {name: nordics, match: {keyword: storm}, window: 10 minutes,"
                     " threshold: {count: 2}}\n")
    cfg = write_config(tmp_path / "newswire.yaml", {"alerts.rules_path": str(rules)})
    assert main(["--config", str(cfg), "config"]) == 2
    err = capsys.readouterr().err
    assert "rule 'nordics': 'window' must be a duration like 10m, got '10 minutes'" in err, err
    rules.write_text("version: 1\nrules:\n  - {name: nordics, match: {keyword: storm}, window: 10m, threshold: {count: 2}}\n")
    assert main(["--config", str(cfg), "config"]) == 0
    assert "1 rules (nordics), 0 webhook destinations" in capsys.readouterr().out


def test_webhook_retries_come_from_the_configuration_unless_the_command_line_says() -> None:
    from newswire.alerts_cli import retry_policy

    s = load_settings(overrides={"alerts.notify_max_attempts": 3, "alerts.notify_max_backoff_s": 5}, environ={})
    assert (retry_policy(s).max_attempts, retry_policy(s).max_backoff_s) == (3, 5)
    assert retry_policy(s, max_attempts=10).max_attempts == 10
    with pytest.raises(ConfigError, match="alerts.notify_max_attempts"):
        load_settings(overrides={"alerts.notify_max_attempts": 0}, environ={})
