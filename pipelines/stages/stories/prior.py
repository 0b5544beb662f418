"""The shipped word prior behind story IDF weights and rare-name checks: how often an article
contains a word before the stream has taught anything (pipelines/data/word_prior.tsv.gz, built by
bench/build_idf_prior.py). Read by clustering.py (IDF) and crosslingual.py (rare names)."""

from __future__ import annotations

import functools
import gzip
import math

from pipelines.text.gazetteer import WORD_PRIOR_TABLE

_DOC_WORDS = 500.0  # words in a typical article: turns a word frequency into a document frequency


@functools.cache
def word_prior() -> dict[str, float]:
    """word -> frequency per running word (pipelines/data/word_prior.tsv.gz)."""
    with gzip.open(WORD_PRIOR_TABLE, "rt", encoding="utf-8") as f:
        return {w: float(v) for w, v in (line.rstrip("\n").split("\t") for line in f)}


@functools.lru_cache(maxsize=1 << 15)
def doc_freq(word: str, unseen: float) -> float:
    """The prior chance that an article contains ``word``, at least ``unseen`` (unknown words)."""
    return freq_doc_freq(word_prior().get(word, 0.0), unseen)


def freq_doc_freq(freq: float, unseen: float) -> float:
    """The chance that an article contains a word (or any of a group of words) of running-word
    frequency ``freq``, at least ``unseen``."""
    return max(unseen, 1.0 - math.exp(-freq * _DOC_WORDS))
