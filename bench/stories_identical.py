"""Whether a change to the stories stage changes any decision: every result of a fixed event stream.

    .venv/bin/python bench/stories_identical.py --events /tmp/stories-events.jsonl --out /tmp/after.jsonl
    cmp /tmp/before.jsonl /tmp/after.jsonl

A speed change to ``RedisStoryStore`` (pipelines/stages/stories/state.py) must leave every decision
as it was. This feeds one fixed stream of pipeline-shaped events to ``RedisStoryStore.assign`` on a
fresh embedded redis-server and writes each result (``StoryDecision.to_fields()``: story id,
is_new, score, summary, new sentences, repeated, ratio, merges) as one JSON line, then prints a
digest and what the stream exercised (new stories, joins, late merges, replays answered from the
stored result). Run it on the code before and after the change with the same ``--events`` file and
compare the outputs byte for byte.

The events are built once (when ``--events`` does not exist yet) and read from that file afterwards,
so the stages before stories (which other changes may touch) cannot make two runs differ:

* ``chain``: ~1 KB English fragments of real sentences (as bench/e2e_throughput.py makes them, but
  topical: a fragment starts a topic or continues an open one, reusing some of its sentences, and
  most padded with shuffled-word sentences as bench/stories_redis.py does, so that not nearly every
  fragment is a near-duplicate of another as in e2e_throughput's 50-sentence corpus) run
  through the shipped stages before stories (bench/stage_chain.py: parse, normalise, language,
  gazetteer enrichment, near-dup dedup), with exact copies (``duplicate_of``), lightly edited
  copies (``near_duplicate_of``), live-blog updates naming a ``story_key``, and titles; one event
  a minute of event time, so stories also expire (``max_gap_s``);
* ``stream``: bench/story_streams.py ``evaluation_stream()`` enriched and marked English (same-topic
  distractors, late merges);
* ``multilingual``: the en/fr/de/es fixtures of tests/fixtures/multilingual (cross-lingual joins,
  translation novelty);

and in every set some events come again later (a replay: the stored result must come back).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.process import free_port
from connectors.redis import RedisServer, make_redis
from pipelines.stages.dedup.logic import sentences

T0_MS = 1_764_000_000_000


def _with_replays(events: list[tuple[float, dict[str, Any]]], rng: random.Random,
                  share: float = 0.05) -> list[tuple[float, dict[str, Any]]]:
    """The events with a ``share`` of them coming again 1-200 positions later (same event, same time)."""
    out = list(events)
    for i in sorted(rng.sample(range(len(events)), int(len(events) * share)), reverse=True):
        out.insert(min(len(out), i + 1 + rng.randrange(200)), events[i])
    return out


def chain_events(n: int, seed: int) -> list[tuple[float, dict[str, Any]]]:
    """The ``chain`` set (see the module doc): (story time, event) after the stages before stories."""
    from bench.dedup_eval import base_articles, filler
    from bench.e2e_throughput import corpus_sentences
    from bench.stage_chain import StageChain
    from core.settings import load_settings
    from pipelines.stages.stories.transform import story_time_s

    rng = random.Random(seed)
    pool = corpus_sentences()
    articles = [s for t in base_articles().values() for s in sentences(t) if len(s.split()) >= 6]
    tmp = tempfile.TemporaryDirectory()
    with RedisServer(Path(tmp.name) / "redis", port=free_port()) as server:
        settings = load_settings(environ={}, overrides={"redis.url": server.url})
        chain = StageChain(settings, namespace="identical:")
        chain.stages = [s for s in chain.stages if s[0] not in ("stories", "alerts", "emit")]
        topics: list[list[str]] = []
        sent: list[dict[str, Any]] = []
        out: list[tuple[float, dict[str, Any]]] = []
        for i in range(n):
            r = rng.random()
            doc: dict[str, Any]
            if sent and r < 0.05:  # an exact copy from another outlet
                doc = {**rng.choice(sent[-300:]), "source": f"bench:copy{i % 5}", "id": f"copy-{i}"}
            elif sent and r < 0.12:  # a lightly edited copy
                base = rng.choice(sent[-300:])
                words = base["text"].split(" ")
                k = rng.randrange(len(words))
                words[k] = words[k] + "s"
                doc = {**base, "text": " ".join(words), "source": f"bench:edit{i % 5}", "id": f"edit-{i}"}
            elif r < 0.18:  # a live blog's update: its source names the story
                blog = rng.randrange(12)
                doc = {"source": f"bench:blog{blog % 3}", "id": f"blog-{i}", "story_key": f"live-{blog}",
                       "text": " ".join([f"Live update {i}: the situation is developing."] + rng.sample(pool, 6))}
            else:
                follow = bool(topics) and rng.random() < 0.55
                if follow:
                    topic = topics[rng.randrange(max(0, len(topics) - 60), len(topics))]
                    body = rng.sample(topic, min(len(topic), rng.randrange(2, 5)))
                else:
                    topic = rng.sample(articles if rng.random() < 0.6 else pool, 10)
                    topics.append(topic)
                    body = topic[:4]
                body = [f"Update {i}: officials confirmed the figures on {rng.randint(1, 28)} November.", *body]
                if rng.random() < 0.6:  # the rest in words no other fragment shares in that order
                    body.append(filler(rng, articles, rng.randrange(3, 6)))
                while sum(map(len, body)) < 950:
                    body.append(rng.choice(pool))
                doc = {"source": f"bench:{i % 8}", "id": f"tp-{i}", "text": " ".join(body)}
                if rng.random() < 0.5:
                    doc["title"] = topic[0][:90]
            sent.append(doc)
            for got in chain.process(orjson.dumps(doc), i, timestamp_ms=T0_MS + 60_000 * i):
                if isinstance(got, dict):  # (a dead letter is a Delivery)
                    event = {k: v for k, v in got.items() if not k.startswith("_")}
                    out.append((story_time_s(event, settings.pipeline.stories), event))
        chain.close()
    tmp.cleanup()
    return _with_replays(out, rng)


def eval_events(name: str, seed: int) -> list[tuple[float, dict[str, Any]]]:
    """The ``stream`` or ``multilingual`` set (bench/eval_stories.py builds the events)."""
    from bench.eval_stories import as_events, multilingual, story_time
    from bench.story_streams import evaluation_stream

    rows = evaluation_stream() if name == "stream" else multilingual()
    events = as_events(rows, enrich=True, language="en")
    return _with_replays([(story_time(e), e) for e in events], random.Random(seed))


def build(path: Path, n: int, seed: int) -> None:
    sets = {"chain": chain_events(n, seed), "stream": eval_events("stream", seed),
            "multilingual": eval_events("multilingual", seed)}
    with path.open("wb") as f:
        for name, events in sets.items():
            for ts, event in events:
                f.write(orjson.dumps([name, ts, event]) + b"\n")


def run(events_path: Path, out_path: Path) -> None:
    from pipelines.stages.stories.state import RedisStoryStore

    rows = [orjson.loads(line) for line in events_path.read_bytes().splitlines()]
    digest = hashlib.sha256()
    seen: set[str] = set()
    stats: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis", port=free_port()) as server, \
            out_path.open("wb") as out:
        client = make_redis(server.url)
        stores: dict[str, RedisStoryStore] = {}
        for name, ts, event in rows:
            store = stores.setdefault(name, RedisStoryStore(client, namespace=f"{name}:"))
            fields = store.assign(event, ts).to_fields()
            line = orjson.dumps([name, event["event_id"], fields], option=orjson.OPT_SORT_KEYS) + b"\n"
            out.write(line)
            digest.update(line)
            replay = event["event_id"] in seen
            seen.add(event["event_id"])
            stats[f"{name}.events"] += 1
            stats[f"{name}.replays"] += replay
            stats[f"{name}.new"] += fields["story"]["is_new"] and not replay
            stats[f"{name}.merged"] += bool(fields["story"].get("merged_from")) and not replay
            for link in ("duplicate_of", "near_duplicate_of", "story_key"):
                stats[f"{name}.{link}"] += bool(event.get(link)) and not replay
        stats["retries"] = sum(s.conflicts for s in stores.values())
        client.close()
    for k, v in sorted(stats.items()):
        print(f"{k:28s} {v}")
    print(f"{'sha256':28s} {digest.hexdigest()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=Path, required=True, help="the event stream (built here when missing)")
    parser.add_argument("--out", type=Path, required=True, help="where the results go, a JSON line each")
    parser.add_argument("--n", type=int, default=3000, help="chain events when building")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.events.exists():
        build(args.events, args.n, args.seed)
    run(args.events, args.out)


if __name__ == "__main__":
    main()
