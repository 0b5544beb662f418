"""`newswire source rss|http|inbox`: run one source connector alone; `start_configured_sources` for `newswire up`."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from connectors.kafka import ensure_topics, wait_for_broker
from connectors.sources import SOURCES
from connectors.sources.base import BaseSource
from core.settings import Settings, load_settings

log = logging.getLogger(__name__)


def start_configured_sources(settings: Settings) -> list[BaseSource]:
    """Start every registered source that is enabled in ``connectors`` (rss only when feeds are
    listed); returns the started sources for the caller to ``stop()``. Needs the broker up."""
    wanted = [cls(settings) for cls in SOURCES.values() if cls.enabled(settings)]
    started: list[BaseSource] = []
    try:
        for source in wanted:
            source.start()
            started.append(source)
    except BaseException:
        for source in reversed(started):
            source.stop()
        raise
    return started


def describe(source: BaseSource) -> str:
    """One line saying what a started connector does."""
    return source.describe()


def cmd_source(args: argparse.Namespace) -> int:
    """Run one connector until Ctrl-C (SIGINT/SIGTERM)."""

    settings = load_settings(args.config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    wait_for_broker(settings.kafka.bootstrap_servers)
    ensure_topics(settings)
    source = SOURCES[args.kind].from_args(settings, args)
    source.start()
    try:
        print(describe(source) + "; Ctrl-C stops it.", flush=True)
        stop.wait()
    finally:
        source.stop()
    return 0


def add_source_commands(subparsers: Any) -> None:
    """Register `newswire source NAME` for every source in the registry."""
    src = subparsers.add_parser("source", help=f"run one source connector alone ({', '.join(SOURCES)}) until Ctrl-C")
    kinds = src.add_subparsers(dest="kind", required=True)
    for name, cls in SOURCES.items():
        parser = kinds.add_parser(name, help=cls.summary)
        cls.add_arguments(parser)
        parser.set_defaults(fn=cmd_source)
