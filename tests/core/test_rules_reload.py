"""core.alert_rules.RulesFile: edited rules take effect without a restart; a bad edit keeps the old ones."""

from __future__ import annotations

import os
from pathlib import Path

from core.alert_rules import RulesFile, load_rules

ONE = "version: 1\nrules:\n  - {name: nato, match: {entity: NATO}, window: 10m, threshold: {count: 3}}\n"
TWO = ONE + "  - {name: finland, match: {place: Finland}, window: 1h, threshold: {count: 5}}\n"
BAD = ONE + "  - {name: broken, match: {entity: NATO}, window: often, threshold: {count: 3}}\n"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, stamp: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(stamp, stamp))  # a new version even within the filesystem's time resolution


def test_an_edited_file_is_reloaded_at_most_every_interval(tmp_path: Path) -> None:
    path, clock = tmp_path / "alerts.yaml", Clock()
    write(path, ONE, 1)
    watched = RulesFile(path, load_rules(path), interval_s=5.0, clock=clock)
    write(path, TWO, 2)
    clock.now = 4.9
    assert [r.name for r in watched.current().rules] == ["nato"]  # not looked at yet
    clock.now = 5.0
    assert [r.name for r in watched.current().rules] == ["nato", "finland"]
    assert (watched.reloads, watched.failures, watched.error) == (1, 0, None)


def test_a_bad_edit_keeps_the_rules_in_force_and_says_why_once(tmp_path: Path) -> None:
    path, clock = tmp_path / "alerts.yaml", Clock()
    write(path, TWO, 1)
    watched = RulesFile(path, load_rules(path), interval_s=1.0, clock=clock)
    write(path, BAD, 2)
    clock.now = 1.0
    assert [r.name for r in watched.current().rules] == ["nato", "finland"]
    assert watched.error and "often" in watched.error and watched.failures == 1
    clock.now = 2.0
    watched.current()
    assert watched.failures == 1  # the same bad version is not reported again
    path.unlink()
    clock.now = 3.0
    assert len(watched.current().rules) == 2 and "gone" in (watched.error or "")
    write(path, ONE, 3)
    clock.now = 4.0
    assert [r.name for r in watched.current().rules] == ["nato"] and watched.error is None
