"""What the console shows of untrusted text: pure functions from stored records to display values.

Everything here is plain data; the templates escape it (Jinja2 autoescape) and the browser script
only ever sets ``textContent``. These functions add what escaping cannot: links only to http(s)
URLs, invisible and direction-changing characters made visible, dead-letter payloads decoded
without trusting them, and an event's new sentences marked.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from connectors.sinks.rows import parse_time

#: Characters that change the direction of the text after them (bidi embeddings, overrides and
#: isolates) or take no room (zero-width spaces and joiners, the BOM, the word joiner, soft hyphen):
#: in a title they can disguise a URL or a name, so they are shown as [U+XXXX].
HIDDEN_CHARACTERS = re.compile("[\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
#: C0/C1 control characters other than tab and newline.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

#: The longest dead-letter payload excerpt shown (characters).
PAYLOAD_PREVIEW_CHARS = 8192


def visible(text: Any) -> str:
    """`text` as a string with hidden and control characters spelled out (``[U+202E]``)."""
    if text is None:
        return ""
    text = str(text)
    text = HIDDEN_CHARACTERS.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)
    return CONTROL_CHARACTERS.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def safe_href(url: Any) -> str | None:
    """`url` if it is an absolute http(s) URL fit for an ``href``, else None (show it as text).

    ``javascript:``, ``data:``, relative and scheme-relative URLs are refused, and so is any URL
    with whitespace, control or hidden characters (browsers strip some of them before parsing)."""
    if not isinstance(url, str) or len(url) > 4096:
        return None
    if url != url.strip() or re.search(r"\s", url) or HIDDEN_CHARACTERS.search(url) or CONTROL_CHARACTERS.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def highlight(text: str, new_sentences: Iterable[str]) -> list[tuple[str, bool]]:
    """`text` cut into (piece, is_new) where the pieces marked True are its new sentences."""
    spans: list[tuple[int, int]] = []
    for sentence in new_sentences:
        start = text.find(sentence) if sentence else -1
        if start >= 0:
            spans.append((start, start + len(sentence)))
    pieces, at = [], 0
    for start, end in sorted(spans):
        if start < at:  # overlaps one already marked
            start = at
            if start >= end:
                continue
        if start > at:
            pieces.append((text[at:start], False))
        pieces.append((text[start:end], True))
        at = end
    if at < len(text):
        pieces.append((text[at:], False))
    return [(visible(piece), new) for piece, new in pieces]


def payload_preview(dead_letter: dict[str, Any]) -> dict[str, Any]:
    """A dead letter's original bytes for display: the text (UTF-8, undecodable bytes replaced,
    hidden characters spelled out, cut at PAYLOAD_PREVIEW_CHARS), and whether it was cut or not UTF-8."""
    try:
        raw = base64.b64decode(dead_letter.get("original_b64") or "", validate=True)
    except (ValueError, TypeError):
        return {"text": "", "not_utf8": False, "cut": False, "invalid": True}
    try:
        text, not_utf8 = raw.decode("utf-8"), False
    except UnicodeDecodeError:
        text, not_utf8 = raw.decode("utf-8", "replace"), True
    cut = len(text) > PAYLOAD_PREVIEW_CHARS or bool(dead_letter.get("original_truncated"))
    return {"text": visible(text[:PAYLOAD_PREVIEW_CHARS]), "not_utf8": not_utf8, "cut": cut, "invalid": False}


def alert_view(alert: dict[str, Any], snoozed_until: str | None = None) -> dict[str, Any]:
    """What the alerts page shows of an Alert (the same for the first render and for the live
    stream): strings made visible, each evidence link kept only when it is http(s); ``rule_value``
    is the rule's name as it is (only ever a form field's value), ``snoozed_until`` when its rule
    is snoozed."""
    counts = alert.get("counts") or {}
    window = alert.get("window") or {}
    return {
        "alert_id": visible(alert.get("alert_id")), "rule": visible(alert.get("rule")),
        "rule_value": str(alert.get("rule") or ""), "snoozed_until": short_time(snoozed_until) if snoozed_until else None,
        "severity": visible(alert.get("severity")), "kind": visible(alert.get("kind")),
        "summary": visible(alert.get("summary")), "fired_at": visible(alert.get("fired_at")),
        "window": f"{visible(window.get('start'))} .. {visible(window.get('end'))}",
        "counts": {k: int(counts.get(k) or 0) for k in ("events", "stories", "sources")},
        "evidence": [{"event_id": visible(e.get("event_id")), "title": visible(e.get("title") or "(untitled)"),
                      "source": visible(e.get("source")), "url": visible(e.get("url")), "href": safe_href(e.get("url")),
                      "received_at": visible(e.get("received_at"))}
                     for e in alert.get("evidence") or () if isinstance(e, dict)],
    }


def short_time(value: Any) -> str:
    """A stored time as ``2026-03-01 10:05:00`` (UTC), or the value as text when it is not a time."""
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else visible(value)


def sparkline(counts: list[int], width: int = 120, height: int = 24) -> str:
    """The ``points`` of an SVG polyline drawing `counts` left to right in a width x height box
    (numbers only; the tallest count touches the top, zero the bottom)."""
    if not counts:
        return ""
    top = max(max(counts), 1)
    step = width / max(len(counts) - 1, 1)
    return " ".join(f"{i * step:.1f},{height - 1 - (height - 2) * c / top:.1f}" for i, c in enumerate(counts))


def names(terms: Iterable[Any], limit: int = 5) -> list[str]:
    """The names of a story's top entities or places (the stories table's JSON), made visible."""
    return [visible(t.get("name") or t.get("id")) for t in list(terms)[:limit] if isinstance(t, dict)]
