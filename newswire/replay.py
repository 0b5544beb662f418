"""`newswire replay`: run stored events, or an archive of fragments, through the pipeline again.

After a change to rules, the gazetteer or story settings, replaying re-publishes fragments to the
raw topic; the running pipeline processes them like new ones and the sinks' upserts rewrite the
rows they first made (by event_id), so the store gains no rows:

- from the store (default): each stored EnrichedEvent becomes a fragment again
  (:func:`core.records.fragment_from_event`) and is sent with the Kafka header
  ``newswire-replay-of: <event_id>``. Its text is the normalised one, so its content-derived id
  would differ; Parse takes the id from the header instead.
- from an archive (``--file fragments.jsonl``, fragments as they were ingested): ingested again.
  Event ids derive from source, id (or url) and text (:func:`core.records.event_id_for`),
  never from Kafka offsets, so the same fragment gets the same id and upserts the same row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from core.settings import Settings, load_settings


def replay_stored(settings: Settings, since: str | None = None, until: str | None = None,
                  source: str | None = None, limit: int | None = None) -> int:
    """Re-publish stored events (received in [since, until), from `source`) to the raw topic; returns
    how many the broker acknowledged."""
    from connectors.kafka import make_producer
    from connectors.sinks import open_store
    from connectors.sources.base import fragment_key
    from core.records import REPLAY_HEADER, fragment_from_event

    store = open_store(settings.storage_url)
    producer = make_producer(settings)
    topic = settings.kafka.topics.fragments.name
    try:
        futures = []
        for event in store.events(since=since, until=until, source=source, limit=limit):
            fragment = fragment_from_event(event)
            futures.append(producer.send(topic, key=fragment_key(fragment), value=orjson.dumps(fragment),
                                         headers=[(REPLAY_HEADER, event["event_id"].encode())]))
        producer.flush()
        for f in futures:
            f.get(timeout=0)  # raises if the broker did not take one: the operator reruns the replay
        return len(futures)
    finally:
        producer.close()
        store.close()


def cmd_replay(args: argparse.Namespace) -> int:
    """`newswire replay`: from the store, or from --file archives."""
    settings = load_settings(args.config)
    if args.file:
        from newswire.cli import ingest

        report = ingest(settings, [Path(p) for p in args.file], None)
        for reason in report.rejected:
            print(f"rejected: {reason}", file=sys.stderr)
        print(f"replayed {report.accepted} fragments from {', '.join(args.file)} to "
              f"{settings.kafka.topics.fragments.name}")
        return 0 if not report.rejected else 2
    n = replay_stored(settings, args.since, args.until, args.source, args.limit)
    print(f"replayed {n} stored events from {settings.storage_url} to {settings.kafka.topics.fragments.name}")
    return 0


def add_replay_command(sub: Any) -> None:
    """Register `newswire replay` on the CLI's subparsers."""
    rp = sub.add_parser("replay", help="re-run stored events (or --file archives of fragments) through the "
                                       "pipeline; rows are rewritten, never duplicated")
    rp.add_argument("--file", nargs="+", metavar="PATH", help="archived fragments (.jsonl/.json/.txt) instead "
                                                              "of the store")
    rp.add_argument("--since", help="only events received at or after this time (ISO-8601)")
    rp.add_argument("--until", help="only events received before this time (ISO-8601)")
    rp.add_argument("--source", help="only events from this source")
    rp.add_argument("--limit", type=int, default=None, help="at most N events (oldest first)")
    rp.set_defaults(fn=cmd_replay)
