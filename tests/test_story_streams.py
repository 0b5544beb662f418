"""The generated stories training stream (bench/story_streams.py): its same-town distractors are
what they claim to be, and it stays apart from the evaluation stream (towns, local-event templates)."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from bench.story_streams import (
    _LOCAL,
    _LOCAL_BOILER,
    _LOCAL_MORE,
    _LOCAL_TOWNS,
    _TOWN_POOL,
    HOUR,
    Varied,
    evaluation_stream,
    training_stream,
)


@pytest.mark.parametrize("style", [None, Varied()])
def test_training_stream_has_unrelated_events_in_one_town_within_two_days(style: Varied | None) -> None:
    rows = training_stream(4, style, towns=True)
    by_town: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["event"].startswith("town-"):
            town = next(t for t in _TOWN_POOL if t in row["title"] + row["text"])
            by_town[town][row["event"]].append(row)
    assert len(by_town) == 3
    for events in by_town.values():
        assert len(events) == 4  # four different incidents, one label each
        firsts = sorted(min(r["ts"] for r in reports) for reports in events.values())
        assert firsts[-1] - firsts[0] <= 48 * HOUR
        kinds = {label.split("-", 2)[2] for label in events}
        assert len(kinds) == 4
    # Without the towns the stream is the one the scorer was fitted on before them, draw for draw.
    without = [r for r in rows if not r["event"].startswith("town-")]
    assert without == training_stream(4, style)


def test_the_towns_are_not_the_evaluation_streams() -> None:
    evaluation = " ".join(r["title"] + " " + r["text"] for r in evaluation_stream())
    assert not [t for t in _TOWN_POOL if t in evaluation]


def _pattern(template: str) -> re.Pattern[str]:
    """A template as a regular expression: its fields stand for any text within one sentence."""
    parts = re.split(r"\{[a-z0-9_]+\}", template)
    return re.compile(r"[^.\n]*?".join(re.escape(p) for p in parts))


@pytest.mark.parametrize("seed", [3, 4, 5, 6, 8, 9])
def test_the_training_local_events_are_not_the_evaluation_streams(seed: int) -> None:
    """The own stream's local events are unseen: no town or template sentence of theirs is fitted on
    (seeds 3-5) or chooses the threshold (6, 8, 9), in templated or varied copy, with or without towns."""
    templates = [t for _, lead, title in _LOCAL for t in (lead, title)] + [*_LOCAL_MORE, *_LOCAL_BOILER]
    patterns = [_pattern(t) for t in templates]
    for style in (None, Varied()):
        text = "\n".join(r["title"] + "\n" + r["text"] for r in training_stream(seed, style, towns=True))
        assert not [t for t in _LOCAL_TOWNS if re.search(rf"\b{t}\b", text)]
        assert not [p.pattern for p in patterns if p.search(text)]
