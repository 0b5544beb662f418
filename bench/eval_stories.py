"""Story quality against gold events, and the story stage's cost per event.

    .venv/bin/python bench/eval_stories.py [--basil PATH] [--no-enrich] [--language en]
                                           [--only basil|stream|training|multilingual]
                                           [--training-seeds 3 4 5 6 8 9] [--varied-seeds 6 8 9]
                                           [--date-only 0.3] [--no-precision]

Feeds two event-labelled sets through gazetteer enrichment (entities, places) and
``RedisStoryStore.assign`` (what the pipeline's AssignStories runs, on a real redis-server started
here), in publication order, and prints pairwise and BCubed precision/recall/F1 of the stories as they stand at the end (an
event's story followed through late merges; ``emitted_pair_R``: recall of the ids as first
emitted on the events), the number of
stories, milliseconds and Redis round trips per event, and Redis memory grown per event
(extrapolated to 1M events: a small set, so per-process overheads weigh in; the fixed-size
version hash ``st:v:`` is left out):

* ``basil``: ../shared/eval/stories/basil_events.jsonl (100 events x 3 outlets, 2010-2019, see its
  README); measurement only, nothing is tuned on it;
* ``stream``: bench/story_streams.py ``evaluation_stream()``: same-topic distractors close in time
  (a football tournament's matches, one country's bills, daily market closes, stock quoted
  phrases) and events that evolve over days. The scorer is trained on other topics
  (``training_stream()``, bench/train_story_scorer.py);
* ``multilingual``: the self-written en/fr/de/es fixtures (tests/fixtures/multilingual/, story
  labels: two same-event groups across four languages, same-country distractors), each article
  tagged in its own language and marked with it, 20 minutes apart with the languages interleaved;
  cross-lingual joins (pipelines/stages/stories/crosslingual.py) are what it measures. ``--language
  en`` marks the English sets' events as English too (as the pipeline does; their figures stay the
  same, and the cost of computing the cross-lingual evidence shows);
* ``training-<seed>`` (``--training-seeds``): ``training_stream(seed)``, where settings such as the
  late-merge thresholds are chosen (seeds 3-5 also fit the scorer); ``varied-<seed>``
  (``--varied-seeds``): the same seed in varied copy (``Varied``: lengths, rewording, bystander
  names, late reports), where the join threshold is chosen (seeds 6, 8, 9; 3-5 are fitted on);
  ``--date-only 0.3`` makes that share of its reports give a date without a time.

Event time is the article's publication time (``published_at``; BASIL has dates only, which are read
as a date-only feed's are, ``published_precision`` "day", scored at the day's noon UTC; so are the
varied training copy's date-only outlets); the articles arrive 10 s apart, in publication order. Deduplication is not run (none of these articles repeat
another's text closely enough to matter for stories).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.connection

from bench.story_streams import Varied, evaluation_stream, training_stream
from connectors.process import free_port
from connectors.redis import RedisServer, make_redis
from pipelines.text.normalise import normalise_text

DEFAULT_BASIL = ROOT.parent / "shared" / "eval" / "stories" / "basil_events.jsonl"
DEFAULT_MULTILINGUAL = ROOT / "tests" / "fixtures" / "multilingual"


def basil(path: Path) -> list[dict[str, Any]]:
    """BASIL articles as {id, event, source, title, text, ts, published_at}, in date order (``published_at``:
    the date, as a date-only feed gives it; ``ts``: its noon, for the order)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        ts = datetime.fromisoformat(row["date"]).replace(hour=12, tzinfo=UTC).timestamp()
        out.append({"id": row["id"], "event": row["event"], "source": row["source"], "title": row["title"],
                    "text": row["text"], "ts": ts, "published_at": row["date"]})
    return sorted(out, key=lambda r: (r["ts"], r["id"]))


def as_events(rows: list[dict[str, Any]], enrich: bool, language: str | None = None) -> list[dict[str, Any]]:
    """Pipeline-shaped events: normalised text, title, publication time (``ts``; a row whose
    ``published_at`` is a date alone gets it as a connector writes it: midnight UTC and
    ``published_precision`` "day"), entities and places."""
    from connectors.sources.base import iso_utc, parse_datetime, published_precision

    tagger = resolver = None
    if enrich:
        from pipelines.text.entities import EntityTagger
        from pipelines.text.places import PlaceResolver
        tagger, resolver = EntityTagger(mode="gazetteer"), PlaceResolver(demonyms=True)
    events = []
    for i, row in enumerate(rows):
        text = normalise_text(row["text"]).text
        precision = published_precision(row.get("published_at"))
        day = parse_datetime(row["published_at"]) if precision else None
        published = iso_utc(day) if day else datetime.fromtimestamp(row["ts"], UTC).isoformat().replace("+00:00", "Z")
        event: dict[str, Any] = {"event_id": f"{i:08d}-{row['id']}", "source": row["source"], "title": row["title"],
                                 "text": text, "published_at": published, "entities": [], "places": [],
                                 "origin": {"timestamp_ms": int(rows[-1]["ts"] * 1000) + 10_000 * i}}
        if precision:
            event["published_precision"] = precision
        lang = row.get("language") or language or "en"
        if row.get("language") or language:  # as the pipeline's language stage would have set it
            event["language"] = {"code": lang, "confidence": 1.0, "hint": None}
        if tagger is not None and resolver is not None:
            ents = tagger.tag(f"{row['title']}\n\n{text}", lang)
            event["entities"] = [e.to_dict() for e in ents]
            result = resolver.resolve(f"{row['title']}\n\n{text}", lang, ents).to_dict()
            event["places"], event["nationalities"] = result["places"], result["nationalities"]
        events.append(event)
    return events


def multilingual(data: Path = DEFAULT_MULTILINGUAL) -> list[dict[str, Any]]:
    """The self-written en/fr/de/es fixtures with story labels, all on one day, 20 minutes apart,
    the languages interleaved (each file's first article, then each file's second...): time says
    nothing about which articles belong together."""
    files = [[json.loads(line) for line in (data / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines() if line]
             for lang in ("en", "fr", "de", "es")]
    rows = [doc for group in itertools.zip_longest(*files) for doc in group if doc is not None]
    t0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC).timestamp()
    return [{"id": d["id"], "event": d["story"], "source": f"fixture-{d['language']}", "title": d["title"],
             "text": d["text"], "language": d["language"], "ts": t0 + 1200.0 * i} for i, d in enumerate(rows)]


def pairwise(gold: list[str], pred: list[str]) -> tuple[float, float, float]:
    """Precision, recall, F1 over all pairs of items (same predicted story vs same gold event)."""
    tp = fp = fn = 0
    for (g1, p1), (g2, p2) in itertools.combinations(zip(gold, pred, strict=True), 2):
        same_g, same_p = g1 == g2, p1 == p2
        tp += same_g and same_p
        fp += same_p and not same_g
        fn += same_g and not same_p
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def bcubed(gold: list[str], pred: list[str]) -> tuple[float, float, float]:
    """BCubed precision, recall, F1 (per item, averaged)."""
    by_g, by_p, both = Counter(gold), Counter(pred), Counter(zip(gold, pred, strict=True))
    p = statistics.fmean(both[(g, q)] / by_p[q] for g, q in zip(gold, pred, strict=True))
    r = statistics.fmean(both[(g, q)] / by_g[g] for g, q in zip(gold, pred, strict=True))
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


class _RoundTrips:
    """Counts packets sent to Redis (one per command, one per pipeline or script call)."""

    def __init__(self) -> None:
        self.count = 0
        self._orig = redis.connection.AbstractConnection.send_packed_command

    def __enter__(self) -> Self:
        orig, counter = self._orig, self

        def send(conn: Any, *a: Any, **kw: Any) -> Any:
            counter.count += 1
            return orig(conn, *a, **kw)

        redis.connection.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        redis.connection.AbstractConnection.send_packed_command = self._orig  # type: ignore[method-assign]


def story_time(event: dict[str, Any]) -> float:
    """The time the stage scores on (the pipeline's own helper)."""
    from pipelines.stages.stories.transform import story_time_s

    return story_time_s(event)


def _cross_evidence_ms(events: list[dict[str, Any]], passes: int = 5) -> float | None:
    """CPU milliseconds per event of the cross-lingual evidence alone (part of ms_per_event; the
    fastest of ``passes``), or None when no event has a language (then it is not computed)."""
    from pipelines.stages.stories.clustering import StoryInput
    from pipelines.stages.stories.crosslingual import cross_evidence

    items = [StoryInput.from_event(e, 0.0) for e in events]
    if not any(i.language for i in items):
        return None
    best = float("inf")
    for _ in range(passes):
        t0 = time.process_time()
        for i in items:
            cross_evidence(i.language, i.title, i.text, i.entities, i.places)
        best = min(best, time.process_time() - t0)
    return 1000 * best / len(items)


def evaluate(name: str, rows: list[dict[str, Any]], url: str, enrich: bool, language: str | None = None,
             no_precision: bool = False) -> dict[str, Any]:
    from pipelines.stages.stories.state import RedisStoryStore

    events = as_events(rows, enrich, language)
    if no_precision:
        events = [{k: v for k, v in e.items() if k != "published_precision"} for e in events]
    store = RedisStoryStore(make_redis(url), namespace=f"eval-{name}:")
    store.assign(events[0], story_time(events[0]))  # warm up scripts and connections, then start afresh
    store.client.flushdb()
    pred, times = [], []
    before = store.client.info("memory")["used_memory"]
    with _RoundTrips() as trips:
        for event in events:
            t0 = time.perf_counter()
            pred.append(store.assign(event, story_time(event)).story_id)
            times.append(time.perf_counter() - t0)
    grown = store.client.info("memory")["used_memory"] - before
    # the stories' version hash (st:v:) is fixed-size (at most STRIPES counters, ~3 MB), not per event
    grown -= store.client.memory_usage(f"eval-{name}:st:v:") or 0
    cross_ms = _cross_evidence_ms(events)
    gold = [r["event"] for r in rows]
    emitted_r = pairwise(gold, pred)[1]
    resolve = getattr(store, "merged_into", None)  # late merges: the story each event is part of at the end
    if resolve is not None:
        pred = [resolve(sid) for sid in pred]
    p, r, f = pairwise(gold, pred)
    bp, br, bf = bcubed(gold, pred)
    sizes = defaultdict(set)
    for g, q in zip(gold, pred, strict=True):
        sizes[q].add(g)
    return {"set": name, "articles": len(rows), "gold_events": len(set(gold)), "stories": len(set(pred)),
            "mixed_stories": sum(len(v) > 1 for v in sizes.values()),
            "pair_P": p, "pair_R": r, "pair_F1": f, "emitted_pair_R": emitted_r, "bcubed_P": bp, "bcubed_R": br, "bcubed_F1": bf,
            "ms_per_event": 1000 * statistics.fmean(times), "round_trips_per_event": trips.count / len(events),
            "state_MiB_per_1M": grown / len(events) * 1e6 / 2**20,
            **({"cross_evidence_ms_per_event": cross_ms} if cross_ms is not None else {})}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--basil", type=Path, default=DEFAULT_BASIL)
    parser.add_argument("--language", help="give English sets' events this language code, as the pipeline "
                        "does (cross-lingual evidence is then computed for them too: its cost)")
    parser.add_argument("--no-enrich", action="store_true", help="no entities/places (text only)")
    parser.add_argument("--only", choices=("basil", "stream", "training", "varied", "multilingual"))
    parser.add_argument("--training-seeds", type=int, nargs="*", default=[],
                        help="also measure training_stream(seed) for these seeds (where settings may be chosen)")
    parser.add_argument("--varied-seeds", type=int, nargs="*", default=[],
                        help="also measure training_stream(seed, Varied()) (held-out seeds 6 8 9 choose join_threshold)")
    parser.add_argument("--date-only", type=float, default=0.0,
                        help="the varied seeds' share of reports that give their date only (Varied.date_only)")
    parser.add_argument("--no-precision", action="store_true",
                        help="drop published_precision from the events: a date alone is read as its midnight UTC "
                        "(what the pipeline did before the field existed)")
    args = parser.parse_args(argv)
    sets = {"basil": lambda: basil(args.basil), "stream": evaluation_stream, "multilingual": multilingual}
    seeded: list[tuple[str, int, Varied | None]] = [(f"training-{seed}", seed, None) for seed in args.training_seeds]
    seeded += [(f"varied-{seed}", seed, Varied(date_only=args.date_only)) for seed in args.varied_seeds]
    for name, seed, style in seeded:
        sets[name] = functools.partial(training_stream, seed, style)
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis", port=free_port(),
                                                           enable_commands=("FLUSHALL", "FLUSHDB")) as server:
        for name, load in sets.items():
            if args.only and name.split("-")[0] != args.only:
                continue
            res = evaluate(name, load(), server.url, not args.no_enrich, args.language, args.no_precision)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items()))


if __name__ == "__main__":
    main()
