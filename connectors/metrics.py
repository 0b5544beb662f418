"""Prometheus exposition shared by the long-lived processes: label hygiene and a small /metrics server.

Each process keeps its own ``CollectorRegistry`` (never the global one), so several sources,
notifiers or pipelines in one process (the tests, `newswire up`) do not collide.
Metric names and labels: docs/deploy.md#metrics.
"""

from __future__ import annotations

import logging
import re

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, start_http_server

log = logging.getLogger(__name__)

#: What a label value may look like. Values come from code and configuration (stage names, reason
#: codes, destination names), never from records; anything else is reported as "other", so a
#: label can neither carry untrusted text nor explode the number of series.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def label(value: object) -> str:
    """`value` as a label value, or ``other`` when it is not a short code-like name."""
    text = str(value)
    return text if _LABEL_VALUE.match(text) else "other"


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in Prometheus' text format, with its content type (what GET /metrics answers)."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsServer:
    """``GET /metrics`` of one registry on ``host:port`` (prometheus_client's threaded WSGI server);
    port 0 picks a free one (read ``port`` after construction)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int, what: str) -> None:
        self._server, self._thread = start_http_server(port, host, registry)
        self.host = host
        self.port = int(self._server.server_address[1])
        log.info("%s metrics on http://%s:%d/metrics", what, host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
