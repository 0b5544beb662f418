"""The generated stories training stream (bench/story_streams.py): its same-town distractors are
what they claim to be, and stay apart from the evaluation stream."""

from __future__ import annotations

from collections import defaultdict

import pytest

from bench.story_streams import _TOWN_POOL, HOUR, Varied, evaluation_stream, training_stream


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
