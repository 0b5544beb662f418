"""Live-blog fragments: markers, dates, story keys, HTML to text, publication times; and a 26-part
live blog posted part by part through the HTTP endpoint into the real broker."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import httpx
import pytest

from connectors.sources.base import complete_fragment, fragment_key, parse_datetime, published_precision
from connectors.sources.http import HttpSource
from connectors.sources.liveblog import link_parts, read_position
from core.markers import FragmentMarker, parse_marker
from core.markup import html_to_text
from pipelines.text.normalise import normalise_text
from tests.harness import Stack, wait_connected

JUNE_10 = datetime(2025, 6, 10, 9, 0, tzinfo=UTC)


def test_parse_marker_uses_the_normalise_rule() -> None:
    assert parse_marker("2/26") == FragmentMarker(2, 26)
    assert parse_marker(" 3 / 26 ") == FragmentMarker(3, 26)
    assert parse_marker("27/26") is None and parse_marker("12/2022") is None and parse_marker("2/26 and") is None
    assert normalise_text("2/26\nText.").marker == parse_marker("2/26")


def test_read_position_prefers_a_date_when_the_publication_time_says_so() -> None:
    assert read_position("\n 2/26\nLeaders met.", JUNE_10) == FragmentMarker(2, 26)
    assert read_position("10/6\nLeaders met.", JUNE_10) == date(2025, 6, 10)  # day/month
    assert read_position("6/10\nLeaders met.", JUNE_10) == date(2025, 6, 10)  # month/day
    assert read_position("6/10\nLeaders met.") == FragmentMarker(6, 10)  # no context: a marker
    assert read_position("Leaders met on 2/26.", JUNE_10) is None


def test_link_parts_gives_parts_of_one_post_one_story_key() -> None:
    parts = [link_parts({"source": "http:desk", "url": f"https://n.example/live/summit?x=1#post-{i}",
                         "text": f"{i}/3\nUpdate {i}."}) for i in (1, 2, 3)]
    assert [(p["part"], p["parts"]) for p in parts] == [(1, 3), (2, 3), (3, 3)]
    assert {p["story_key"] for p in parts} == {"http:desk|https://n.example/live/summit?x=1"}
    assert {p["parent_id"] for p in parts} == {"https://n.example/live/summit?x=1"}
    own = link_parts({"source": "s", "text": "1/2\nx", "story_key": "mine", "part": 5})
    assert own["story_key"] == "mine" and own["part"] == 5 and own["parts"] == 2
    assert link_parts({"source": "s", "text": "1/2\nx", "title": "Summit"})["story_key"] == "s|title:Summit"
    plain = {"source": "s", "text": "No marker here."}
    assert link_parts(plain) == plain
    dated = link_parts({"source": "s", "text": "10/6\nx"}, JUNE_10)
    assert dated["metadata"] == {"dateline": "2025-06-10"} and "part" not in dated


def test_every_version_of_a_live_blog_page_gets_one_partition_key() -> None:
    """Keyed by the canonical page URL (what dedup calls one page), so its updates keep their order
    whatever ids the source gave them; without a URL the feed GUID; without either, the source."""
    page = "https://www.daily.example/live/storm/"
    versions = [{"source": "rss:daily", "id": "entry-1", "url": page, "text": "a"},
                {"source": "rss:daily", "id": "entry-2", "url": page + "?utm_source=rss#entry-2", "text": "b"},
                {"source": "rss:daily", "url": "HTTPS://daily.example/live/storm", "text": "c"}]
    assert {fragment_key(v) for v in versions} == {b"rss:daily:https://daily.example/live/storm"}
    assert fragment_key({"source": "rss:daily", "id": "entry-1", "text": "a"}) == b"rss:daily:entry-1"
    assert fragment_key({"source": "http", "text": "a"}) == b"http:"  # keyless: as before
    assert fragment_key({"source": "s", "url": page, "story_key": "s|blog", "text": "a"}) == b"s|blog"
    assert fragment_key({"source": "s", "url": "http://[::1", "text": "a"}) == b"s:http://[::1"  # unreadable: as given


def test_html_to_text_keeps_paragraphs_and_drops_non_content() -> None:
    html = ("<html><head><title>Page</title><style>p{}</style></head><body><h1>Summit &amp; talks</h1>"
            "<p>First  line<br>second line</p><script>track()</script><ul><li>one</li><li>two</li></ul>"
            "<p>Caf&eacute; &#8220;quoted&#8221;</p></body></html>")
    assert html_to_text(html) == ("Summit & talks\n\nFirst line\nsecond line\n\n- one\n- two\n\n"
                                  "Caf\u00e9 \u201cquoted\u201d")
    assert html_to_text("<p>2/26</p><p>Text.</p>").split("\n\n")[0] == "2/26"


@pytest.mark.parametrize("raw, expected", [
    ("Tue, 10 Jun 2025 04:00:00 GMT", "2025-06-10T04:00:00+00:00"),
    ("Tue, 10 Jun 2025 04:00:00 +0200", "2025-06-10T02:00:00+00:00"),
    ("Mon, 09 Jun 2025 23:00:00 EDT", "2025-06-10T03:00:00+00:00"),
    ("2025-06-10T09:30:00+03:00", "2025-06-10T06:30:00+00:00"),
    ("2025-06-10T04:00:00Z", "2025-06-10T04:00:00+00:00"),
    ("2025-06-10 04:00", "2025-06-10T04:00:00+00:00"),
    ("10 June 2025 4:00 PM CEST", "2025-06-10T14:00:00+00:00"),
    (1749528000, "2025-06-10T04:00:00+00:00"),
])
def test_publication_times_in_the_formats_feeds_use_become_utc(raw: object, expected: str) -> None:
    parsed = parse_datetime(raw)
    assert parsed is not None and parsed.isoformat() == expected


@pytest.mark.parametrize("raw, precision", [
    ("2025-06-10", "day"), ("20250610", "day"), ("Tue, 10 Jun 2025", "day"), ("June 10, 2025", "day"),
    ("2025-06-10T00:00:00Z", None), ("2025-06-10 04:00", None), ("Tue, 10 Jun 2025 00:00:00 GMT", None),
    ("10 June 2025 4:00 PM CEST", None), (1749528000, None), (None, None), ("soon-ish", None),
])
def test_a_date_without_a_time_is_marked_as_a_whole_day(raw: object, precision: str | None) -> None:
    assert published_precision(raw) == precision


def test_complete_fragment_marks_a_date_alone_and_keeps_the_sources_own_precision() -> None:
    day = complete_fragment({"text": "x", "published_at": "Tue, 10 Jun 2025"}, "s")
    assert (day["published_at"], day["published_precision"]) == ("2025-06-10T00:00:00Z", "day")
    exact = complete_fragment({"text": "x", "published_at": "2025-06-10T00:00:00Z"}, "s")
    assert "published_precision" not in exact
    own = complete_fragment({"text": "x", "published_at": "2025-06-10T00:00:00Z", "published_precision": "day"}, "s")
    assert own["published_precision"] == "day"


def test_unreadable_publication_time_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a date-time"):
        complete_fragment({"text": "x", "published_at": "soon-ish"}, "s")


@pytest.mark.e2e
def test_a_26_part_live_blog_posted_part_by_part_shares_one_story_key(stack: Stack) -> None:
    source = HttpSource(stack.settings, port=0, token="t")
    source.start()
    try:
        wait_connected(source)
        with httpx.Client(base_url=source.url, headers={"Authorization": "Bearer t"}, timeout=30) as client:
            for part in range(1, 27):
                post = {"source": "http:nordic-desk", "id": f"live-summit-{part}",
                        "url": f"https://nordic.example/live/summit#post-{part}", "title": "Summit live",
                        "published_at": f"2025-06-10T{8 + part // 10:02d}:{part % 10 * 5:02d}:00+03:00",
                        "content_type": "text/html",
                        "text": f"<p>{part}/26</p><p>Update {part} from the summit in Helsinki.</p>"}
                response = client.post("/fragments", json=post)
                assert response.status_code == 202, response.text
    finally:
        source.stop()
    records = stack.consume("fragments", lambda rs: len(rs) >= 26, timeout_s=20)
    assert len(records) == 26
    assert sorted(r["part"] for r in records) == list(range(1, 27))
    assert {r["parts"] for r in records} == {26}
    assert {r["story_key"] for r in records} == {"http:nordic-desk|https://nordic.example/live/summit"}
    assert {r["parent_id"] for r in records} == {"https://nordic.example/live/summit"}
    assert all(r["text"].startswith(f"{r['part']}/26\n\nUpdate {r['part']} ") for r in records)
    assert Counter(r["published_at"][:11] for r in records) == {"2025-06-10T": 26}
