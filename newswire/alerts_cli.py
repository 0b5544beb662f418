"""`newswire alerts notify`: deliver alerts to the webhook destinations of config/alerts.yaml;
`start_configured_notifier` for `newswire up`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newswire.settings import Settings, load_settings

if TYPE_CHECKING:
    from pipelines.text.alerts import WebhookDestinationConfig

log = logging.getLogger(__name__)


def configured_destinations(settings: Settings, path: Path | None = None) -> tuple[WebhookDestinationConfig, ...]:
    """The webhook destinations under ``destinations:`` in the alerts file (`path`, else
    ``alerts.rules_path``), validated by the rules loader; none when the file does not exist."""
    from pipelines.text.alerts import load_rules

    path = path or settings.alerts.rules_path
    return load_rules(path).destinations if path.exists() else ()


def start_configured_notifier(settings: Settings, path: Path | None = None) -> Any:
    """Start the notifier for every webhook destination; None when alerts are off or there are none."""
    from connectors.sinks.webhook import AlertNotifier

    destinations = configured_destinations(settings, path) if settings.alerts.enabled else ()
    if not destinations:
        return None
    return AlertNotifier(settings, destinations).start()


def describe(notifier: Any) -> str:
    """One line saying where alerts go (names and types only: webhook URLs can be secrets)."""
    names = ", ".join(f"{s.destination.name} ({s.destination.type})" for s in notifier.sinks)
    return f"alerts: {notifier.settings.kafka.topics.alerts.name} -> {names}"


def cmd_notify(args: argparse.Namespace) -> int:
    """Run the notifiers until Ctrl-C (SIGINT/SIGTERM); exit 1 if a destination's loop dies."""
    from connectors.kafka import ensure_topics, wait_for_broker
    from connectors.sinks.webhook import AlertNotifier, RetryPolicy

    settings = load_settings(args.config)
    path = Path(args.alerts) if args.alerts else None
    destinations = [d for d in configured_destinations(settings, path)
                    if not args.destination or d.name in args.destination]
    if not destinations:
        print(f"newswire: no webhook destinations in {path or settings.alerts.rules_path}"
              f"{' named ' + ', '.join(args.destination) if args.destination else ''}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    wait_for_broker(settings.kafka.bootstrap_servers)
    ensure_topics(settings)
    policy = RetryPolicy(max_attempts=args.max_attempts, max_backoff_s=args.max_backoff)
    notifier = AlertNotifier(settings, destinations, policy).start()
    print(f"{describe(notifier)}; Ctrl-C stops.", flush=True)
    try:
        while not stop.wait(1):
            if notifier.failed:
                print(f"newswire: notifier for {', '.join(notifier.failed)} stopped; see the log", file=sys.stderr)
                return 1
    finally:
        notifier.stop()
    return 0


def add_alerts_commands(sub: Any) -> None:
    """Register ``newswire alerts ...`` on the CLI's subcommands."""
    from connectors.sinks.webhook import RetryPolicy

    alerts = sub.add_parser("alerts", help="alert delivery")
    commands = alerts.add_subparsers(dest="alerts_command", required=True)
    notify = commands.add_parser("notify", help="POST alerts to the webhook destinations in config/alerts.yaml")
    notify.add_argument("--alerts", help="alerts file (default: alerts.rules_path in the configuration)")
    notify.add_argument("--destination", nargs="*", default=[], metavar="NAME", help="only these destinations")
    notify.add_argument("--max-attempts", type=int, default=RetryPolicy.max_attempts,
                        help="attempts per alert before it goes to the dead-letter topic (default: %(default)s)")
    notify.add_argument("--max-backoff", type=float, default=RetryPolicy.max_backoff_s, metavar="SECONDS",
                        help="longest wait between attempts (default: %(default)s)")
    notify.set_defaults(fn=cmd_notify)
