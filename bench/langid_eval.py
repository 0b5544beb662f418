"""Measure detect_language against the lingua gold sentences: accuracy, confusions, "und" rate and speed.

    python bench/langid_eval.py [--data PATH] [--min-confidence 0.5] [--min-letters 20] [--max-chars 1000]
    python bench/langid_eval.py --cap-study   # accuracy and time per call against max_chars on ~2 KB texts

Needs the project installed (`pip install -e .`). The data set is described in
../shared/eval/README.md (16 languages x 100 sentences, columns lang, idx, text). It is evaluation
data only: nothing in pipelines/ is tuned on its contents.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from pipelines.text.language import (
    DEFAULT_MAX_CHARS,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_MIN_LETTERS,
    DEFAULT_TRIALS,
    UNDETERMINED,
    detect_language,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "eval" / "langid" / "lingua_sentences.tsv"
CONFUSABLE_GROUPS = (("da", "nb", "sv"), ("es", "pt"))
# Cap study: each text joins this many consecutive gold sentences of one language (~2.3 KB).
STUDY_SENTENCES_PER_TEXT = 20
STUDY_CAPS = (100, 200, 300, 500, 1000, 2000, 10_000)


def load_sentences(path: Path) -> list[tuple[str, str]]:
    """Read (gold language, text) pairs from the TSV."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(row["lang"], row["text"]) for row in rows]


def run_detector(
    texts: Sequence[str], *, min_letters: int, min_confidence: float, max_chars: int,
    trials: int = DEFAULT_TRIALS,
) -> tuple[list[str], list[float]]:
    """Detect every text; return predicted codes and milliseconds per call."""
    predictions: list[str] = []
    timings_ms: list[float] = []
    for text in texts:
        start = time.perf_counter_ns()
        guess = detect_language(
            text, min_letters=min_letters, min_confidence=min_confidence, max_chars=max_chars,
            trials=trials,
        )
        timings_ms.append((time.perf_counter_ns() - start) / 1e6)
        predictions.append(guess.code)
    return predictions, timings_ms


def report(gold: Sequence[str], predicted: Sequence[str], timings_ms: Sequence[float]) -> None:
    """Print overall, per-language and confusable-group figures."""
    total = len(gold)
    correct = sum(g == p for g, p in zip(gold, predicted, strict=True))
    undetermined = sum(p == UNDETERMINED for p in predicted)
    print(f"sentences: {total}   languages: {len(set(gold))}")
    print(f"accuracy: {correct / total:.4f} ({correct}/{total})")
    print(f"und rate: {undetermined / total:.4f} ({undetermined}/{total})")
    print(f"accuracy when not und: {correct / (total - undetermined):.4f} ({correct}/{total - undetermined})")
    print(
        f"ms per call: mean {statistics.fmean(timings_ms):.2f}  p50 {statistics.median(timings_ms):.2f}"
        f"  p95 {statistics.quantiles(timings_ms, n=20)[-1]:.2f}  max {max(timings_ms):.2f}"
    )

    by_language: dict[str, Counter[str]] = defaultdict(Counter)
    for g, p in zip(gold, predicted, strict=True):
        by_language[g][p] += 1
    print("\nper language: accuracy  und  most frequent wrong answers")
    for language in sorted(by_language):
        answers = by_language[language]
        n = sum(answers.values())
        wrong = ", ".join(
            f"{code}:{count}" for code, count in answers.most_common() if code not in (language, UNDETERMINED)
        )
        print(f"  {language}  {answers[language] / n:.2f}  {answers[UNDETERMINED]:3d}  {wrong[:60]}")

    print("\nconfusable groups: accuracy on the group's sentences, and how often the answer stays in-group")
    for group in CONFUSABLE_GROUPS:
        pairs = [(g, p) for g, p in zip(gold, predicted, strict=True) if g in group]
        right = sum(g == p for g, p in pairs)
        in_group = sum(p in group for _, p in pairs)
        matrix = "  ".join(
            f"{g}->" + "/".join(f"{p}:{sum(1 for gg, pp in pairs if gg == g and pp == p)}" for p in group)
            for g in group
        )
        print(
            f"  {'/'.join(group)}: accuracy {right / len(pairs):.4f} ({right}/{len(pairs)}), "
            f"answer in group {in_group / len(pairs):.4f}   {matrix}"
        )


def cap_study(sentences: Sequence[tuple[str, str]], *, min_letters: int, min_confidence: float,
              trials: int = DEFAULT_TRIALS) -> None:
    """Accuracy and speed against max_chars, on texts made of consecutive gold sentences."""
    by_language: dict[str, list[str]] = defaultdict(list)
    for language, text in sentences:
        by_language[language].append(text)
    gold: list[str] = []
    texts: list[str] = []
    for language, items in sorted(by_language.items()):
        # One text per starting sentence, wrapping around: 100 texts per language, ~2.3 KB each.
        for start in range(len(items)):
            window = [items[(start + k) % len(items)] for k in range(STUDY_SENTENCES_PER_TEXT)]
            gold.append(language)
            texts.append(" ".join(window))
    print(f"cap study: {len(texts)} texts, mean {statistics.fmean(map(len, texts)):.0f} chars")
    print("  max_chars  accuracy  und    da/nb/sv  es/pt   ms/call")
    for cap in STUDY_CAPS:
        predicted, timings_ms = run_detector(
            texts, min_letters=min_letters, min_confidence=min_confidence, max_chars=cap, trials=trials
        )
        accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
        und = sum(p == UNDETERMINED for p in predicted) / len(gold)
        groups = []
        for group in CONFUSABLE_GROUPS:
            pairs = [(g, p) for g, p in zip(gold, predicted, strict=True) if g in group]
            groups.append(sum(g == p for g, p in pairs) / len(pairs))
        print(
            f"  {cap:9d}  {accuracy:.4f}    {und:.3f}  {groups[0]:.4f}    {groups[1]:.4f}  "
            f"{statistics.fmean(timings_ms):.2f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, run the evaluation and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="TSV with lang, idx, text columns")
    parser.add_argument("--min-letters", type=int, default=DEFAULT_MIN_LETTERS)
    parser.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE)
    parser.add_argument("--max-chars", type=int, default=DEFAULT_MAX_CHARS)
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS, help="langdetect random walks per call")
    parser.add_argument("--cap-study", action="store_true", help="also sweep max_chars on ~2 KB texts")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file; pass the path to lingua_sentences.tsv")

    sentences = load_sentences(args.data)
    detect_language("warm-up: load the language profiles before timing anything")
    print(
        f"detect_language(min_letters={args.min_letters}, min_confidence={args.min_confidence}, "
        f"max_chars={args.max_chars}, trials={args.trials}) on {args.data.name}"
    )
    predicted, timings_ms = run_detector(
        [text for _, text in sentences],
        min_letters=args.min_letters,
        min_confidence=args.min_confidence,
        max_chars=args.max_chars,
        trials=args.trials,
    )
    report([language for language, _ in sentences], predicted, timings_ms)
    if args.cap_study:
        print()
        cap_study(sentences, min_letters=args.min_letters, min_confidence=args.min_confidence, trials=args.trials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
