"""`newswire alerts ...`: ``notify`` delivers alerts to the webhook destinations of
config/alerts.yaml (`start_configured_notifier` does it for `newswire up`); ``tail`` prints alerts
live as they reach the alerts topic; ``list`` prints the stored ones."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.settings import Settings, load_settings

if TYPE_CHECKING:
    from core.alert_rules import WebhookDestinationConfig

log = logging.getLogger(__name__)


def configured_destinations(settings: Settings, path: Path | None = None) -> tuple[WebhookDestinationConfig, ...]:
    """The webhook destinations under ``destinations:`` in the alerts file (`path`, else
    ``alerts.rules_path``), validated by the rules loader; none when the file does not exist."""
    from core.alert_rules import load_rules

    path = path or settings.alerts.rules_path
    return load_rules(path).destinations if path.exists() else ()


def start_configured_notifier(settings: Settings, path: Path | None = None) -> Any:
    """Start the notifier for every webhook destination; None when alerts are off or there are none."""
    from connectors.sinks.webhook import AlertNotifier

    destinations = configured_destinations(settings, path) if settings.alerts.enabled else ()
    if not destinations:
        return None
    return AlertNotifier(settings, destinations, retry_policy(settings)).start()


def retry_policy(settings: Settings, max_attempts: int | None = None, max_backoff_s: float | None = None) -> Any:
    """The webhook retry policy: ``alerts.notify_*`` in the configuration, unless overridden."""
    from connectors.sinks.webhook import RetryPolicy

    return RetryPolicy(max_attempts=max_attempts or settings.alerts.notify_max_attempts,
                       max_backoff_s=max_backoff_s or settings.alerts.notify_max_backoff_s)


def describe(notifier: Any) -> str:
    """One line saying where alerts go (names and types only: webhook URLs can be secrets)."""
    names = ", ".join(f"{s.destination.name} ({s.destination.type})" for s in notifier.sinks)
    metrics = f"; metrics on {notifier.metrics_server.url}" if notifier.metrics_server else ""
    return f"alerts: {notifier.settings.kafka.topics.alerts.name} -> {names}{metrics}"


def cmd_notify(args: argparse.Namespace) -> int:
    """Run the notifiers until Ctrl-C (SIGINT/SIGTERM); exit 1 if a destination's loop dies."""
    from connectors.kafka import ensure_topics, wait_for_broker
    from connectors.sinks.webhook import AlertNotifier

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
    policy = retry_policy(settings, args.max_attempts, args.max_backoff)
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


_SEVERITY = {"critical": "CRITICAL", "warning": "WARNING ", "info": "info    "}


def format_alert(alert: dict[str, Any]) -> str:
    """An alert for the terminal: when, severity, rule and summary, then counts and the evidence."""
    fired = str(alert.get("fired_at", ""))[11:19]
    counts = alert.get("counts") or {}
    window = alert.get("window") or {}
    lines = [(f"{fired} {_SEVERITY.get(alert.get('severity', ''), alert.get('severity', ''))} "
             f"{alert.get('rule')}: {alert.get('summary')}"),
             (f"    {counts.get('events', 0)} events, {counts.get('stories', 0)} stories, "
             f"{counts.get('sources', 0)} sources in {str(window.get('start', ''))[11:19]}-"
             f"{str(window.get('end', ''))[11:19]} | alert {str(alert.get('alert_id', ''))[:12]}")]
    for ev in alert.get("evidence") or []:
        title = (ev.get("title") or ev.get("event_id", ""))[:70]
        lines.append(f"    - {ev.get('source', '')}: {title}{'  ' + ev['url'] if ev.get('url') else ''}")
    return "\n".join(lines)


def cmd_tail(args: argparse.Namespace) -> int:
    """Print alerts as they arrive on the alerts topic until Ctrl-C."""
    from newswire.cli import tail

    settings = load_settings(args.config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    tail(settings, ["alerts"], args.from_beginning, args.max, args.timeout, stop)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print the stored alerts fired in the last ``--since``, newest first."""
    from datetime import UTC, datetime, timedelta

    from connectors.sinks import open_store
    from core.alert_rules import parse_duration

    settings = load_settings(args.config)
    since = datetime.now(UTC) - timedelta(seconds=parse_duration(args.since))
    store = open_store(settings.storage_url)
    try:
        alerts = store.alerts(since=since.isoformat(), rule=args.rule, limit=args.limit)
    finally:
        store.close()
    print(f"{len(alerts)} alert(s) since {since:%Y-%m-%d %H:%M:%S}Z"
          f"{' for rule ' + args.rule if args.rule else ''}" + (":" if alerts else ""))
    for alert in alerts:
        print(format_alert(alert))
    return 0


def add_alerts_commands(sub: Any) -> None:
    """Register ``newswire alerts ...`` on the CLI's subcommands."""

    alerts = sub.add_parser("alerts", help="alert delivery")
    commands = alerts.add_subparsers(dest="alerts_command", required=True)
    notify = commands.add_parser("notify", help="POST alerts to the webhook destinations in config/alerts.yaml")
    notify.add_argument("--alerts", help="alerts file (default: alerts.rules_path in the configuration)")
    notify.add_argument("--destination", nargs="*", default=[], metavar="NAME", help="only these destinations")
    notify.add_argument("--max-attempts", type=int,
                        help="attempts per alert before it goes to the dead-letter topic "
                             "(default: alerts.notify_max_attempts)")
    notify.add_argument("--max-backoff", type=float, metavar="SECONDS",
                        help="longest wait between attempts (default: alerts.notify_max_backoff_s)")
    notify.set_defaults(fn=cmd_notify)
    tail = commands.add_parser("tail", help="print alerts live as they reach the alerts topic")
    tail.add_argument("--from-beginning", action="store_true", help="start at the topic's oldest alert")
    tail.add_argument("--max", type=int, help="stop after this many alerts")
    tail.add_argument("--timeout", type=float, help="stop after this many seconds without an alert")
    tail.set_defaults(fn=cmd_tail)
    listing = commands.add_parser("list", help="stored alerts, newest first")
    listing.add_argument("--since", default="1h", help="how far back: a duration like 90s, 10m, 1h, 2d (default 1h)")
    listing.add_argument("--rule", help="only this rule's alerts")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(fn=cmd_list)
