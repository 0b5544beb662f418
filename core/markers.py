"""Live-blog position markers ("2/26" on a fragment's first line): what connectors and the
Normalise stage both read, so it lives below both."""

from __future__ import annotations

import re
from dataclasses import dataclass

_MARKER_RE = re.compile(r"(\d{1,3}) ?/ ?(\d{1,3})")


@dataclass(frozen=True)
class FragmentMarker:
    """A live-blog position marker such as "2/26": this fragment is part 2 of 26."""

    part: int
    total: int


def parse_marker(line: str) -> FragmentMarker | None:
    """The live-blog marker a line consists of ("2/26", "2 / 26"), or None (the rule normalise_text uses)."""
    match = _MARKER_RE.fullmatch(" ".join(line.split()))
    if match is None:
        return None
    part, total = int(match.group(1)), int(match.group(2))
    if not 1 <= part <= total:
        return None
    return FragmentMarker(part, total)
