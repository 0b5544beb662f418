"""Build pipelines/data/word_prior.tsv.gz: the shipped prior behind story IDF weights.

    .venv/bin/python bench/build_idf_prior.py [--words 60000]

Writes the ``--words`` most frequent English words of ``wordfreq`` (pip install wordfreq==3.1.1,
only needed to rebuild this file) with their frequency per word of running text, one
``word<TAB>frequency`` a line. pipelines/stages/stories/clustering.py turns a frequency into the
chance that a ~500-word article contains the word, which is the document frequency a new
deployment starts from (names included: wordfreq counts "nato", "finland", "putin"), then blends it
with the document frequencies it counts itself.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "pipelines" / "data" / "word_prior.tsv.gz"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--words", type=int, default=60_000)
    args = parser.parse_args(argv)
    try:
        import wordfreq
    except ImportError:
        sys.exit("pip install wordfreq==3.1.1 (needed only to rebuild the prior)")
    lines = []
    for word in wordfreq.top_n_list("en", args.words):
        if word.isalnum() and word.isascii():
            lines.append(f"{word}\t{wordfreq.word_frequency(word, 'en'):.3g}\n")
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:  # mtime 0: the same words give the same bytes
        f.write("".join(lines).encode())
    print(f"{OUT.relative_to(ROOT)}: {len(lines)} words")


if __name__ == "__main__":
    main()
