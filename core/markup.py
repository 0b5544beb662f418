"""HTML to plain text for connectors: readable text with the paragraph structure kept.

Block elements (p, div, li, headings, blockquote, ...) become paragraphs separated by a blank
line, ``<br>`` becomes a line break, scripts, styles and other non-content elements are dropped,
and character references are decoded. Whitespace inside a paragraph is collapsed, except in
``<pre>``. The output is what `pipelines.text.normalise.normalise_text` expects as raw text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text", "looks_like_html"]

# Elements that start and end a paragraph of their own.
_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "dd", "details", "dialog", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr", "ul",
})
# Elements whose content is never article text.
_SKIP = frozenset({"script", "style", "noscript", "template", "head", "title", "svg", "iframe", "object", "button"})

_TAG_RE = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9-]*)(?:\s[^<>]*)?/?>|</[a-zA-Z][a-zA-Z0-9-]*\s*>|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);")


def looks_like_html(text: str) -> bool:
    """True if the text contains at least two HTML tags or character references (one may be prose)."""
    matches = _TAG_RE.finditer(text)
    return next(matches, None) is not None and next(matches, None) is not None


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[list[str]] = [[]]  # lines of the current paragraph, as text pieces
        self._line: list[str] = []
        self._skip_depth = 0
        self._pre_depth = 0

    # -- structure
    def _end_line(self) -> None:
        text = "".join(self._line)
        if self._pre_depth == 0:
            text = " ".join(text.split())
        if text.strip():
            self.paragraphs[-1].append(text)
        self._line = []

    def _end_paragraph(self) -> None:
        self._end_line()
        if self.paragraphs[-1]:
            self.paragraphs.append([])

    # -- HTMLParser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip_depth += 1
        elif tag == "br":
            self._end_line()
        elif tag == "li":  # list items are lines of the list's paragraph
            self._end_line()
            self._line.append("- ")
        elif tag in _BLOCK:
            self._end_paragraph()
            if tag == "pre":
                self._pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._end_line()
        elif tag in _BLOCK:
            self._end_paragraph()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK:
            self._end_paragraph()
            if tag == "pre":
                self._pre_depth = max(0, self._pre_depth - 1)
        elif tag == "li":
            self._end_line()
        elif tag in ("td", "th"):
            self._line.append(" ")

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre_depth:
            lines = data.split("\n")
            for i, piece in enumerate(lines):
                if i:
                    self._end_line()
                self._line.append(piece)
        else:
            self._line.append(data)

    def text(self) -> str:
        self._end_paragraph()
        return "\n\n".join("\n".join(p) for p in self.paragraphs if p)


def html_to_text(html: str) -> str:
    """Plain text of an HTML document or fragment: paragraphs separated by a blank line, <br> a newline."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return collector.text()
