"""Prometheus exposition shared by the long-lived processes: label hygiene and one small server for
``/metrics``, ``/healthz`` and ``/readyz``.

Each process keeps its own ``CollectorRegistry`` (never the global one), so several sources,
notifiers or pipelines in one process (the tests, `newswire up`) do not collide.
Metric names and labels: docs/deploy.md#metrics.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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


#: What a health check answers: (healthy, details as JSON-able data); 503 when not healthy.
Check = Callable[[], tuple[bool, dict[str, Any]]]


def _always_alive() -> tuple[bool, dict[str, Any]]:
    return True, {"alive": True}


def _always_ready() -> tuple[bool, dict[str, Any]]:
    return True, {"ready": True}


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """``GET /metrics`` of one registry, ``/healthz`` (`alive`) and ``/readyz`` (`ready`) as JSON, on
    ``host:port`` (a small threaded stdlib HTTP server, every long-lived process's one). A check
    answers 200 when it holds, else 503 with its details; without one the process is alive and
    ready while it answers. Port 0 picks a free one (read ``port`` after construction)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int, what: str,
                 alive: Check | None = None, ready: Check | None = None) -> None:
        checks = {"/healthz": alive or _always_alive, "/readyz": ready or _always_ready}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, *exposition(registry))
                elif path in checks:
                    try:
                        ok, details = checks[path]()
                    except Exception as exc:  # noqa: BLE001 - a failing check means "no", never a dead server
                        ok, details = False, {"error": f"{type(exc).__name__}: {exc}"[:500]}
                    self._answer(200 if ok else 503, orjson.dumps(details))
                else:
                    self._answer(404, orjson.dumps({"error": "not_found", "message": "GET /healthz, /readyz or /metrics"}))

            def _answer(self, status: int, data: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer  # "::1", "::"
        self._server = server_class((host, port), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"{what}-metrics", daemon=True)
        self._thread.start()
        log.info("%s metrics on http://%s:%d/metrics (and /healthz, /readyz)", what, host, self.port)

    @property
    def url(self) -> str:
        """Where GET /metrics answers (/healthz and /readyz beside it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
