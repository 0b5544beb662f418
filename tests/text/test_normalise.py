"""Tests for pipelines.text.normalise: real scraped samples first, then one hand-written fixture per rule."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from core.markers import FragmentMarker
from pipelines.text.language import detect_language
from pipelines.text.normalise import NormalisedText, content_hash, normalise_text, split_sentences
from tests.paths import SAMPLES

ARTICLE = SAMPLES / "russia-warns-finland-sweden.txt"
LIVE_BLOG = SAMPLES / "liveblog-fragment-2-26.txt"

TYPOGRAPHIC = "\u2018\u2019\u201c\u201d\u00a0\u2013\u2014\u00b4"


def read_sample(path: Path) -> str:
    if not path.is_file():
        pytest.skip(
            f"real sample {path} is absent: these tests need the shared/ folder beside the repository"
        )
    return path.read_text(encoding="utf-8")


def lines_of(text: str) -> list[str]:
    return [line for line in text.split("\n") if line]


# --- the real samples -----------------------------------------------------------------------------


def test_live_blog_marker_is_taken_off_the_first_line() -> None:
    raw = read_sample(LIVE_BLOG)
    result = normalise_text(raw)
    assert result.marker == FragmentMarker(2, 26)
    assert "marker" in result.removed
    assert "2/26" not in lines_of(result.text)
    assert result.text.startswith("It said")


def test_live_blog_handle_split_over_two_lines_is_rejoined() -> None:
    raw = read_sample(LIVE_BLOG)
    assert "@\nnato" in raw  # the artefact this test is about is really in the sample
    text = normalise_text(raw).text
    assert "accession to @nato would" in text
    assert not any(line.endswith("@") for line in lines_of(text))


def test_live_blog_promo_link_line_is_dropped() -> None:
    raw = read_sample(LIVE_BLOG)
    result = normalise_text(raw)
    assert "live blog" in raw
    assert "live blog" not in result.text
    assert "link_line" in result.removed
    # Every other line of the fragment survives: only the marker and the promo line go.
    assert len(lines_of(result.text)) == len(lines_of(raw)) - 3  # marker, promo, and "@" joined


def test_article_trailing_read_more_block_is_removed() -> None:
    raw = read_sample(ARTICLE)
    result = normalise_text(raw)
    assert "Read more at" in raw
    assert "***" in raw
    assert "Read more at" not in result.text
    assert "***" not in result.text
    assert "boilerplate" in result.removed
    assert result.marker is None


def test_article_repeated_captions_appear_exactly_once() -> None:
    raw = read_sample(ARTICLE)
    paragraphs = [p for p in raw.split("\n") if p.strip()]
    # Find the captions from the raw text itself: consecutive paragraphs that fold to the same hash.
    captions = [
        normalise_text(second).text
        for first, second in itertools.pairwise(paragraphs)
        if content_hash(first) == content_hash(second)
    ]
    assert len(captions) >= 10, "the sample is described as repeating every photo caption"
    output_lines = lines_of(normalise_text(raw).text)
    for caption in captions:
        assert output_lines.count(caption) == 1, caption
    assert "repeated_line" in normalise_text(raw).removed


@pytest.mark.parametrize("path", [ARTICLE, LIVE_BLOG], ids=["article", "live-blog"])
def test_samples_lose_typographic_characters_and_stay_english(path: Path) -> None:
    raw = read_sample(path)
    text = normalise_text(raw).text
    assert any(ch in raw for ch in TYPOGRAPHIC)
    assert not any(ch in text for ch in TYPOGRAPHIC)
    assert "  " not in text
    assert "\n\n\n" not in text
    assert text == text.strip()
    assert detect_language(text).code == "en"


@pytest.mark.parametrize("path", [ARTICLE, LIVE_BLOG], ids=["article", "live-blog"])
def test_samples_normalise_idempotently(path: Path) -> None:
    once = normalise_text(read_sample(path))
    twice = normalise_text(once.text)
    assert twice.text == once.text
    assert twice.marker is None
    assert twice.removed == ()


def test_samples_are_different_texts() -> None:
    """The live blog reports the same event in other words: it must not look like a copy of the article."""
    assert content_hash(normalise_text(read_sample(ARTICLE)).text) != content_hash(
        normalise_text(read_sample(LIVE_BLOG)).text
    )


# --- hand-written fixtures, one rule at a time ----------------------------------------------------

FIXTURES = {
    "marker": "3/12\nThe council met on Tuesday.",
    "spaced marker": "  7 / 40 \nThe council met on Tuesday.",
    "date-like first line": "12/2022\nThe council met on Tuesday.",
    "slogan first line": "24/7\nThe council met on Tuesday.",
    "quotes": "\u201cWe will rebuild,\u201d the mayor said. \u201eJa\u201c, sagte er. It\u2019s done.",
    "spaces": "Heavy\u00a0rain\u2009in the\u202fnorth.\t Roads   closed.",
    "invisible": "Flood\u200bwater re\u00adceded\ufeff overnight.\x07",
    "dashes": "Rain fell from 2014\u20132022 \u2013 a record\u2014officials said.",
    "compat": "\ufb01nal \uff2e\uff21\uff34\uff2f vote at 10\u2076 volts, 2\u00bd hours. It\u00b4s late.",
    "paragraphs": "\r\n\r\nFirst paragraph.\r\nSame paragraph.\r\n\r\n\r\n\r\nSecond paragraph.\n\n",
    "captions": (
        "Rescuers search the rubble in Town\u2019s centre\n\n"
        "Rescuers search the rubble in Town's centre.\n\n"
        "Body."
    ),
    "boilerplate": "The bridge reopened.\n\n* * *\nRead more at example.org\nFollow us on Social",
    "handle": "Statement from @\nexample_org today.\nTrending: #\nfloods now.",
    "link line": (
        "First update.\n"
        "https://example.org/live/123\n"
        "For updates, visit our live blog: Storm live\n"
        "Last update."
    ),
}


@pytest.mark.parametrize("raw", FIXTURES.values(), ids=FIXTURES.keys())
def test_normalise_is_idempotent(raw: str) -> None:
    once = normalise_text(raw).text
    assert normalise_text(once).text == once


def test_marker_at_the_start_is_removed_and_returned() -> None:
    assert normalise_text(FIXTURES["marker"]) == NormalisedText(
        text="The council met on Tuesday.", marker=FragmentMarker(3, 12), removed=("marker",),
        content_hash=content_hash("The council met on Tuesday."),
    )
    assert normalise_text(FIXTURES["spaced marker"]).marker == FragmentMarker(7, 40)


@pytest.mark.parametrize(
    "first_line", ["12/2022", "24/7", "0/5", "5/3", "1/2 cup of flour", "Part 2/26"], ids=str
)
def test_things_that_are_not_markers_are_kept(first_line: str) -> None:
    result = normalise_text(f"{first_line}\nThe council met on Tuesday.")
    assert result.marker is None
    assert result.text.split("\n")[0] == first_line


def test_marker_only_counts_on_the_first_line() -> None:
    result = normalise_text("The council met.\n2/26\nIt voted.")
    assert result.marker is None
    assert "2/26" in result.text


def test_curly_quotes_become_straight() -> None:
    assert (
        normalise_text(FIXTURES["quotes"]).text
        == '"We will rebuild," the mayor said. "Ja", sagte er. It\'s done.'
    )


def test_guillemets_are_kept() -> None:
    assert normalise_text("\u00abNon\u00a0\u00bb, a-t-il dit.").text == "\u00abNon \u00bb, a-t-il dit."


def test_odd_spaces_become_one_space() -> None:
    assert normalise_text(FIXTURES["spaces"]).text == "Heavy rain in the north. Roads closed."


def test_invisible_and_control_characters_are_removed() -> None:
    assert normalise_text(FIXTURES["invisible"]).text == "Floodwater receded overnight."


def test_zero_width_joiners_are_kept_because_they_are_spelling() -> None:
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", with a ZWNJ
    assert normalise_text(persian).text == persian


def test_dashes_become_hyphens_and_em_dashes_stay_asides() -> None:
    assert normalise_text(FIXTURES["dashes"]).text == "Rain fell from 2014-2022 - a record - officials said."


def test_compatibility_forms_fold_but_numbers_keep_their_meaning() -> None:
    assert (
        normalise_text(FIXTURES["compat"]).text
        == "final NATO vote at 10\u2076 volts, 2\u00bd hours. It's late."
    )


def test_spacing_diacritics_are_not_turned_into_combining_marks() -> None:
    assert normalise_text("Umlaut sign \u00a8 alone.").text == "Umlaut sign \u00a8 alone."


def test_decomposed_accents_are_composed() -> None:
    assert normalise_text("Cafe\u0301 in Mu\u0308nchen").text == "Caf\u00e9 in M\u00fcnchen"


def test_whitespace_and_paragraph_breaks() -> None:
    assert (
        normalise_text(FIXTURES["paragraphs"]).text
        == "First paragraph.\nSame paragraph.\n\nSecond paragraph."
    )
    assert normalise_text("").text == ""
    assert normalise_text(" \n\t\n ") == NormalisedText(text="", marker=None, removed=(), content_hash=content_hash(""))


def test_repeated_caption_is_kept_once_even_when_retyped() -> None:
    result = normalise_text(FIXTURES["captions"])
    assert result.text == "Rescuers search the rubble in Town's centre\n\nBody."
    assert result.removed == ("repeated_line",)


def test_line_repeated_later_in_the_article_is_kept() -> None:
    text = "Alarm sounded.\n\nCrowds left.\n\nAlarm sounded."
    assert normalise_text(text).text == text


def test_repeats_within_a_paragraph_are_dropped_too() -> None:
    assert normalise_text("Smoke rose.\nSmoke rose.\nFire spread.").text == "Smoke rose.\nFire spread."


def test_trailing_boilerplate_block_is_removed() -> None:
    result = normalise_text(FIXTURES["boilerplate"])
    assert result.text == "The bridge reopened."
    assert result.removed == ("boilerplate",)


@pytest.mark.parametrize(
    "tail",
    [
        "Read more on Example News",
        "Click here to sign up",
        "Follow us on X and Threads",
        "***",
        "\u00a9 Example 2024",
    ],
)
def test_each_kind_of_trailing_boilerplate_line_goes(tail: str) -> None:
    assert normalise_text(f"The bridge reopened.\n\n{tail}").text == "The bridge reopened."


def test_boilerplate_words_inside_the_article_are_kept() -> None:
    text = (
        "Read more at the library, the minister told pupils.\n\n"
        "***\n\n"
        "Click here to donate, the banner said, and many did.\n\n"
        "The appeal closed on Friday."
    )
    result = normalise_text(text)
    assert result.text == text
    assert result.removed == ()


def test_long_closing_paragraph_is_not_boilerplate() -> None:
    text = (
        "Officials spoke.\n\nFollow us on the road, the convoy leader told drivers "
        + "again and " * 20
        + "left."
    )
    assert normalise_text(text).text == text


def test_split_handles_and_hashtags_are_rejoined() -> None:
    assert (
        normalise_text(FIXTURES["handle"]).text
        == "Statement from @example_org today.\nTrending: #floods now."
    )


def test_at_sign_is_not_joined_across_a_paragraph_break_or_inside_a_word() -> None:
    assert normalise_text("Write to @\n\nexample").text == "Write to @\n\nexample"
    assert normalise_text("Price 5@\nthree").text == "Price 5@\nthree"


def test_link_only_lines_are_dropped() -> None:
    result = normalise_text(FIXTURES["link line"])
    assert result.text == "First update.\nLast update."
    assert result.removed == ("link_line",)


def test_link_inside_a_sentence_is_kept() -> None:
    text = "The report is at https://example.org/report and runs to 40 pages."
    assert normalise_text(text).text == text


def test_dropped_line_hands_its_paragraph_break_on() -> None:
    assert normalise_text("First.\n\nhttps://example.org\nSecond.").text == "First.\n\nSecond."


def test_clean_text_is_unchanged() -> None:
    text = "A quiet day in the harbour.\n\nBoats returned at dusk."
    assert normalise_text(text) == NormalisedText(text=text, marker=None, removed=(), content_hash=content_hash(text))


# --- content_hash ---------------------------------------------------------------------------------


def test_content_hash_is_blake2b_of_the_documented_fold() -> None:
    # NFKC (composes "e" + U+0301), casefold, every run of non-letters/digits -> one space, trimmed.
    folded = "it s a test 10 000 caf\u00e9"
    expected = hashlib.blake2b(folded.encode("utf-8"), digest_size=16).hexdigest()
    assert content_hash("  It\u2019s a TEST \u2014 10,000 (cafe\u0301)!  ") == expected
    assert content_hash("It's_a test: 10,000 CAF\u00c9.") == expected
    assert len(expected) == 32


def test_content_hash_ignores_wrapping_case_and_punctuation() -> None:
    one = "Storm hits coast.\n\nThousands \u201cwithout power\u201d \u2013 officials."
    two = 'storm hits coast thousands\n"without power" - OFFICIALS'
    three = "Storm  hits\ncoast. Thousands without\npower, officials!"
    assert content_hash(one) == content_hash(two) == content_hash(three)
    assert content_hash("\uff33torm hits coast") == content_hash("Storm hits coast")  # NFKC


def test_content_hash_separates_different_texts() -> None:
    assert content_hash("Storm hits coast") != content_hash("Storm hits coasts")
    assert content_hash("10,000 troops") != content_hash("10000 troops")
    assert content_hash("") == content_hash(" \n ")


# --- split_sentences ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith met Dr. Jones. They talked.", ["Mr. Smith met Dr. Jones.", "They talked."]),
        ("U.S. officials spoke. It rained.", ["U.S. officials spoke.", "It rained."]),
        ("He moved to the U.S. The family followed.", ["He moved to the U.S.", "The family followed."]),
        ("Talks with the U.S. Navy stalled.", ["Talks with the U.S. Navy stalled."]),
        ("John F. Kennedy spoke. Crowds cheered.", ["John F. Kennedy spoke.", "Crowds cheered."]),
        ("It grew 3.5 percent. Shares fell.", ["It grew 3.5 percent.", "Shares fell."]),
        ("Is it over? Nobody knows! Wait.", ["Is it over?", "Nobody knows!", "Wait."]),
        ('She said: "We will win." Then she left.', ['She said: "We will win."', "Then she left."]),
        ("'We stay,' he said. 'Always.'", ["'We stay,' he said.", "'Always.'"]),
        ("It ended on Jan. 6 in No. 10. Then rain.", ["It ended on Jan. 6 in No. 10.", "Then rain."]),
        ("lower case. after a stop stays together", ["lower case. after a stop stays together"]),
        (
            "Headline without stop\nBody starts here. Ends here.",
            ["Headline without stop", "Body starts here.", "Ends here."],
        ),
        ("First para.\n\nSecond para.", ["First para.", "Second para."]),
        ("Wait... What happened?", ["Wait...", "What happened?"]),
        ("", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_the_hash_normalise_text_carries_is_content_hash_of_its_text() -> None:
    # normalise_text hashes the folds of the lines it keeps instead of folding the text again; that
    # must be content_hash(text) whatever the lines hold: combining marks and compatibility forms at
    # a line's edges, repeated and blank lines, separators only, and random mixes of them.
    import random

    pieces = ["Storm", "hits", "coast", "\u0301", "e\u0301", "\uff33", "\ufb01", "\u2460", "ß", "İ", "Σ",
              "\u00a0", " ", "\t", "\n", "\n\n", "-", "\u2014", "_", "10,000", "http://x.org/a", "2/26",
              "\u1100", "\u1161", "\u200b", "\u2028", "'", "\u201c", ".", "!", "·", "٣"]
    texts = [read_sample(ARTICLE), read_sample(LIVE_BLOG), *FIXTURES.values(),
             "Caption.\nCaption!\n\u0301accent at a line's start\n\n\n", "\n".join(["Same line."] * 3)]
    rng = random.Random(7)
    texts += ["".join(rng.choice(pieces) + rng.choice(["", " "]) for _ in range(rng.randint(0, 40)))
              for _ in range(3000)]
    for raw in texts:
        result = normalise_text(raw)
        assert result.content_hash == content_hash(result.text), raw
