"""The console's own /metrics (Prometheus) and how requests are counted: by page and status, never
by anything a visitor typed (paths, ids and queries stay out of the labels; docs/deploy.md#metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: First path segments that name a page; any other path counts as "other".
PAGES = frozenset({"", "login", "logout", "alerts", "stories", "events", "dead-letters", "health", "static", "map",
                   "metrics", "healthz", "readyz"})


def page_of(path: str) -> str:
    """The page a request path belongs to: its first segment if known, else ``other``."""
    first = path.lstrip("/").split("/", 1)[0]
    return (first or "home") if first in PAGES else "other"


class ConsoleMetrics:
    """The console's series, in a registry of its own (one per Console)."""

    def __init__(self, live_streams: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("newswire_console_requests", "Console HTTP requests by page and status",
                                ["page", "status"], registry=self.registry)
        self.logins = Counter("newswire_console_logins", "Console login attempts by outcome (ok, invalid, limited)",
                              ["outcome"], registry=self.registry)
        self.actions = Counter("newswire_console_actions", "Operator actions done (ack, snooze, resubmit)",
                               ["action"], registry=self.registry)
        streams = Gauge("newswire_console_live_streams", "Open live alert streams (SSE)", registry=self.registry)
        streams.set_function(lambda: float(live_streams()))

    def counted(self, app: ASGIApp) -> ASGIApp:
        """`app` with every HTTP response counted by page and status."""
        async def counting(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            page = page_of(scope.get("path", ""))

            async def send_counted(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self.requests.labels(page, str(message["status"])).inc()
                await send(message)
            await app(scope, receive, send_counted)
        return counting
