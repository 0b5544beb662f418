"""`newswire stories top` / `stories show` on both stores: a story merged into another (late merge)
is not listed, and its id shows the survivor; stored text reaches the terminal with control
characters spelled out."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.sinks import open_store
from newswire.cli import main
from tests.harness import write_config
from tests.newswire import hostile

ABSORBED = "story:aaaaaaaaaaaaaaaa"


@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql"])
def test_stories_top_and_show_resolve_a_merged_id(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}" if store_kind == "sqlite" else request.getfixturevalue("postgres_url")
    config = write_config(tmp_path / "newswire.yaml", {"storage.url": url, "data_dir": str(tmp_path)})
    store = open_store(url)
    store.add_many([hostile.event(0), hostile.event(10, story_id=ABSORBED, title="Absorbed \x1b[31mred",
                                                   story=hostile.event(0)["story"])])
    store.flush()
    store.add(hostile.merging_event(1, ABSORBED, event_count=3))
    store.flush()
    store.close()

    assert main(["--config", str(config), "stories", "top"]) == 0
    top = capsys.readouterr().out
    assert hostile.STORY_ID in top and ABSORBED not in top and "\u202e" not in top

    assert main(["--config", str(config), "stories", "show", ABSORBED]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == f"{ABSORBED} was merged into {hostile.STORY_ID} (late merge: the same event)"
    assert shown[1].startswith(f"{hostile.STORY_ID}  1 src 3 ev") and shown[2] == f"  merged into it: {ABSORBED}"
    assert len(shown) == 6 and "Absorbed [U+001B][31mred" in shown[-1] and "\x1b" not in "".join(shown)

    assert main(["--config", str(config), "stories", "show", "story:none"]) == 1
    assert "no story story:none" in capsys.readouterr().err


def test_stories_top_lists_what_arrived_recently_even_if_published_long_ago(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An archive or a feed's week-old reports ingested now (the demo's are dated 2026-11-24) are
    among the stories of the last 24 h by arrival, as on the console; --event-time asks by their own
    publication time instead."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    config = write_config(tmp_path / "newswire.yaml", {"storage.url": url, "data_dir": str(tmp_path)})
    week_ago = "2020-01-01T10:00:00.000Z"
    old = hostile.event(0)
    store = open_store(url)
    store.add_many([{**old, "story": {**old["story"], "first_seen": week_ago, "last_seen": week_ago}}])
    store.flush()
    store.close()

    assert main(["--config", str(config), "stories", "top"]) == 0
    assert hostile.STORY_ID in capsys.readouterr().out
    assert main(["--config", str(config), "stories", "top", "--event-time"]) == 0
    out = capsys.readouterr().out
    assert hostile.STORY_ID not in out and "top 0 stories with a report published since" in out
