"""Places and entities beyond English, on the self-written multilingual fixtures.

    python bench/eval_multilingual.py [--data DIR] [--languages en,fr,de,es] [--errors]

Reads tests/fixtures/multilingual/<lang>.jsonl (format: tests/fixtures/multilingual/README.md), runs
EntityTagger (gazetteer mode) and PlaceResolver on each article with its language, and prints per
language, at document level (a place or entity counts once per article):
- places: precision/recall/F1 of place ids (a gold place without an id in our table counts as found
  when a predicted place overlaps one of its mentions); demonyms (nationalities) are left out;
- entities: people and organisations, matched by watchlist id or by name (any gold form);
- milliseconds per KB of text for tagging plus resolution (CPU time, single process, the fastest of
  --repeat passes, after one untimed article per language: a worker builds a language's name tables
  on its first text of it).
The fixtures were written by the project itself (see bench/RESULTS.md): these are not independent
figures like the LGL and CoNLL ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.text.entities import Entity, EntityTagger
from pipelines.text.gazetteer import name_key, tokenize
from pipelines.text.places import PlaceResolver, PlaceResult

DEFAULT_DATA = ROOT / "tests" / "fixtures" / "multilingual"


def _overlaps(spans: list[list[int]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


def score_places(doc: dict[str, Any], result: PlaceResult) -> tuple[int, int, int, int, list[str]]:
    """(matched predictions, predictions, matched gold, gold, error lines) for one article."""
    predicted = list(result.places)  # demonyms are result.nationalities, left out
    gold = doc["places"]
    gold_ids = {g["id"] for g in gold if g["id"]}
    unresolved = [m for g in gold if not g["id"] for m in g["mentions"]]
    errors: list[str] = []
    tp_pred = 0
    for p in predicted:
        if p.id in gold_ids or any(_overlaps(unresolved, m.start, m.end) for m in p.mentions):
            tp_pred += 1
        else:
            errors.append(f"EXTRA {doc['id']}: {p.mentions[0].text!r} -> {p.name} ({p.feature}, {p.country_code}, {p.id})")
    tp_gold = 0
    for g in gold:
        hit = g["id"] in {p.id for p in predicted} if g["id"] else any(
            _overlaps(g["mentions"], m.start, m.end) for p in predicted for m in p.mentions)
        tp_gold += hit
        if not hit:
            errors.append(f"MISS  {doc['id']}: {g['forms'][0]!r} ({g['name']}, {g['id']})")
    return tp_pred, len(predicted), tp_gold, len(gold), errors


def score_entities(doc: dict[str, Any], entities: list[Entity]) -> tuple[int, int, int, int, list[str]]:
    """(matched predictions, predictions, matched gold, gold, error lines): people and organisations."""
    predicted = [e for e in entities if e.type in ("person", "org")]
    gold = doc["entities"]

    def same(e: Entity, g: dict[str, Any]) -> bool:
        if g["id"] and e.id == g["id"]:
            return True
        forms = {name_key(f) for f in g["forms"]}
        return name_key(e.name) in forms or any(name_key(m.text) in forms for m in e.mentions)

    errors = [f"EXTRA {doc['id']}: {e.name!r} ({e.type}, {e.source})" for e in predicted
              if not any(same(e, g) for g in gold)]
    misses = [g for g in gold if not any(same(e, g) for e in predicted)]
    errors += [f"MISS  {doc['id']}: {g['name']!r} ({g['type']})" for g in misses]
    tp_pred = sum(any(same(e, g) for g in gold) for e in predicted)
    return tp_pred, len(predicted), len(gold) - len(misses), len(gold), errors


def prf(tp_p: int, n_p: int, tp_g: int, n_g: int) -> tuple[float, float, float]:
    """Precision, recall, F1."""
    p = tp_p / n_p if n_p else 0.0
    r = tp_g / n_g if n_g else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _cpu(docs: list[dict[str, Any]], tagger: EntityTagger, resolver: PlaceResolver) -> float:
    """CPU seconds to tag and resolve every article once, tokenizing once per article as enrich does."""
    t = time.process_time()
    for doc in docs:
        tokens = tokenize(doc["text"])
        resolver.resolve(doc["text"], doc["language"], tagger.tag(doc["text"], doc["language"], tokens), tokens)
    return time.process_time() - t


def main(argv: list[str] | None = None) -> None:
    """Run the evaluation and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--languages", default="en,fr,de,es")
    parser.add_argument("--errors", action="store_true", help="list misses and false alarms")
    parser.add_argument("--repeat", type=int, default=5, help="timing passes per language (the fastest counts)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    resolver = PlaceResolver()
    tagger = EntityTagger(places=resolver.place_keys())
    print(f"loaded in {time.perf_counter() - t0:.1f} s")
    print(f"{'lang':<5}{'docs':>5}{'KB':>6}   {'place P':>7}{'R':>7}{'F1':>7}   {'entity P':>8}{'R':>7}{'F1':>7}   ms/KB")
    report: list[str] = []
    for lang in args.languages.split(","):
        path = args.data / f"{lang}.jsonl"
        docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        places = [0, 0, 0, 0]
        ents = [0, 0, 0, 0]
        for doc in docs[:1]:  # a worker builds a language's tables on its first text of it: not timed
            resolver.resolve(doc["text"], doc["language"], tagger.tag(doc["text"], doc["language"]))
        cpu = min(_cpu(docs, tagger, resolver) for _ in range(args.repeat))  # the machine is shared
        for doc in docs:
            text = doc["text"]
            entities = tagger.tag(text, doc["language"])
            result = resolver.resolve(text, doc["language"], entities)
            *counts, errors = score_places(doc, result)
            places = [a + b for a, b in zip(places, counts)]
            report += errors
            *counts, errors = score_entities(doc, entities)
            ents = [a + b for a, b in zip(ents, counts)]
            report += errors
        kb = sum(len(d["text"].encode("utf-8")) for d in docs) / 1024
        pp, pr, pf = prf(*places)
        ep, er, ef = prf(*ents)
        print(f"{lang:<5}{len(docs):>5}{kb:>6.1f}   {pp:>7.3f}{pr:>7.3f}{pf:>7.3f}   {ep:>8.3f}{er:>7.3f}{ef:>7.3f}"
              f"   {cpu * 1000 / kb:.2f}")
    if args.errors:
        print("\n".join(report))


if __name__ == "__main__":
    main()
