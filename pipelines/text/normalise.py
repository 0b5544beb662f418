"""Clean scraped news text into one canonical form, fingerprint it, and split it into sentences.

`normalise_text` works in two passes:

1. Characters: typographic quotes, dashes and spaces are folded to ASCII, invisible and control
   characters are dropped, and Unicode compatibility forms are folded (NFKC) except where NFKC
   would change what a news reader sees (see `_compat_fold`).
2. Lines: whitespace is collapsed inside each line, blank lines become one paragraph break, and
   the scraping artefacts seen in real fragments are undone: a leading live-blog marker ("2/26"),
   a handle split over two lines ("@" / "nato"), promo lines pointing at a live blog, trailing
   "*** / Read more at ..." blocks, and photo captions repeated on consecutive lines.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

from core.markers import FragmentMarker, parse_marker

__all__ = [
    "FragmentMarker",
    "NormalisedText",
    "content_hash",
    "normalise_text",
    "parse_marker",
    "split_sentences",
]


@dataclass(frozen=True)
class NormalisedText:
    """Normalised text, the fragment marker taken off its first line, labels of what was removed,
    and :func:`content_hash` of the text (from the lines' folded forms, which the repeated-line
    rule computes anyway: the same value, without folding the text a second time)."""

    text: str
    marker: FragmentMarker | None
    removed: tuple[str, ...]
    content_hash: str = field(compare=False)


# Labels reported in NormalisedText.removed, in the order the rules run.
MARKER = "marker"
LINK_LINE = "link_line"
BOILERPLATE = "boilerplate"
REPEATED_LINE = "repeated_line"

# --- character pass -------------------------------------------------------------------------------

# Curly and low-9 single quotes, prime, modifier-letter apostrophe, and the acute accent that some
# sites type as an apostrophe ("alliance\u00b4s"); NFKC would turn that one into a space and a
# combining accent.
_SINGLE_QUOTES = "\u2018\u2019\u201a\u201b\u2032\u02bc\u00b4"
# Curly and low-9 double quotes and double prime. Guillemets are left alone: French and German
# spacing around them would come out wrong.
_DOUBLE_QUOTES = "\u201c\u201d\u201e\u201f\u2033"
# Hyphen, non-breaking hyphen, figure dash, en dash, minus and their small forms. In news text an
# en dash is either spaced (an aside: "a smaller \u2013 but significant \u2013 crossing") or a range
# ("2014\u20132022"); "-" reads the same in both and makes re-typed copies of a caption compare equal.
_HYPHENS = "\u2010\u2011\u2012\u2013\u2212\ufe58\ufe63"
# Em dash and horizontal bar always mark an aside, so they become a spaced hyphen: turning
# "word—word" into "word-word" would read as a compound.
_EM_DASHES = "\u2014\u2015"
# Every Unicode space separator except " " itself (NBSP, thin, narrow no-break, ideographic, ...).
_SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
# Invisible characters that only break matching: zero-width space, word joiner, BOM, soft hyphen,
# invisible maths operators, bidi marks/embeddings/isolates. ZWJ/ZWNJ (U+200D/U+200C) are kept on
# purpose: they are spelling in Persian and Indic scripts and glue emoji sequences together.
_INVISIBLE = (
    "\u200b\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063\u2064\u061c"
    "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _char_map() -> dict[str, str]:
    mapping: dict[str, str] = {}
    # C0/C1 control characters go; the line structure is rebuilt from "\n" alone.
    for code in [*range(0x20), *range(0x7F, 0xA0)]:
        mapping[chr(code)] = ""
    mapping["\t"] = " "
    for ch in "\r\v\f\x85\u2028":  # every other line-ending character ("\r\n" is handled first)
        mapping[ch] = "\n"
    mapping["\u2029"] = "\n\n"  # PARAGRAPH SEPARATOR
    mapping.update(dict.fromkeys(_SINGLE_QUOTES, "'"))
    mapping.update(dict.fromkeys(_DOUBLE_QUOTES, '"'))
    mapping.update(dict.fromkeys(_HYPHENS, "-"))
    mapping.update(dict.fromkeys(_EM_DASHES, " - "))
    mapping.update(dict.fromkeys(_SPACES, " "))
    mapping.update(dict.fromkeys(_INVISIBLE, ""))
    del mapping["\n"]
    return mapping


_CHAR_MAP = _char_map()
# A regex finds the few characters to replace; str.translate with a dict would do a Python-level
# lookup for every character of every fragment, which was 3x slower on the real samples.
_CHAR_RE = re.compile("[" + "".join(re.escape(ch) for ch in sorted(_CHAR_MAP)) + "]")


def _replace_char(match: re.Match[str]) -> str:
    return _CHAR_MAP[match.group()]


# NFKC folds a superscript, subscript or vulgar fraction into plain digits, which changes the
# number a reader sees (10 to the 6th -> "106", two and a half -> "21" + FRACTION SLASH + "2"), so
# those keep their own code points.
_KEEP_COMPAT_TAGS = ("<super>", "<sub>", "<fraction>")


class _CompatFold(dict[int, str]):
    """NFKC one character at a time, computed on first sight and cached (a str.translate table)."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        folded = unicodedata.normalize("NFKC", ch)
        decomposition = unicodedata.decomposition(ch)
        # Spacing diacritics (diaeresis, cedilla, small tilde) fold to a space plus a combining
        # mark, which would glue the mark onto whatever follows; keep them as they are.
        if decomposition.startswith(_KEEP_COMPAT_TAGS) or (folded[:1] == " " and len(folded) > 1):
            folded = ch
        self[code] = folded
        return folded


_COMPAT_FOLD = _CompatFold()


def _normalise_chars(raw: str) -> str:
    text = _CHAR_RE.sub(_replace_char, raw.replace("\r\n", "\n"))
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return text
    # NFC first so that decomposed accents are single code points before the per-character fold,
    # and again afterwards because a folded character may now compose with its neighbour.
    text = unicodedata.normalize("NFC", text).translate(_COMPAT_FOLD)
    return unicodedata.normalize("NFC", text)


# --- line pass ------------------------------------------------------------------------------------

# "2/26" alone on the first line. Three digits at most on each side keeps "12/2022" (a month and a
# year) out; part <= total is checked in code. "3/22" remains ambiguous and is read as a marker.
# A line whose last token is a bare "@" or "#": the scraper broke a handle or hashtag in two.
_BROKEN_HANDLE_RE = re.compile(r"(?:^|\s)[@#]$")
_HANDLE_START_RE = re.compile(r"\w")
# A line that is only a link: a bare URL, or the anchor text of a "see our live blog" promo.
_URL_LINE_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_LIVE_BLOG_PROMO_RE = re.compile(
    r"\b(?:visit|follow|read|see|check out|go to|head to)\s+(?:our|the)\s+live ?-?blog\b", re.IGNORECASE
)
_MAX_LINK_LINE_CHARS = 240
# Lines that close a scraped page. Removed only from the end of the text, repeatedly, so that the
# same words inside an article ("He told reporters to read more at home") are left alone.
_TRAILING_BOILERPLATE_RE = re.compile(
    r"(?:[*=_~#-] ?){3,}"  # a separator rule: "***", "* * *", "----"
    r"|(?:read|see|find|discover) more\b.*"  # "Read more at DailyMail.co.uk", "Read more: ..."
    r"|click here\b.*"
    r"|follow us\b.*"
    r"|(?:sign up|subscribe)\b.{0,80}\b(?:newsletter|alerts?|updates)\b.*"
    r"|share(?: this (?:article|story))?(?: on \w.*)?:?"
    r"|(?:©|\(c\)|copyright\b).*"
    r"|all rights reserved\.?"
    r"|advertisement",
    re.IGNORECASE,
)
_MAX_BOILERPLATE_CHARS = 160

# content_hash folding: runs of anything that is not a letter or digit become one space.
_NON_WORD_RE = re.compile(r"[\W_]+")


@dataclass
class _Line:
    text: str
    paragraph_start: bool  # a blank line came before it in the input


def _split_lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    blank_before = False
    for raw_line in text.split("\n"):
        line = " ".join(raw_line.split())
        if not line:
            blank_before = True
            continue
        lines.append(_Line(line, paragraph_start=blank_before and bool(lines)))
        blank_before = False
    return lines


def _take_marker(lines: list[_Line]) -> FragmentMarker | None:
    if not lines:
        return None
    marker = parse_marker(lines[0].text)
    if marker is None:
        return None
    del lines[0]
    if lines:
        lines[0].paragraph_start = False
    return marker


def _join_broken_handles(lines: list[_Line]) -> list[_Line]:
    joined: list[_Line] = []
    for line in lines:
        previous = joined[-1] if joined else None
        if (
            previous is not None
            and not line.paragraph_start
            and _BROKEN_HANDLE_RE.search(previous.text)
            and _HANDLE_START_RE.match(line.text)
        ):
            previous.text += line.text
        else:
            joined.append(line)
    return joined


def _drop(lines: list[_Line], keep: list[bool]) -> list[_Line]:
    """Keep the flagged lines; a dropped line's paragraph break passes to the next kept line."""
    kept: list[_Line] = []
    carry_break = False
    for line, keep_it in zip(lines, keep, strict=True):
        if keep_it:
            line.paragraph_start = (line.paragraph_start or carry_break) and bool(kept)
            carry_break = False
            kept.append(line)
        else:
            carry_break = carry_break or line.paragraph_start
    return kept


def _is_link_line(line: str) -> bool:
    if len(line) > _MAX_LINK_LINE_CHARS:
        return False
    return _URL_LINE_RE.fullmatch(line) is not None or _LIVE_BLOG_PROMO_RE.search(line) is not None


def _is_trailing_boilerplate(line: str) -> bool:
    return len(line) <= _MAX_BOILERPLATE_CHARS and _TRAILING_BOILERPLATE_RE.fullmatch(line) is not None


def _fold(text: str) -> str:
    """NFKC, casefold, and every run of non-letters/digits (punctuation, symbols, spaces) -> one space."""
    return " ".join(_NON_WORD_RE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())


def normalise_text(raw: str) -> NormalisedText:
    """Return the canonical form of a scraped news fragment, its fragment marker and what was removed."""
    lines = _split_lines(_normalise_chars(raw))
    removed: list[str] = []

    marker = _take_marker(lines)
    if marker is not None:
        removed.append(MARKER)

    lines = _join_broken_handles(lines)

    keep = [not _is_link_line(line.text) for line in lines]
    if not all(keep):
        removed.append(LINK_LINE)
        lines = _drop(lines, keep)

    end = len(lines)
    while end and _is_trailing_boilerplate(lines[end - 1].text):
        end -= 1
    if end < len(lines):
        removed.append(BOILERPLATE)
        del lines[end:]

    # Scraped pages print each photo caption twice (image alt text, then the caption), often with
    # different quotes or dashes, so lines are compared by their folded form. Only a line equal
    # to the one kept just before it goes; text that merely recurs later in the article stays.
    keep = []
    kept_keys = []
    previous_key = None
    for line in lines:
        key = _fold(line.text)
        kept = not key or key != previous_key
        keep.append(kept)
        if kept and key:
            kept_keys.append(key)
        previous_key = key
    if not all(keep):
        removed.append(REPEATED_LINE)
        lines = _drop(lines, keep)

    text = "".join(("\n\n" if line.paragraph_start else "\n") + line.text for line in lines)[1:]
    # The text's fold is its lines' folds joined by a space: the line breaks between them fold to
    # one (NFKC and casefold work character by character and never compose across a line break).
    return NormalisedText(text=text.lstrip("\n"), marker=marker, removed=tuple(removed),
                          content_hash=_hash_folded(" ".join(kept_keys)))


def content_hash(text: str) -> str:
    """Fingerprint text so that re-wrapped, re-quoted or re-cased copies hash equal (hex, 32 chars).

    Folded before hashing: Unicode compatibility forms (NFKC), case (casefold), and every run of
    characters that are not letters or digits (punctuation, quotes, dashes, symbols, combining
    marks, underscores, any whitespace or line breaks) into a single space, trimmed at both ends.
    Letters keep their accents and digits are kept, so "résumé" != "resume" and "10,000" != "10000".
    """
    return _hash_folded(_fold(text))


def _hash_folded(folded: str) -> str:
    return hashlib.blake2b(folded.encode("utf-8"), digest_size=16).hexdigest()


# --- sentences ------------------------------------------------------------------------------------

# A full stop before these is never the end of a sentence: titles, "No. 5", "Jan. 6", "e.g. X".
_NEVER_FINAL = frozenset(
    {
        *("mr", "mrs", "ms", "mx", "dr", "prof", "sen", "rep", "gen", "lt", "col", "maj", "capt", "cpt"),
        *("sgt", "cpl", "adm", "cmdr", "gov", "pres", "supt", "insp", "det", "rev", "fr", "hon", "st"),
        *("mt", "ft", "no", "nos", "vs", "v", "e.g", "i.e", "cf", "approx", "fig", "figs", "vol", "pp"),
        *("p", "op", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)
# A full stop after these may end a sentence ("in the U.S. The ..."), but usually does not
# ("U.S. officials"), so they end one only when a typical sentence opener follows.
_MAYBE_FINAL = frozenset({"etc", "inc", "ltd", "co", "corp", "plc", "llc", "jr", "sr", "bros", "a.m", "p.m"})
_SENTENCE_OPENERS = frozenset(
    {
        *("a", "an", "the", "this", "that", "these", "those", "it", "its", "he", "she", "they", "we"),
        *("i", "you", "his", "her", "their", "our", "my", "there", "here", "but", "and", "so", "yet"),
        *("or", "in", "on", "at", "after", "before", "when", "while", "as", "if", "however"),
        *("meanwhile", "earlier", "later", "still", "then", "now", "last", "some", "many", "police"),
        "officials",
    }
)
_DOTTED_ACRONYM_RE = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")
_SENTENCE_END_RE = re.compile(r"[.!?]+[\"')\]]*\s+")
_OPENING_PUNCT = "\"'([\u201c\u2018\u00ab"


def _ends_sentence(before: str, punct: str, after: str) -> bool:
    opener = after.lstrip(_OPENING_PUNCT)
    first = opener[:1]
    if not first or not (first.isdigit() or (first.isalpha() and not first.islower())):
        return False
    if not punct.startswith("."):
        return True
    if punct.startswith("..."):
        return True
    token = before.rsplit(None, 1)[-1].lstrip(_OPENING_PUNCT) if before.strip() else ""
    word = token.lower()
    if word in _NEVER_FINAL or (len(token) == 1 and token.isalpha()):  # title, "No.", initial "F."
        return False
    if word in _MAYBE_FINAL or _DOTTED_ACRONYM_RE.fullmatch(token):
        next_word = re.match(r"\w+", opener)
        return next_word is not None and next_word.group().lower() in _SENTENCE_OPENERS
    return True


def split_sentences(text: str) -> list[str]:
    """Split text into sentences: every line break ends one, and so does . ! ? before a capital or digit."""
    sentences: list[str] = []
    for line in text.split("\n"):
        start = 0
        for match in _SENTENCE_END_RE.finditer(line):
            punct = match.group().rstrip()
            if _ends_sentence(line[start : match.start()], punct, line[match.end() :]):
                sentences.append(line[start : match.end()].strip())
                start = match.end()
        rest = line[start:].strip()
        if rest:
            sentences.append(rest)
    return [sentence for sentence in sentences if sentence]
