"""Live-blog fragments: read the position marker off a post's first line and link the parts of one post.

A live blog publishes a long post in pieces, each starting with a line such as ``2/26``. The
marker itself is parsed by `pipelines.text.normalise.parse_marker` (the pipeline strips it with
the same rule); here it becomes the fragment's ``part`` / ``parts`` fields, and the parts of one
post get one ``story_key`` (and ``parent_id``) so they land on one partition and in one story.

A first line like ``12/3`` can also be a date. When the fragment's publication time says so (the
line reads as that day, or the day before or after, in day/month or month/day order), it is kept
as ``metadata.dateline`` instead of a part number.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core.markers import FragmentMarker, parse_marker

__all__ = ["link_parts", "read_position"]

_PAIR_RE = re.compile(r"(\d{1,2}) ?/ ?(\d{1,2})")


def _first_line(text: str) -> str:
    for line in text.split("\n"):
        if line.strip():
            return line.strip()
    return ""


def _as_date(first: int, second: int, published: datetime) -> date | None:
    """The date the pair names near `published` (day/month, then month/day), if any."""
    for day, month in ((first, second), (second, first)):
        for year in (published.year - 1, published.year, published.year + 1):
            try:
                candidate = date(year, month, day)
            except ValueError:
                continue
            if abs(candidate - published.date()) <= timedelta(days=1):
                return candidate
    return None


def read_position(text: str, published: datetime | None = None) -> FragmentMarker | date | None:
    """A leading live-blog marker ("2/26" -> part 2 of 26), a leading date when `published` says the
    line is one, or None."""
    line = _first_line(text)
    if published is not None:
        pair = _PAIR_RE.fullmatch(line)
        if pair is not None:
            as_date = _as_date(int(pair.group(1)), int(pair.group(2)), published)
            if as_date is not None:
                return as_date
    return parse_marker(line)


def _page_url(url: str) -> str:
    """The live blog's page: the post URL without its #anchor (live blogs link posts as page#post-N)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path, parts.query, ""))


def link_parts(fragment: dict[str, Any], published: datetime | None = None) -> dict[str, Any]:
    """Add part/parts, story_key and parent_id to a live-blog fragment (fields the source set win).

    The story key is ``{source}|{page url}``, else the parent id, else ``{source}|{title}``; a
    fragment with no marker is returned unchanged except for a dateline.
    """
    text = fragment.get("text")
    if not isinstance(text, str):
        return fragment
    position = read_position(text, published)
    if position is None:
        return fragment
    out = dict(fragment)
    if isinstance(position, date):
        out["metadata"] = {**(fragment.get("metadata") or {}), "dateline": position.isoformat()}
        return out
    if out.get("part") is None:
        out["part"] = position.part
    if out.get("parts") is None:
        out["parts"] = position.total
    url = fragment.get("url")
    page = _page_url(url) if isinstance(url, str) and url else None
    if not out.get("parent_id") and page:
        out["parent_id"] = page
    if not out.get("story_key"):
        source = fragment.get("source", "")
        anchor = page or out.get("parent_id") or (f"title:{fragment['title']}" if fragment.get("title") else None)
        if anchor:
            out["story_key"] = f"{source}|{anchor}"[:500]
    return out
