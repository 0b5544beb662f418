"""`newswire`: the one command-line entry point.

    newswire setup                 fetch the pinned Kafka jars and build Prism (once per machine)
    newswire up [--demo]           embedded stack: Kafka broker + streaming pipeline (+ demo ingest and live view)
    newswire broker                only the embedded services (Kafka, and Redis for dedup), in the foreground
    newswire pipeline              only the streaming pipeline (against kafka.bootstrap_servers)
    newswire ingest PATH...        push text/JSON/JSONL files into the raw topic
    newswire tail TOPIC            print a topic's records (enriched, dlq, stats, fragments, alerts or a name)
    newswire alerts notify         POST alerts to the webhook destinations in config/alerts.yaml
    newswire alerts tail           print alerts live as they reach the alerts topic
    newswire alerts list [--since 1h]   stored alerts, newest first
    newswire stories top [--since 24h]  the biggest stories (most sources) in the store
    newswire stories show ID       one story and its events (an id merged into another: the survivor)
    newswire console               the web console alone (alerts live, stories, dead letters, health)
    newswire replay                re-run stored events (or --file archives) through the pipeline, no new rows
    newswire events                latest events in the SQLite store
    newswire config                validate the configuration and print it
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import orjson

from core.settings import ConfigError, Settings, load_settings
from newswire.alerts_cli import add_alerts_commands
from newswire.replay import add_replay_command
from newswire.sources_cli import add_source_commands

DEMO_FRAGMENTS = Path(__file__).resolve().parents[1] / "docs" / "examples" / "demo-fragments.jsonl"


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _topic_name(settings: Settings, name: str) -> str:
    topics = settings.kafka.topics
    return getattr(topics, name).name if hasattr(topics, name) and name != "all" else name


def format_record(topic_role: str, value: bytes) -> str:
    """One readable line per record for the terminal."""
    try:
        doc: dict[str, Any] = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value[:200].decode("utf-8", "replace")
    if doc.get("schema", "").startswith("enriched-event"):
        lang = doc["language"]["code"]
        dup = f" duplicate_of={doc['duplicate_of'][:8]}" if doc.get("duplicate_of") else ""
        dup += f" update_of={doc['update_of'][:8]}" if doc.get("update_of") else ""
        marker = f" part={doc['marker']['part']}/{doc['marker']['total']}" if doc.get("marker") else ""
        head = (doc.get("title") or doc["text"]).replace("\n", " ")[:70]
        story = ""
        if doc.get("story_id"):
            st, novelty = doc["story"], doc.get("novelty") or {}
            story = (f" {doc['story_id'][6:14]}{'*' if st['is_new'] else ''} ({st['event_count']} ev/"
                     f"{st['source_count']} src, new {novelty.get('ratio', 0):.0%})")
        return f"[enriched] {doc['event_id'][:8]} {lang:<3} {doc['source']:<16}{marker}{dup}{story} | {head}"
    if doc.get("schema", "").startswith("alert"):
        from newswire.alerts_cli import format_alert

        return "[alert] " + format_alert(doc)
    if doc.get("schema", "").startswith("dead-letter"):
        return f"[dlq] stage={doc['stage']} reason={doc['reason']}: {doc['error'][:160]}"
    if doc.get("schema", "").startswith("fragment-count"):
        return f"[stats] {doc['window_start']}..{doc['window_end']} {doc['source']}: {doc['fragments']} fragments"
    return f"[{topic_role}] {orjson.dumps(doc).decode()[:200]}"


def tail(settings: Settings, topics: list[str], from_beginning: bool, max_records: int | None,
         timeout_s: float | None, stop: threading.Event | None = None, out: Any = None) -> int:
    """Print records from topics until stopped, max_records seen, or timeout_s without a record."""
    from connectors.kafka import make_consumer

    out = out or sys.stdout
    names = {_topic_name(settings, t): t for t in topics}
    consumer = make_consumer(settings, group_id=None, auto_offset_reset="earliest" if from_beginning else "latest")
    consumer.subscribe(list(names))
    seen = 0
    last = time.monotonic()
    try:
        while not (stop and stop.is_set()):
            batch = consumer.poll(timeout_ms=300)
            for tp, records in batch.items():
                for rec in records:
                    print(format_record(names.get(tp.topic, tp.topic), rec.value), file=out, flush=True)
                    seen += 1
                    last = time.monotonic()
                    if max_records and seen >= max_records:
                        return seen
            if timeout_s is not None and time.monotonic() - last > timeout_s:
                return seen
    finally:
        consumer.close()
    return seen


def _cancel(result: Any, settings: Settings) -> None:
    """Stop a supervised streaming job quietly. Cancelling aborts in-flight bundles (Beam logs each as an
    error, and the in-process workers' Kafka clients log the broker going away); on Ctrl-C the
    terminal has already stopped Prism, so the cancel call itself may find no job service."""
    for name in ("PrismRunner", "apache_beam", "kafka"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # The in-process SDK worker's threads die with the job and print their (expected) tracebacks
    # straight to stderr; keep them in a file instead of the operator's terminal.
    threading.excepthook = lambda args: None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    sys.stderr = open(settings.data_dir / "shutdown.log", "a")  # noqa: SIM115 - kept open until exit
    try:
        result.stop()
    except Exception as exc:  # noqa: BLE001 - the job is gone either way; nothing left to clean up
        logging.getLogger(__name__).debug("cancel: %s", exc)


def cmd_setup(args: argparse.Namespace) -> int:
    from connectors.toolchain import install_all

    s = _settings(args)
    for name, path in install_all(s.kafka.embedded.version).items():
        print(f"{name}: {path}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    s = _settings(args)
    print(f"{s.origin}: valid")
    print(f"  kafka: {s.kafka.bootstrap_servers} (embedded: {s.kafka.embedded.enabled}), "
          f"topics: {', '.join(f'{t.name}[{t.partitions}]' for t in s.kafka.topics.all())}")
    print(f"  pipeline runner: {s.pipeline.runner}; storage: {s.storage_url}; state: {s.redis.url}")
    p = s.pipeline
    print(f"  dedup: {p.dedup.mode}; stories: {'on' if p.stories.enabled else 'off'}; "
          f"entities: {p.enrichment.entities}")
    if s.alerts.enabled:
        from core.alert_rules import load_rules  # validates the rules file like the pipeline does

        rules = load_rules(s.alerts.rules_path)
        print(f"  alerts: {s.alerts.rules_path}: valid, {len(rules.rules)} rules "
              f"({', '.join(r.name for r in rules.rules)}), {len(rules.destinations)} webhook destinations")
    else:
        print("  alerts: off")
    return 0


def _wait_for_signal() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_broker(args: argparse.Namespace) -> int:
    from connectors.kafka import KafkaBroker

    s = _settings(args)
    stop = _wait_for_signal()
    redis = start_embedded_redis(s)
    postgres = start_embedded_postgres(s)
    try:
        with KafkaBroker(s) as broker:
            print(f"Kafka {s.kafka.embedded.version} ready at {broker.bootstrap_servers} "
                  f"(data in {broker.dir}); Ctrl-C stops it.", flush=True)
            while not stop.wait(1):
                if broker.proc is None or broker.proc.poll() is not None:
                    print("broker exited; see its log in", broker.dir / "server.log", file=sys.stderr)
                    return 1
    finally:
        stop_all(redis)
        if postgres:
            postgres.stop()
    return 0


def _warm_up_in_process(s: Settings) -> None:
    """On Prism the stage work runs in this process: load its models while the rest starts
    (pipelines/warmup.py). On Flink the workers are elsewhere and load their own."""
    if s.pipeline.runner == "prism":
        from pipelines.warmup import start_warm_up

        start_warm_up(s)


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Run the pipeline under its supervisor until stopped (0) or until it gives up on the job (1)."""
    from connectors.kafka import ensure_topics, wait_for_broker
    from pipelines.supervisor import supervise

    s = _settings(args)
    stop = _wait_for_signal()
    _warm_up_in_process(s)
    if not wait_for_broker(s.kafka.bootstrap_servers, timeout_s=120, stop=stop):  # (beyond the broker's own start limit)
        return 0  # told to stop before the job was submitted
    ensure_topics(s)  # idempotent: creates missing topics, grows partition counts
    supervisor = supervise(s, args.beam_args)
    health = f"; health on http://{s.pipeline.health_host}:{s.pipeline.health_port}/readyz (and /metrics)" \
        if s.pipeline.health_port is not None else ""
    print(f"pipeline running on {s.pipeline.runner}{health}; Ctrl-C stops it.", flush=True)
    code = supervisor.wait(stop)
    if code:
        print(f"newswire pipeline: giving up: the job failed {len(supervisor.failures)} times within "
              f"{s.pipeline.job_restart_window_s:g}s; last error: {supervisor.last_error}", file=sys.stderr)
    _cancel(supervisor, s)
    return code


def start_embedded_redis(settings: Settings) -> list[Any]:
    """Start the embedded redis-servers when pipeline state needs them (near-duplicate index,
    stories) and config says so: one on ``redis.url``'s port, and one more on the port of each
    ``redis.stage_urls`` server a running stage uses. ``maxmemory: auto`` is shared out among them
    (half of this machine's memory in all). Returns them, to be stopped in reverse order."""
    stages = settings.state_stages
    if not stages or not settings.redis.embedded:
        return []
    from urllib.parse import urlsplit

    from connectors.process import is_loopback
    from connectors.redis import RedisServer, share_maxmemory
    from core.settings import url_port

    r = settings.redis
    # One server per port on this machine (localhost and 127.0.0.1 are one): redis.url's first, and
    # it wins its port; a server elsewhere is the operator's to run.
    by_port: dict[int, tuple[str, list[str]]] = {}
    for url, stages_there in r.server_stages(stages).items():
        if url == r.url or is_loopback(urlsplit(url).hostname or ""):
            by_port.setdefault(url_port(url), (url, []))[1].extend(stages_there)
    maxmemory = share_maxmemory(r.maxmemory, len(by_port))
    servers: list[Any] = []
    try:
        for port, (url, own) in by_port.items():
            print(f"starting Redis on port {port} (pipeline state: {', '.join(own) or 'status'}) ...", flush=True)
            servers.append(RedisServer(settings.data_dir / ("redis" if port == r.port else f"redis-{port}"),
                                       port=port, password=urlsplit(url).password, maxmemory=maxmemory).start())
    except BaseException:
        stop_all(servers)
        raise
    return servers


def stop_all(servers: Sequence[Any]) -> None:
    """Stop embedded servers, the last started first."""
    for server in reversed(servers):
        server.stop()


def start_embedded_postgres(settings: Settings) -> Any:
    """Start the embedded PostgreSQL when storage.url points at one on loopback and config says so."""
    if not settings.storage.embedded_postgres:
        return None
    from connectors.postgres import PostgresServer

    print(f"starting PostgreSQL at {settings.storage_url} (store) ...", flush=True)
    return PostgresServer(settings.data_dir / "postgres", port=settings.storage.postgres_port,
                          database=settings.storage.postgres_database, user=settings.storage.postgres_user).start()


def _workers_arg(value: str) -> str:
    if value == "auto" or (value.isdigit() and int(value) >= 1):
        return value
    raise argparse.ArgumentTypeError(f"--workers: 'auto' or a whole number >= 1, got {value!r}")


def cmd_up(args: argparse.Namespace) -> int:
    from connectors.kafka import KafkaBroker, ensure_topics, wait_for_broker
    from newswire.workers import PipelineWorkers, default_workers
    from pipelines.supervisor import supervise

    s = _settings(args)
    stop = _wait_for_signal()
    partitions = s.kafka.topics.fragments.partitions
    workers = default_workers(partitions) if args.workers == "auto" else int(args.workers)
    broker = postgres = None
    redis: list[Any] = []
    pool: PipelineWorkers | None = None
    try:
        # The models load while Redis and the broker start: in this process for one job; for N, in
        # the launcher that then forks the jobs (they wait for the broker before submitting).
        if workers == 1:
            _warm_up_in_process(s)
        else:
            pool = PipelineWorkers(Path(args.config) if args.config else None, partitions, workers,
                                   s.data_dir / "logs", s.pipeline.health_port,
                                   verbose=args.verbose, log_format=args.log_format).start()
        redis = start_embedded_redis(s)
        postgres = start_embedded_postgres(s)
        if s.kafka.embedded.enabled:
            print(f"starting Apache Kafka {s.kafka.embedded.version} (KRaft) at {s.kafka.bootstrap_servers} ...",
                  flush=True)
            broker = KafkaBroker(s).start()
        else:
            wait_for_broker(s.kafka.bootstrap_servers)
            ensure_topics(s)
        result: Any = None
        if pool is None:
            print(f"starting the streaming pipeline on {s.pipeline.runner} ...", flush=True)
            result = supervise(s)
            if s.pipeline.health_port is not None:
                print(f"pipeline: health on http://{s.pipeline.health_host}:{s.pipeline.health_port}/readyz, "
                      "metrics on /metrics", flush=True)
        else:
            print(f"starting the streaming pipeline on {s.pipeline.runner}: {pool.describe()}", flush=True)
        viewer = threading.Thread(target=tail, args=(s, ["enriched", "alerts", "dlq", "stats"], False, None, None, stop),
                                  daemon=True)
        viewer.start()
        from newswire.sources_cli import describe, start_configured_sources

        sources = start_configured_sources(s)
        for source in sources:
            print(f"connector: {describe(source)}", flush=True)
        from newswire.alerts_cli import describe as describe_notifier
        from newswire.alerts_cli import start_configured_notifier

        notifier = start_configured_notifier(s)  # None when config/alerts.yaml names no webhooks
        if notifier:
            print(describe_notifier(notifier), flush=True)
        console = start_console(s) if s.console.enabled else None
        if args.demo or args.ingest:
            time.sleep(1.0)  # let the live view subscribe before the first records arrive
            paths = [Path(p) for p in args.ingest] or [DEMO_FRAGMENTS]
            report = ingest(s, paths, None)
            print(f"ingested {report.accepted} fragments from {', '.join(map(str, paths))} "
                  f"({len(report.rejected)} rejected to {s.kafka.topics.dlq.name})", flush=True)
        print(f"running: enriched events go to {s.kafka.topics.enriched.name} and {s.storage_url}; Ctrl-C stops.",
              flush=True)
        deadline = time.monotonic() + args.seconds if args.seconds else None
        code = 0
        while not stop.wait(0.5):
            if deadline and time.monotonic() > deadline:
                break
            if result is not None and result.gave_up:
                print(f"newswire up: the pipeline job failed {len(result.failures)} times; giving up. Last error: "
                      f"{result.last_error}", file=sys.stderr, flush=True)
                code = 1
                break
            if pool is not None and pool.failed:
                print(f"newswire up: a pipeline worker gave up: {'; '.join(pool.failed)}", file=sys.stderr, flush=True)
                code = 1
                break
        stop.set()
        for source in sources:
            source.stop()
        if notifier:
            notifier.stop()
        if console:
            console.stop()
        if pool is not None:
            pool.stop()
        else:
            _cancel(result, s)
        viewer.join(5)
        if s.sqlite_path.exists():
            print_events(s, 10)
        return code
    finally:
        if pool is not None:
            pool.stop()  # (again, when something above failed: no job outlives `up`)
        if broker:
            broker.stop()
        stop_all(redis)
        if postgres:
            postgres.stop()
    return 0


def start_console(settings: Settings, host: str | None = None, port: int | None = None) -> Any:
    """Start the web console (console.host:port) in the background and print its URL."""
    from newswire.console.app import Console

    console = Console(settings, host=host, port=port)
    console.start()
    print(console.describe(), flush=True)
    return console


def cmd_console(args: argparse.Namespace) -> int:
    """Serve the web console alone until stopped."""
    s = _settings(args)
    stop = _wait_for_signal()
    console = start_console(s, args.host, args.port)
    try:
        stop.wait()
    finally:
        console.stop()
    return 0


def ingest(settings: Settings, paths: list[Path], source: str | None) -> Any:
    from connectors.sources.files import FileSource

    src = FileSource(settings, paths, source)
    try:
        src.start()
    finally:
        src.stop()
    return src.report


def cmd_ingest(args: argparse.Namespace) -> int:
    s = _settings(args)
    report = ingest(s, [Path(p) for p in args.paths], args.source)
    for reason in report.rejected:
        print(f"rejected: {reason}", file=sys.stderr)
    print(f"{report.accepted} fragments written to {s.kafka.topics.fragments.name}; "
          f"{len(report.rejected)} rejected to {s.kafka.topics.dlq.name}")
    return 0 if not report.rejected else 2


def cmd_tail(args: argparse.Namespace) -> int:
    s = _settings(args)
    stop = _wait_for_signal()
    tail(s, args.topics, args.from_beginning, args.max, args.timeout, stop)
    return 0


def print_events(settings: Settings, limit: int) -> None:
    conn = sqlite3.connect(settings.sqlite_path)
    total, dups = conn.execute("SELECT count(*), count(duplicate_of) FROM events").fetchone()
    print(f"{settings.sqlite_path}: {total} events ({dups} exact duplicates); latest {min(limit, total)}:")
    for row in conn.execute("SELECT event_id, language, source, duplicate_of, coalesce(title, substr(body, 1, 60)) "
                            "FROM events ORDER BY processed_at DESC LIMIT ?", (limit,)):
        dup = f" dup_of={row[3][:8]}" if row[3] else ""
        print(f"  {row[0][:8]} {row[1]:<3} {row[2]:<16}{dup} {row[4]}")
    conn.close()


def cmd_events(args: argparse.Namespace) -> int:
    s = _settings(args)
    if s.storage.kind != "sqlite":
        print(f"newswire events reads the SQLite store; storage.url is {s.storage_url}: query it with "
              "psql (tables in docs/deploy.md#storage)", file=sys.stderr)
        return 1
    if not s.sqlite_path.exists():
        print(f"{s.sqlite_path}: no store yet (run `newswire up` first)", file=sys.stderr)
        return 1
    print_events(s, args.limit)
    return 0


def cmd_stories_top(args: argparse.Namespace) -> int:
    """The biggest stories (most sources, then events) that got a report in the last ``--since`` (as
    the console's "biggest" list), or, with ``--event-time``, whose own last report is that recent."""
    from datetime import UTC, datetime, timedelta

    from connectors.sinks import open_store
    from core.alert_rules import parse_duration

    s = _settings(args)
    since = datetime.now(UTC) - timedelta(seconds=parse_duration(args.since))
    store = open_store(s.storage_url)
    try:
        if args.event_time:
            stories = store.top_stories(since=since.isoformat(), limit=args.limit)
        else:
            stories = store.biggest_stories(since.isoformat(), limit=args.limit)
    finally:
        store.close()
    what = "with a report published" if args.event_time else "updated by a report received"
    print(f"top {len(stories)} stories {what} since {since:%Y-%m-%d %H:%M:%S}Z (sources, events, first..last report):")
    for st in stories:
        names = ", ".join(_plain(t["name"]) for t in [*st["top_entities"][:3], *st["top_places"][:3]])
        print(f"  {st['story_id']}  {st['source_count']:>3} src {st['event_count']:>4} ev  "
              f"{str(st['first_seen'])[5:16]}..{str(st['last_seen'])[11:16]}  {names}")
    return 0


def _plain(text: Any) -> str:
    """Stored (untrusted) text for one terminal line: control and hidden characters spelled out."""
    from newswire.console.views import visible

    return visible(str(text).replace("\n", " "))


def cmd_stories_show(args: argparse.Namespace) -> int:
    """One story and its events, oldest first; an id merged into another story shows the survivor."""
    from connectors.sinks import open_store

    store = open_store(_settings(args).storage_url)
    try:
        story = store.story(args.story_id)
        events = store.story_events(args.story_id, limit=args.limit) if story else []
    finally:
        store.close()
    if story is None:
        print(f"no story {_plain(args.story_id)} in the store", file=sys.stderr)
        return 1
    if story["story_id"] != args.story_id:
        print(f"{_plain(args.story_id)} was merged into {_plain(story['story_id'])} (late merge: the same event)")
    print(f"{_plain(story['story_id'])}  {story['source_count']} src {story['event_count']} ev  "
          f"{story['first_seen']}..{story['last_seen']}")
    if story["merged_from"]:
        print(f"  merged into it: {', '.join(_plain(sid) for sid in story['merged_from'])}")
    for e in events:
        print(f"  {_plain(e.get('received_at'))}  {_plain(e.get('source')):<16} {_plain(e.get('title') or '')[:90]}")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="newswire", description="Streaming ingestion for breaking-news monitoring.")
    ap.add_argument("--config", help="config file (default: config/newswire.yaml)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--log-format", choices=("text", "json"), default="text",
                    help="log lines as text (default) or JSON objects (ts, level, logger, message, exc)")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="fetch Kafka jars and build Prism").set_defaults(fn=cmd_setup)
    sub.add_parser("config", help="validate and print the configuration").set_defaults(fn=cmd_config)
    up = sub.add_parser("up", help="run the embedded stack: broker, pipeline, live view")
    up.add_argument("--demo", action="store_true", help="ingest docs/examples/demo-fragments.jsonl once started")
    up.add_argument("--ingest", nargs="*", default=[], metavar="PATH", help="files to ingest once started")
    up.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: run until Ctrl-C)")
    up.add_argument("--workers", type=_workers_arg, default="auto", metavar="N",
                    help="pipeline jobs, each a process reading its share of the raw topic's partitions "
                         "(default auto: two per core, at most one per partition; docs/deploy.md#scaling-out)")
    up.set_defaults(fn=cmd_up, hosts_job=True)
    sub.add_parser("broker", help="run only the embedded Kafka broker").set_defaults(fn=cmd_broker)
    pl = sub.add_parser("pipeline", help="run only the streaming pipeline; extra flags go to Beam")
    pl.add_argument("beam_args", nargs=argparse.REMAINDER)
    pl.set_defaults(fn=cmd_pipeline, hosts_job=True)
    ing = sub.add_parser("ingest", help="push files into the raw topic")
    ing.add_argument("paths", nargs="+")
    ing.add_argument("--source", help="source name for fragments that do not carry one")
    ing.set_defaults(fn=cmd_ingest)
    add_source_commands(sub)
    con = sub.add_parser("console", help="serve the web console alone (docs/console.md)")
    con.add_argument("--host", default=None, help="listen address (default: console.host)")
    con.add_argument("--port", type=int, default=None, help="port (default: console.port; 0: any free)")
    con.set_defaults(fn=cmd_console)
    add_replay_command(sub)
    add_alerts_commands(sub)
    stories = sub.add_parser("stories", help="stories in the store").add_subparsers(dest="stories_command",
                                                                                   required=True)
    top = stories.add_parser("top", help="the biggest stories of the last --since (most sources first)")
    top.add_argument("--since", default="24h", help="how far back: a duration like 30m, 6h, 2d (default 24h)")
    top.add_argument("--limit", type=int, default=10)
    top.add_argument("--event-time", action="store_true",
                     help="--since counts from the stories' own report times (published_at), not from when "
                          "the reports arrived: for replayed archives")
    top.set_defaults(fn=cmd_stories_top)
    show = stories.add_parser("show", help="one story and its events (an id merged into another: the survivor)")
    show.add_argument("story_id")
    show.add_argument("--limit", type=int, default=50, help="at most this many events, the oldest (default 50)")
    show.set_defaults(fn=cmd_stories_show)
    tl = sub.add_parser("tail", help="print records of topics (enriched, dlq, stats, fragments, alerts, or a name)")
    tl.add_argument("topics", nargs="+")
    tl.add_argument("--from-beginning", action="store_true")
    tl.add_argument("--max", type=int, default=None, help="stop after N records")
    tl.add_argument("--timeout", type=float, default=None, help="stop after N seconds without a record")
    tl.set_defaults(fn=cmd_tail)
    ev = sub.add_parser("events", help="latest events in the SQLite store")
    ev.add_argument("--limit", type=int, default=20)
    ev.set_defaults(fn=cmd_events)
    return ap


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: ts (UTC, ms), level, logger, message, and exc (the traceback) if any."""

    def format(self, record: logging.LogRecord) -> str:
        from datetime import UTC, datetime

        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        return orjson.dumps(line, default=str).decode()


def configure_logging(log_format: str, verbose: bool) -> None:
    """Log to stderr as text (default) or JSON lines (``--log-format json``), for every module."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.log_format, args.verbose)
    if not args.verbose:
        # kafka-python warns about transient states (coordinator moves, slow event-loop tasks) that
        # it recovers from; show only its errors unless asked.
        logging.getLogger("kafka").setLevel(logging.ERROR)
    try:
        code = int(args.fn(args))
    except ConfigError as exc:
        print(f"newswire: configuration error: {exc}", file=sys.stderr)
        code = 2
    except FileNotFoundError as exc:
        print(f"newswire: {exc}", file=sys.stderr)
        code = 2
    if getattr(args, "hosts_job", False):
        leave(code)
    return code


def leave(code: int) -> NoReturn:
    """End a process that hosted a Beam job (``up``, ``pipeline``) without the interpreter's teardown.

    The job's in-process SDK harness and the worker pool it ran in are gRPC, whose C++ threads can
    still be winding down when the process exits; if the C++ runtime then destroys one, the process
    aborts ("terminate called without an active exception", SIGABRT, exit -6: 2 clean stops in 11 of
    ``test_stop_mid_stream_then_restart_keeps_every_fragment_exactly_once`` here, with faulthandler
    showing only the main thread, past its last Python frame). By now the command has stopped
    everything it started (job cancelled, offsets committed, store and services closed), so what is
    left is this process's own output: flushed, then ``os._exit``."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said on it
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
