"""The metric names agree everywhere: what the code exports, docs/deploy.md#metrics, the Grafana
dashboard, and the Prometheus scrape targets of docker-compose."""

from __future__ import annotations

import re

import orjson
import yaml

from core.settings import load_settings
from tests.paths import REPO

EXPORTERS = ("pipelines/metrics.py", "connectors/sources/http.py", "connectors/sources/metrics.py",
             "connectors/sinks/webhook.py", "newswire/console/metrics.py")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def family(name: str) -> str:
    """A sample name's family: newswire_http_requests_total -> newswire_http_requests."""
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def documented() -> set[str]:
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    names = set()
    for row in re.findall(r"^\| `(newswire_[a-z_]+)`(?:, `\.\.\.(_[a-z_]+)`)?", section, re.MULTILINE):
        names.add(family(row[0]))
        if row[1]:  # "`..._max_seconds`": the same stem with another ending
            names.add(row[0].rsplit("_min_", 1)[0] + "_" + row[1].lstrip("_"))
    return names


def test_every_documented_metric_is_exported_and_every_exported_one_documented() -> None:
    source = "\n".join((REPO / path).read_text(encoding="utf-8") for path in EXPORTERS)
    exported = set(re.findall(r'"(newswire_[a-z_]+)"', source))
    assert len(exported) >= 20
    assert documented() == exported


def test_the_dashboard_uses_documented_metrics_only() -> None:
    dashboard = orjson.loads((REPO / "docs" / "grafana-dashboard.json").read_bytes())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {family(n) for e in exprs for n in re.findall(r"newswire_[a-z_]+", e)}
    assert used and used <= documented(), used - documented()
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_prometheus_scrapes_each_compose_service_on_its_configured_port() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    scrape = yaml.safe_load((REPO / "config" / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in scrape["scrape_configs"]}
    s = load_settings(environ={})
    assert targets == {"newswire-pipeline": f"pipeline:{s.pipeline.health_port}",
                       "newswire-http-ingest": f"http-ingest:{s.connectors.http.port}",
                       "newswire-inbox": f"inbox:{s.connectors.inbox.health_port}",
                       "newswire-rss": f"rss:{s.connectors.rss.health_port}",
                       "newswire-notifier": f"notifier:{s.alerts.notify_metrics_port}",
                       "newswire-console": f"console:{s.console.port}"}
    services = compose["services"]
    assert services["pipeline"]["environment"]["NEWSWIRE__PIPELINE__HEALTH_HOST"] == "0.0.0.0"
    assert services["notifier"]["environment"]["NEWSWIRE__ALERTS__NOTIFY_METRICS_HOST"] == "0.0.0.0"
    assert services["inbox"]["environment"]["NEWSWIRE__CONNECTORS__INBOX__HEALTH_HOST"] == "0.0.0.0"
    assert services["rss"]["environment"]["NEWSWIRE__CONNECTORS__RSS__HEALTH_HOST"] == "0.0.0.0"
    assert "./config/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
