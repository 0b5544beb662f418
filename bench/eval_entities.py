"""Entity quality on a held-out NER set and on the hand-written gold fixtures, and speed per mode.

    python bench/eval_entities.py [--conll PATH] [--modes gazetteer,spacy] [--data DIR] [--gold GLOB]

First, on the shared CoNLL-2003 dev subset (../shared/eval/ner/, measuring only: nothing from it goes
into gazetteers, rules or tests), per-type precision, recall and F1 over PER/ORG/LOC, exact span and
overlap, with people/organisations from EntityTagger and LOC from PlaceResolver's place mentions;
then milliseconds per KB for tagging plus place resolution. Second, for each
tests/fixtures/entities_gold_<sample>.json, person/organisation P/R/F1 at document level (one entity
counts once) and ms/KB per mode.
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
DEFAULT_CONLL = ROOT.parent / "shared" / "eval" / "ner" / "conll2003_dev.jsonl"
SCORED_TYPES = ("person", "org")
CONLL_TYPES = ("PER", "ORG", "LOC")
_CONLL_OF = {"person": "PER", "org": "ORG"}

Span = tuple[int, int, str]


def predicted_spans(text: str, tagger: EntityTagger, resolver: PlaceResolver) -> list[Span]:
    """(start, end, CoNLL type) of every person/organisation mention and every place mention."""
    entities = tagger.tag(text, "en")
    spans = [(m.start, m.end, _CONLL_OF[e.type]) for e in entities if e.type in _CONLL_OF for m in e.mentions]
    places = resolver.resolve(text, "en", entities)
    # Places only: a demonym ("French") is a nationality (places.nationalities), not a toponym; CoNLL
    # annotates it MISC, which this scoring leaves out.
    spans += [(m.start, m.end, "LOC") for p in places.places for m in p.mentions]
    return spans


def prf(tp_p: int, n_pred: int, tp_g: int, n_gold: int) -> tuple[float, float, float]:
    """Precision, recall, F1 from matched predictions and matched gold items."""
    p = tp_p / n_pred if n_pred else 0.0
    r = tp_g / n_gold if n_gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def conll_scores(docs: list[tuple[list[Span], list[Span]]]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """{"exact"|"overlap": {type|"ALL": (P, R, F1)}} over (predicted, gold) span lists per document."""
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    for how in ("exact", "overlap"):
        out[how] = {}
        totals = [0, 0, 0, 0]
        for etype in CONLL_TYPES:
            counts = [0, 0, 0, 0]  # matched predictions, predictions, matched gold, gold
            for pred, gold in docs:
                p = [s for s in pred if s[2] == etype]
                g = [s for s in gold if s[2] == etype]
                if how == "exact":
                    gs, ps = set(g), set(p)
                    counts[0] += sum(s in gs for s in p)
                    counts[2] += sum(s in ps for s in g)
                else:
                    counts[0] += sum(any(a < d and c < b for c, d, _ in g) for a, b, _ in p)
                    counts[2] += sum(any(a < d and c < b for a, b, _ in p) for c, d, _ in g)
                counts[1] += len(p)
                counts[3] += len(g)
            out[how][etype] = prf(*counts)
            totals = [t + c for t, c in zip(totals, counts)]
        out[how]["ALL"] = prf(*totals)
    return out


def run_conll(path: Path, modes: list[str], resolver: PlaceResolver, show_errors: int = 0) -> None:
    """Print per-type P/R/F1 (exact, overlap) and ms/KB per mode on a CoNLL-style JSONL file."""
    docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kb = sum(len(d["text"].encode("utf-8")) for d in docs) / 1024
    print(f"{path.name}: {len(docs)} documents, {kb:.0f} KB")
    for mode in modes:
        tagger = EntityTagger(mode=mode)
        pairs = []
        t = time.process_time()  # CPU time: other work on a shared machine does not count
        for d in docs:
            pred = predicted_spans(d["text"], tagger, resolver)
            gold = [(g["start"], g["end"], g["type"]) for g in d["entities"] if g["type"] in CONLL_TYPES]
            pairs.append((pred, gold))
        ms_kb = (time.process_time() - t) * 1000 / kb
        for how, table in conll_scores(pairs).items():
            cells = "  ".join(f"{k} {p:.3f}/{r:.3f}/{f:.3f}" for k, (p, r, f) in table.items())
            print(f"[{mode}] {how:7s} P/R/F1  {cells}")
        print(f"[{mode}] entities+places {ms_kb:.2f} ms/KB")
        if show_errors:
            errs = []
            for d, (pred, gold) in zip(docs, pairs):
                text, gs, ps = d["text"], set(gold), set(pred)
                errs += [f"FP {text[a:b]!r} {t_}" for a, b, t_ in pred if (a, b, t_) not in gs]
                errs += [f"FN {text[a:b]!r} {t_}" for a, b, t_ in gold if (a, b, t_) not in ps]
            print("\n".join(errs[:show_errors]))


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
    parser.add_argument("--conll", type=Path, default=DEFAULT_CONLL, help="CoNLL-style JSONL (held out)")
    parser.add_argument("--modes", default="gazetteer,spacy", help="comma-separated entity modes")
    parser.add_argument("--errors", type=int, default=0, help="print this many CoNLL errors per mode")
    parser.add_argument("--conll-only", action="store_true", help="skip the fixture evaluation")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    resolver = PlaceResolver()
    if args.conll.exists():
        run_conll(args.conll, modes, resolver, args.errors)
    else:
        print(f"{args.conll} not present: CoNLL figures skipped")
    if args.conll_only:
        return

    gold_files = sorted(Path(args.gold).parent.glob(Path(args.gold).name))
    cases = []
    for path in gold_files:
        fixture = json.loads(path.read_text(encoding="utf-8"))
        cases.append((fixture["sample"], (args.data / fixture["sample"]).read_text(encoding="utf-8"),
                      fixture["entities"]))
    kb = sum(len(text.encode("utf-8")) for _, text, _ in cases) / 1024

    for mode in modes:
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
