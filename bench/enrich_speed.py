"""Enrichment alone (entities + places per event), on the e2e bench's ~1 KB English fragments.

    python bench/enrich_speed.py [--n 1500] [--entities gazetteer|spacy]

Prints milliseconds per fragment and per KB for `enrich_event` (the function the TagEntities stage
wraps), after a warm-up pass over the same fragments; no broker, no Redis. CPU time of this process
(time.process_time), so that other work on a shared machine does not count.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_throughput import make_fragments
from pipelines.text.enrich import enrich_event
from pipelines.text.entities import MODES, EntityTagger
from pipelines.text.places import PlaceResolver


def main(argv: list[str] | None = None) -> None:
    """Run the timing and print it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--entities", choices=MODES, default="gazetteer")
    args = ap.parse_args(argv)
    resolver = PlaceResolver()
    tagger = EntityTagger(mode=args.entities, places=resolver.place_keys() if args.entities == "gazetteer" else None)
    events = []
    for raw in make_fragments(args.n, seed=7, tag="enrich"):
        doc = orjson.loads(raw)
        events.append({"text": doc["text"], "language": {"code": "en"}})
    kb = sum(len(e["text"].encode("utf-8")) for e in events) / 1024
    for e in events[:200]:
        enrich_event(e, tagger, resolver)
    t = time.process_time()
    for e in events:
        enrich_event(e, tagger, resolver)
    secs = time.process_time() - t
    print(f"enrich ({args.entities}): {secs * 1000 / len(events):.2f} ms per fragment, "
          f"{secs * 1000 / kb:.2f} ms/KB ({len(events)} fragments, {kb / len(events):.2f} KB each)")


if __name__ == "__main__":
    main()
