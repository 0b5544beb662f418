"""Hostile records for the console's tests: markup, script URLs and odd Unicode in every text field."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

SCRIPT = "<script>window.__pwned = 1; alert(1)</script>"
IMG = '<img src=x onerror="window.__pwned = 2">'
JS_URL = "javascript:window.__pwned=3"
#: "exe.txt" written backwards by a right-to-left override, and a zero-width space in a name.
RTL = "invoice\u202etxt.exe"
ZERO_WIDTH = "Sto\u200bltenberg"
TITLE = f"{SCRIPT} Breaking {IMG} {RTL} {ZERO_WIDTH}"
TEXT = (f"Troops moved near the border today. {SCRIPT} The ministry confirmed it. "
        f"A new detail emerged {IMG} overnight.")
NEW_SENTENCE = "The ministry confirmed it."
STORY_ID = "story:hostile0001"
#: Received minutes ago, so the story is among the growing and the biggest on the stories page.
RECEIVED = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: Places with hostile names and feature, one at Helsinki's coordinates, one with coordinates that
#: are no numbers (a stored record is not trusted to be well formed: it is left off the map).
PLACES = [
    {"id": "geonames:658225", "geonameid": 658225, "name": f"{RTL} {SCRIPT}", "country_code": "FI", "admin1": None,
     "lat": 60.16952, "lon": 24.93545, "feature": f"city {IMG}", "mentions": []},
    {"id": f"nw:region:{IMG}", "geonameid": None, "name": f"Nowhere {IMG}", "country_code": None, "admin1": None,
     "lat": "60", "lon": None, "feature": "region", "mentions": []},
]


def event(i: int, **extra: Any) -> dict[str, Any]:
    """An EnrichedEvent whose title, text, URL and names are hostile."""
    return {
        "schema": "enriched-event/1", "event_id": f"{i:032x}", "source": f"wire:{IMG}", "source_id": f"h-{i}",
        "url": JS_URL if i % 2 == 0 else f"https://example.org/a/{i}?q=\"><script>", "title": TITLE,
        "published_at": None, "received_at": RECEIVED, "processed_at": RECEIVED,
        "text": TEXT, "content_hash": f"{i:032x}", "language": {"code": "en", "confidence": 0.99},
        "duplicate_of": None, "story_key": None, "story_id": STORY_ID,
        "story": {"is_new": i == 0, "score": None, "event_count": i + 1, "source_count": 1,
                  "first_seen": RECEIVED, "last_seen": RECEIVED,
                  "top_entities": [{"id": "person:x", "name": f"{ZERO_WIDTH} {SCRIPT}", "events": 1}],
                  "top_places": [{"id": "geonames:1", "name": RTL, "events": 1}]},
        "novelty": {"ratio": 0.5, "new_sentences": [NEW_SENTENCE], "repeated": 1},
        "entities": [{"id": "person:x", "name": f"{ZERO_WIDTH} {SCRIPT}", "type": "person", "mentions": []}],
        "places": PLACES,
        "nationalities": [{"id": "geonames:2", "name": f"{RTL} {SCRIPT}", "country_code": "XX", "mentions": []}],
        "origin": {"topic": "news.fragments", "partition": 0, "offset": i, "timestamp_ms": 1_772_359_200_000},
        **extra,
    }


def merging_event(i: int, *absorbed: str, event_count: int) -> dict[str, Any]:
    """Event `i` of the hostile story as the one that merged `absorbed` into it (late merge)."""
    e = event(i)
    return {**e, "story": {**e["story"], "event_count": event_count, "merged_from": list(absorbed)}}


def alert(alert_id: str = "a" * 32, **extra: Any) -> dict[str, Any]:
    """An Alert whose rule, summary and evidence are hostile (one evidence link is javascript:)."""
    return {
        "schema": "alert/1", "alert_id": alert_id, "rule": f"nordics {SCRIPT}", "kind": "threshold",
        "severity": "critical", "window": {"start": "2026-03-01T10:00:00Z", "end": "2026-03-01T10:10:00Z"},
        "fired_at": "2026-03-01T10:10:05.120Z", "summary": f"{IMG} 3 sources {RTL}",
        "counts": {"events": 3, "stories": 1, "sources": 3}, "baseline": None, "story_ids": [STORY_ID],
        "evidence": [{"event_id": f"{0:032x}", "title": TITLE, "source": "wire:a", "url": JS_URL,
                      "received_at": "2026-03-01T10:00:00Z"},
                     {"event_id": f"{1:032x}", "title": "Plain", "source": "wire:b",
                      "url": "https://example.org/a/1", "received_at": "2026-03-01T10:00:00Z"}],
        "event_ids": [f"{0:032x}"], "destinations": [], "matched": {},
        **extra,
    }


def dead_letter(origin_topic: str = "news.fragments") -> dict[str, Any]:
    """A DeadLetter whose error and original payload are hostile (and not all UTF-8)."""
    original = f'{{"title": "{SCRIPT}", "url": "{JS_URL}", "name": "{RTL}"}}'.encode() + b"\xff\xfe"
    return {"schema": "dead-letter/1", "stage": "parse", "reason": "not_json", "error": f"bad {IMG}",
            "original_b64": base64.b64encode(original).decode(), "original_size": len(original),
            "origin": {"topic": origin_topic, "partition": 0, "offset": 7, "timestamp_ms": None},
            "failed_at": "2026-03-01T10:00:00Z"}
