"""End to end with storage.url pointing at a real PostgreSQL: `newswire replay` (from the store and
from an archive) rewrites rows without adding any. The SIGKILL-and-restart test runs on both stores
in tests/pipelines/test_pipeline_e2e.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from newswire.cli import ingest
from newswire.replay import replay_stored
from tests.harness import Stack

pytestmark = pytest.mark.e2e


def article(i: int) -> dict[str, Any]:
    return {"source": "test:wire", "id": f"a-{i}",
            "text": f"Item {i}: the harbour authority in Helsinki said on Tuesday that ferry services to "
                    f"Tallinn would resume after the storm, and that {i} vessels were waiting outside the port."}


def rows(url: str) -> list[tuple[Any, ...]]:
    try:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT source_id, processed_at, body FROM events").fetchall()
    except psycopg.errors.UndefinedTable:  # the pipeline has not created its tables yet
        return []


def stories(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT story_id, event_count FROM stories").fetchall()


def wait_rows(url: str, n: int, timeout_s: float) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + timeout_s
    found = rows(url)
    while len(found) < n and time.monotonic() < deadline:
        time.sleep(0.5)
        found = rows(url)
    return found


@pytest.fixture
def pg_stack(make_stack: Any, postgres_url: str) -> Stack:
    return make_stack(**{"storage.url": postgres_url})  # type: ignore[no-any-return]


def test_replay_rewrites_rows_without_adding_any(pg_stack: Stack, postgres_url: str, tmp_path: Path) -> None:
    fragments = [article(i) for i in range(20)]
    fragments.append({"source": "blog:c", "id": "live-2", "story_key": "live",
                      "text": "2/5\nHelsinki: the ferry operator says the first departure to Tallinn is at noon."})
    pg_stack.start_pipeline()
    pg_stack.produce(fragments)
    first = {r[0]: r for r in wait_rows(postgres_url, len(fragments), 120)}
    assert len(first) == len(fragments), pg_stack.pipeline_log()
    stories_before = dict(stories(postgres_url))

    # From the store: every stored event goes round again under its own id.
    assert replay_stored(pg_stack.settings) == len(fragments)
    enriched = pg_stack.consume("enriched", lambda r: len(r) >= 2 * len(fragments), timeout_s=120)
    assert len(enriched) == 2 * len(fragments), pg_stack.pipeline_log()
    assert len({e["event_id"] for e in enriched}) == len(fragments)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        again = {r[0]: r for r in rows(postgres_url)}
        if all(again[k][1] > first[k][1] for k in first):
            break
        time.sleep(0.5)
    assert len(again) == len(fragments)
    assert all(again[k][1] > first[k][1] for k in first), "every row should have been rewritten by the replay"
    # Stories: one row per story the events name, and a replay never shrinks one.
    stories_after = dict(stories(postgres_url))
    assert set(stories_after) == {r[2]["story_id"] for r in again.values()} and stories_after
    assert all(stories_after[sid] >= count for sid, count in stories_before.items())
    live = again["live-2"][2]
    assert live["marker"] == {"part": 2, "total": 5} and live["text"] == first["live-2"][2]["text"]

    # From an archive of the original fragments: content-derived ids, the same rows again.
    archive = tmp_path / "archive.jsonl"
    archive.write_bytes(b"\n".join(orjson.dumps(f) for f in fragments))
    assert ingest(pg_stack.settings, [archive], None).accepted == len(fragments)
    pg_stack.consume("enriched", lambda r: len(r) >= 3 * len(fragments), timeout_s=120)
    time.sleep(2)
    assert len(rows(postgres_url)) == len(fragments)
