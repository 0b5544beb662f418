"""The benches' stage chain (bench/stage_chain.py) and the Quix Streams peer (bench/peers/quix_peer.py):
the peer, run end to end on the real broker and Redis, writes the events the plain loop computes, so
the side-by-side comparison (bench/peers/compare.py) cannot silently compare different work."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.stage_chain import StageChain, StageClock
from core.records import STORY_FIELDS
from core.settings import load_settings
from tests.harness import Stack

TEXT = ("Officials in Helsinki said on Monday that NATO would send a delegation to Finland next week, "
        "after talks between the defence ministers ended without a joint statement. "
        "The delegation will meet President Alexander Stubb and members of parliament, a spokesperson said.")
OTHER = ("Heavy rain flooded parts of Lisbon overnight, and the city council closed two metro stations "
         "while crews pumped water from the tunnels. Forecasters expect more rain in Portugal on Tuesday.")
THIRD = ("Shares in European carmakers fell sharply on Wednesday after the European Commission proposed "
         "new limits on emissions, with analysts in Frankfurt warning of lower profits this year.")


def fragments() -> list[bytes]:
    """Three distinct fragments, an exact copy of the first under another id, and one record that is
    not JSON (a dead letter)."""
    docs = [{"source": "test:wire", "id": "a", "text": TEXT}, {"source": "test:wire", "id": "b", "text": OTHER},
            {"source": "test:other", "id": "c", "text": THIRD}, {"source": "test:other", "id": "d", "text": TEXT}]
    return [*map(orjson.dumps, docs), b"{not json"]


def test_stage_chain_routes_events_and_dead_letters_like_the_pipeline() -> None:
    """No Redis needed: exact dedup, no stories, no alerts, no enrichment."""
    settings = load_settings(environ={}, overrides={
        "pipeline.dedup.mode": "exact", "pipeline.stories.enabled": False, "alerts.enabled": False,
        "pipeline.enrichment.entities": "off"})
    clock = StageClock()
    chain = StageChain(settings, clock=clock)
    out = [d for i, v in enumerate(fragments()) for d in chain.process(v, i, partition=2)]
    assert [d.kind for d in out] == ["event"] * 4 + ["dead_letter"]
    events = [d.payload for d in out[:4]]
    assert all(e["language"]["code"] == "en" for e in events)
    assert events[3]["duplicate_of"] == events[0]["event_id"]
    assert events[0]["duplicate_of"] is None
    assert all(not k.startswith("_") for e in events for k in e)  # the public fields only
    assert events[1]["origin"] == {"topic": settings.kafka.topics.fragments.name, "partition": 2, "offset": 1,
                                   "timestamp_ms": events[1]["origin"]["timestamp_ms"]}
    dead = out[4]
    assert (dead.payload["stage"], dead.payload["reason"], dead.next_offset) == ("parse", "not_json", 5)
    empty = chain.process(orjson.dumps({"source": "s", "text": "\u200b"}), 9)[0]  # empty once normalised
    assert (empty.kind, empty.payload["stage"]) == ("dead_letter", "normalise")
    assert {"parse", "normalise", "language", "dedup", "emit"} <= clock.total.keys()


def _read(stack: Stack, role: str, n: int, timeout_s: float) -> list[dict[str, Any]]:
    return stack.consume(role, lambda got: len(got) >= n, timeout_s)


def _stored_events(path: Path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_quix_peer_writes_the_plain_loops_events(stack: Stack) -> None:
    from bench.peers.quix_peer import start_peer

    values = fragments()
    start_peer(stack, commit_interval=1.0)
    stack.produce(values, key=lambda i: b"one-partition")  # in order, so the copy comes after its original
    enriched = _read(stack, "enriched", 4, 120)
    assert len(enriched) == 4, stack.pipeline_log()
    dead = _read(stack, "dlq", 1, 30)
    assert [(d["stage"], d["reason"]) for d in dead] == [("parse", "not_json")]

    chain = StageChain(stack.settings, namespace=f"expect{uuid.uuid4().hex[:8]}:")
    expected = [d.payload for i, v in enumerate(values[:4]) for d in chain.process(v, i)]
    chain.close()
    got = {e["source_id"]: e for e in enriched}
    for want in expected:
        peer = got[want["source_id"]]
        assert peer["event_id"] == want["event_id"]
        assert peer["language"] == want["language"]
        assert peer["content_hash"] == want["content_hash"]
        assert [e["name"] for e in peer["entities"]] == [e["name"] for e in want["entities"]]
        assert [p["id"] for p in peer["places"]] == [p["id"] for p in want["places"]]
        assert (peer["duplicate_of"], peer["dedup_kind"]) == (want["duplicate_of"], want["dedup_kind"])
        assert all(peer.get(f) is not None for f in STORY_FIELDS), peer
        assert peer["story"].keys() == want["story"].keys() and peer["novelty"].keys() == want["novelty"].keys()
    assert got["d"]["duplicate_of"] == got["a"]["event_id"]
    assert got["d"]["story_id"] == got["a"]["story_id"]  # the copy joins its original's story
    assert len({got[k]["story_id"] for k in "abc"}) == 3

    deadline = time.monotonic() + 30  # the store sink flushes at the next checkpoint
    while _stored_events(stack.settings.sqlite_path) < 4 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _stored_events(stack.settings.sqlite_path) == 4
