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
    ("pipeline.fetch_min_bytes", 0, "pipeline.fetch_min_bytes: 0 is less than the minimum of 1"),
    ("pipeline.fetch_max_wait_ms", 60000, "pipeline.fetch_max_wait_ms: 60000 is greater than the maximum of 10000"),
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
    bad.write_text("kafka: {bootstrap_servers: localhost}\npipeline: {}\n")
    assert main(["--config", str(bad), "config"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and f"{bad}: kafka.bootstrap_servers: 'localhost' does not match" in err


def test_a_deployment_file_names_only_what_it_changes(tmp_path: Path) -> None:
    partial = tmp_path / "deploy.yaml"
    partial.write_text("kafka:\n  bootstrap_servers: kafka:9092\n  topics: {dlq: {name: ops.dlq, partitions: 3}}\n"
                       "pipeline:\n  health_port: null\n  dedup: {mode: exact}\nconnectors:\n  rss:\n"
                       "    feeds: [{name: bbc, url: 'https://example.org/rss'}]\nalerts:\n")
    s = load_settings(partial, environ={"NEWSWIRE__PIPELINE__POLL_MAX_RECORDS": "7"})
    assert s.origin == str(partial) and s.data_dir == Path("var")  # unnamed: the shipped defaults
    assert s.kafka.bootstrap_servers == "kafka:9092" and s.kafka.consumer_group == "newswire-pipeline"
    assert s.kafka.topics.dlq.name == "ops.dlq" and s.kafka.topics.fragments.name == "news.fragments"
    assert s.pipeline.health_port is None and s.pipeline.dedup.mode == "exact"
    assert s.pipeline.dedup.ttl_s == 259200 and s.pipeline.poll_max_records == 7  # default, environment
    assert [f.name for f in s.connectors.rss.feeds] == ["bbc"] and s.connectors.http.port == 8080
    # the shipped rules stay the default (beside the shipped config, not beside this file)
    assert s.alerts.rules_path.resolve() == (Path(__file__).parents[2] / "config" / "alerts.yaml").resolve()
    partial.write_text("alerts: {rules_path: mine.yaml}\n")
    assert load_settings(partial, environ={}).alerts.rules_path == tmp_path / "mine.yaml"


@pytest.mark.parametrize("text,message", [
    ("pipeline: {health_prot: 1}\n", r"pipeline: Additional properties are not allowed \('health_prot' was unexpected\)"),
    ("kafka: {topics: {dlq: {partitions: 0}}}\n", r"kafka.topics.dlq.partitions: 0 is less than the minimum"),
    ("storage: {url: 'mysql://x'}\n", r"storage.url: 'mysql://x' does not match"),
])
def test_a_partial_file_still_names_the_bad_key(tmp_path: Path, text: str, message: str) -> None:
    partial = tmp_path / "deploy.yaml"
    partial.write_text(text)
    with pytest.raises(ConfigError, match=f"deploy.yaml: {message}"):
        load_settings(partial, environ={})


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


def test_two_endpoints_on_one_port_are_refused_naming_both_keys() -> None:
    with pytest.raises(ConfigError, match="alerts.notify_metrics_port: 8081 is also pipeline.health_port"):
        load_settings(overrides={"alerts.notify_metrics_port": 8081}, environ={})
    with pytest.raises(ConfigError, match="pipeline.health_port: 8080 is also connectors.http.port"):
        load_settings(overrides={"pipeline.health_port": 8080}, environ={})
    with pytest.raises(ConfigError, match="console.port: 8081 is also pipeline.health_port"):
        load_settings(overrides={"console.port": 8081}, environ={})
    assert load_settings(overrides={"console.port": 8081, "console.enabled": False}, environ={})
    # no clash when one of them is off, or when each picks a free port
    assert load_settings(overrides={"pipeline.health_port": 8080, "connectors.http.enabled": False}, environ={})
    assert load_settings(overrides={"pipeline.health_port": 0, "alerts.notify_metrics_port": 0}, environ={})
    with pytest.raises(ConfigError, match="alerts.notify_metrics_port: 70000 is greater than the maximum"):
        load_settings(overrides={"alerts.notify_metrics_port": 70000}, environ={})
    # the polling sources' /metrics, /healthz, /readyz (rss only counts when it has feeds to poll)
    with pytest.raises(ConfigError, match="console.port: 8090 is also connectors.inbox.health_port"):
        load_settings(overrides={"connectors.inbox.health_port": 8090}, environ={})
    feeds = [{"name": "x", "url": "https://example.org/feed"}]
    with pytest.raises(ConfigError, match="connectors.inbox.health_port: 8084 is also connectors.rss.health_port"):
        load_settings(overrides={"connectors.rss.health_port": 8084, "connectors.rss.feeds": feeds}, environ={})
    assert load_settings(overrides={"connectors.rss.health_port": 8084}, environ={})  # no feeds: rss does not run
    with pytest.raises(ConfigError, match="connectors.rss.unready_after_s: 0 is less than or equal to the minimum"):
        load_settings(overrides={"connectors.rss.unready_after_s": 0}, environ={})
    with pytest.raises(ConfigError, match=r"connectors.inbox: Additional properties .*'health_prot' was unexpected"):
        load_settings(overrides={"connectors.inbox.health_prot": 1}, environ={})
