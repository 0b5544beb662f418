"""The stories stage's fast text scans find exactly what their plain forms find.

``numbers``, ``normalised_numbers`` and ``rare_names`` scan each event's text with patterns that
open with the character they need (a digit, a letter) and test the character before it one step
later, so that the regex engine skips ahead in C. Each is compared here with its plain form on the
shared news samples and on generated text dense in the edge cases: digits after letters, dots and
commas, ranges and scores, thousands separators, underscores, non-ASCII letters and digits, and
capitals after letters and digits.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from pipelines.stages.stories import clustering, crosslingual

SAMPLES = sorted((Path(__file__).resolve().parents[4] / "shared" / "samples").glob("*.txt"))

PLAIN_NUMBER = re.compile(r"(?<![\w.])\d+-\d+(?![\w-])|(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")
PLAIN_NUM = re.compile(r"(?<![\w.,])(\d{1,3}(?:[ \u00a0\u202f.,]\d{3})+|\d+(?:[.,]\d+)?)(?![\d])")
PLAIN_NAME_START = re.compile(r"(?<![^\W\d_])[^\W\d_a-z][^\W\d_]*")

_PIECES = ["1", "2", "12", "200", "000", "2026", "٣", "-", "–", ".", ",", " ", "\u00a0", "\u202f", "_", "a", "Z",
           "é", "É", "ß", "Ω", "x", "'", "\n", "(", "Monday", "mardi", "Dienstag", "segunda-feira", "feira",
           "-feira", "sábado", "lunedì", "Sunday", "san", "day", "Mon", "Kyiv", "NATO", "3", "9"]


def generated(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in SAMPLES] + generated(4000)


def test_the_samples_are_there() -> None:
    assert len(SAMPLES) >= 2  # the comparisons below must not run on generated text alone


@pytest.mark.parametrize(("fast", "plain"), [(clustering._NUMBER_RE, PLAIN_NUMBER),
                                             (crosslingual._NUM_RE, PLAIN_NUM),
                                             (crosslingual._NAME_START_RE, PLAIN_NAME_START)])
def test_each_fast_pattern_matches_the_same_spans_as_its_plain_form(fast: re.Pattern[str],
                                                                     plain: re.Pattern[str]) -> None:
    for text in texts():
        assert [(m.span(), m.groups()) for m in fast.finditer(text)] == \
            [(m.span(), m.groups()) for m in plain.finditer(text)], text
