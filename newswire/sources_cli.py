"""`newswire source rss|http|inbox`: run one source connector alone; `start_configured_sources` for `newswire up`."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from newswire.settings import Settings, load_settings

log = logging.getLogger(__name__)


def start_configured_sources(settings: Settings) -> list[Any]:
    """Start every connector enabled in ``connectors`` (rss only when feeds are listed); returns the
    started `BaseSource`s for the caller to ``stop()``. Needs the broker up (topics created)."""
    from connectors.sources.http import HttpSource
    from connectors.sources.inbox import InboxSource
    from connectors.sources.rss import RssSource

    c = settings.connectors
    wanted: list[Any] = []
    if c.inbox.enabled:
        wanted.append(InboxSource(settings))
    if c.http.enabled:
        wanted.append(HttpSource(settings))
    if c.rss.enabled and c.rss.feeds:
        wanted.append(RssSource(settings))
    started: list[Any] = []
    try:
        for source in wanted:
            source.start()
            started.append(source)
    except BaseException:
        for source in reversed(started):
            source.stop()
        raise
    return started


def describe(source: Any) -> str:
    """One line saying what a started connector does."""
    from connectors.sources.http import HttpSource
    from connectors.sources.inbox import InboxSource
    from connectors.sources.rss import RssSource

    topic = source.default_topic
    if isinstance(source, HttpSource):
        auth = "bearer token required" if source.token else "no token (loopback only)"
        return f"http ingest: POST {source.url}/fragments -> {topic} ({auth}; API at {source.url}/openapi.json)"
    if isinstance(source, InboxSource):
        return f"inbox: watching {source.inbox} -> {topic} (done/ and failed/ beside the files)"
    if isinstance(source, RssSource):
        return f"rss: polling {len(source.feeds)} feeds ({', '.join(f.name for f in source.feeds)}) -> {topic}"
    return f"{type(source).__name__} -> {topic}"


def _build(kind: str, settings: Settings, args: argparse.Namespace) -> Any:
    if kind == "rss":
        from connectors.sources.rss import RssSource

        if not settings.connectors.rss.feeds:
            raise SystemExit(f"newswire: no feeds in connectors.rss.feeds ({settings.origin}); list at least one")
        return RssSource(settings)
    if kind == "http":
        from connectors.sources.http import HttpSource

        return HttpSource(settings, host=args.host, port=args.port)
    from connectors.sources.inbox import InboxSource

    return InboxSource(settings, Path(args.path) if args.path else None)


def cmd_source(args: argparse.Namespace) -> int:
    """Run one connector until Ctrl-C (SIGINT/SIGTERM)."""
    from connectors.kafka import ensure_topics, wait_for_broker

    settings = load_settings(args.config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    wait_for_broker(settings.kafka.bootstrap_servers)
    ensure_topics(settings)
    source = _build(args.kind, settings, args)
    source.start()
    try:
        print(describe(source) + "; Ctrl-C stops it.", flush=True)
        stop.wait()
    finally:
        source.stop()
    return 0


def add_source_commands(subparsers: Any) -> None:
    """Register `newswire source rss|http|inbox` on the CLI's subparsers."""
    src = subparsers.add_parser("source", help="run one source connector alone (rss, http, inbox) until Ctrl-C")
    kinds = src.add_subparsers(dest="kind", required=True)
    kinds.add_parser("rss", help="poll the feeds in connectors.rss.feeds").set_defaults(fn=cmd_source)
    http = kinds.add_parser("http", help="serve POST /fragments (connectors.http)")
    http.add_argument("--host", default=None, help="listen address (default: connectors.http.host)")
    http.add_argument("--port", type=int, default=None, help="port (default: connectors.http.port; 0: any free)")
    http.set_defaults(fn=cmd_source)
    inbox = kinds.add_parser("inbox", help="watch the inbox folder (connectors.inbox)")
    inbox.add_argument("--path", default=None, help="folder to watch (default: connectors.inbox.path)")
    inbox.set_defaults(fn=cmd_source)
