"""Entity quality against the hand-written gold fixtures, and speed per mode.

    python bench/eval_entities.py [--data DIR_OF_SAMPLES] [--gold GLOB] [--repeat N]

For each tests/fixtures/entities_gold_<sample>.json, tags the sample text in both modes and prints
person/organisation precision, recall and F1 (document level: one entity counts once), then
milliseconds per KB for each mode and for place resolution.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.text.entities import Entity, EntityTagger
from pipelines.text.gazetteer import name_key
from pipelines.text.places import PlaceResolver

DEFAULT_SAMPLES = ROOT.parent / "shared" / "samples"
SCORED_TYPES = ("person", "org")


def score(predicted: list[Entity], gold: list[dict]) -> tuple[int, int, int, list[str], list[str]]:
    """(true positives, predicted, gold, false positives, misses) for person/org entities."""
    gold_keys = [(g["type"], {name_key(n) for n in [g["name"], *g.get("aliases", [])]}) for g in gold
                 if g["type"] in SCORED_TYPES]
    preds = [e for e in predicted if e.type in SCORED_TYPES]
    matched: set[int] = set()
    false_pos = []
    for e in preds:
        names = {name_key(e.name)} | {name_key(m.text) for m in e.mentions}
        hit = next((i for i, (t, keys) in enumerate(gold_keys) if t == e.type and names & keys), None)
        if hit is None:
            false_pos.append(f"{e.name} ({e.type}, {e.source})")
        else:
            matched.add(hit)
    misses = [g["name"] for i, g in enumerate(g for g in gold if g["type"] in SCORED_TYPES) if i not in matched]
    tp = len(preds) - len(false_pos)
    return tp, len(preds), len(gold_keys), false_pos, misses


def main(argv: list[str] | None = None) -> None:
    """Run the evaluation and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_SAMPLES, help="folder holding the sample texts")
    parser.add_argument("--gold", default=str(ROOT / "tests" / "fixtures" / "entities_gold_*.json"))
    parser.add_argument("--repeat", type=int, default=20, help="timing repetitions")
    args = parser.parse_args(argv)

    gold_files = sorted(Path(args.gold).parent.glob(Path(args.gold).name))
    cases = []
    for path in gold_files:
        fixture = json.loads(path.read_text(encoding="utf-8"))
        cases.append((fixture["sample"], (args.data / fixture["sample"]).read_text(encoding="utf-8"),
                      fixture["entities"]))
    kb = sum(len(text.encode("utf-8")) for _, text, _ in cases) / 1024

    for mode in ("gazetteer", "spacy"):
        t0 = time.perf_counter()
        tagger = EntityTagger(mode=mode)
        load_s = time.perf_counter() - t0
        tp = n_pred = n_gold = 0
        for sample, text, gold in cases:
            a, b, c, false_pos, misses = score(tagger.tag(text, "en"), gold)
            tp, n_pred, n_gold = tp + a, n_pred + b, n_gold + c
            print(f"[{mode}] {sample}: tp {a}/{b} predicted, {c} gold; false positives {false_pos}; "
                  f"missed {misses}")
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_gold if n_gold else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        texts = [(text, "en") for _, text, _ in cases]
        t = time.perf_counter()
        for _ in range(args.repeat):
            for item in texts:
                tagger.tag(*item)
        one_by_one = (time.perf_counter() - t) * 1000 / (kb * args.repeat)
        t = time.perf_counter()
        for _ in range(args.repeat):
            tagger.tag_many(texts)
        batched = (time.perf_counter() - t) * 1000 / (kb * args.repeat)
        print(f"[{mode}] person+org  P {p:.3f}  R {r:.3f}  F1 {f1:.3f}   "
              f"speed {one_by_one:.2f} ms/KB (tag), {batched:.2f} ms/KB (tag_many); load {load_s:.1f} s")

    resolver = PlaceResolver()
    tagger = EntityTagger(mode="gazetteer")
    tagged = [(text, tagger.tag(text, "en")) for _, text, _ in cases]
    t = time.perf_counter()
    for _ in range(args.repeat):
        for text, entities in tagged:
            resolver.resolve(text, "en", entities)
    print(f"[places] speed {(time.perf_counter() - t) * 1000 / (kb * args.repeat):.2f} ms/KB "
          f"({kb:.1f} KB of samples)")


if __name__ == "__main__":
    main()
