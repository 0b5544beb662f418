"""Geoparsing quality and speed against a gold set (default: the shared LGL subset).

    python bench/eval_geoparsing.py [--data PATH] [--entities gazetteer|spacy|none]

Prints toponym recall and precision (a predicted mention counts when it overlaps a gold toponym; exact
offsets are reported too), Acc@161km and mean/median error over recognised toponyms that have gold
coordinates, and milliseconds per KB of text for resolution (and for entity tagging, when used).

The predicted toponyms are the places' mentions and the nationalities' (demonyms, "Sudanese" for
Sudan, at the country's point): LGL's gold marks demonyms as toponyms, while the pipeline reports
them apart from places (``PlaceResult.nationalities``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.text.entities import EntityTagger
from pipelines.text.places import Nationality, Place, PlaceResolver, distance_km

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "eval" / "geoparsing" / "lgl_subset.jsonl"


def _described(p: Place | Nationality) -> str:
    """A predicted place for the error list: name, then feature and admin1 (a nationality's: "demonym")."""
    if isinstance(p, Nationality):
        return f"{p.name} (demonym, {p.country_code})"
    return f"{p.name} ({p.feature}, {p.admin1}, {p.country_code})"


def main(argv: list[str] | None = None) -> None:
    """Run the evaluation and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSONL with text and toponyms")
    parser.add_argument("--entities", choices=["gazetteer", "spacy", "none"], default="gazetteer",
                        help="entity mode whose people/organisations are kept out of the places")
    parser.add_argument("--no-demonyms", action="store_true", help="do not read 'Sudanese' as Sudan")
    parser.add_argument("--errors", action="store_true", help="list misses, false alarms and far picks")
    args = parser.parse_args(argv)

    docs = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    t0 = time.perf_counter()
    tagger = EntityTagger(mode=args.entities) if args.entities != "none" else None
    resolver = PlaceResolver(demonyms=not args.no_demonyms)
    print(f"loaded in {time.perf_counter() - t0:.2f} s; {len(docs)} documents, "
          f"{sum(len(d['toponyms']) for d in docs)} gold toponyms")

    kb = sum(len(d["text"].encode("utf-8")) for d in docs) / 1024
    tag_s = resolve_s = 0.0
    gold_n = gold_hit = gold_exact = pred_n = pred_hit = 0
    errors: list[float] = []
    report: list[str] = []
    for doc in docs:
        text = doc["text"]
        t = time.perf_counter()
        entities = tagger.tag(text, "en") if tagger else []
        t2 = time.perf_counter()
        result = resolver.resolve(text, "en", entities)
        resolve_s += time.perf_counter() - t2
        tag_s += t2 - t
        predicted = [(m.start, m.end, p) for p in (*result.places, *result.nationalities) for m in p.mentions]
        gold = doc["toponyms"]
        gold_n += len(gold)
        pred_n += len(predicted)
        pred_hit += sum(any(s < g["end"] and g["start"] < e for g in gold) for s, e, _ in predicted)
        for g in gold:
            hits = [(s, e, p) for s, e, p in predicted if s < g["end"] and g["start"] < e]
            if not hits:
                report.append(f"MISS  {g['phrase']!r} ({g.get('gaz_name')}, {g.get('admin1')}, {g.get('country')})")
                continue
            gold_hit += 1
            gold_exact += any(s == g["start"] and e == g["end"] for s, e, _ in hits)
            if g.get("lat") is None or g.get("geonameid") is None:
                continue
            place = hits[0][2]
            km = distance_km(place.lat, place.lon, g["lat"], g["lon"])
            errors.append(km)
            if km >= 161:
                report.append(f"FAR   {g['phrase']!r}: got {_described(place)} "
                              f"{km:.0f} km; gold {g.get('gaz_name')} ({g.get('admin1')}, {g.get('country')})")
        for s, e, p in predicted:
            if not any(s < g["end"] and g["start"] < e for g in gold):
                report.append(f"EXTRA {text[s:e]!r} -> {_described(p)}")

    recall = gold_hit / gold_n if gold_n else 0.0
    precision = pred_hit / pred_n if pred_n else 0.0
    print(f"toponym recall     {recall:.3f}  ({gold_hit}/{gold_n}; exact offsets {gold_exact / gold_n:.3f})")
    print(f"toponym precision  {precision:.3f}  ({pred_hit}/{pred_n})")
    print(f"toponym F1         {2 * recall * precision / (recall + precision or 1):.3f}")
    if errors:
        acc = sum(km < 161 for km in errors) / len(errors)
        print(f"Acc@161km          {acc:.3f}  (over {len(errors)} recognised toponyms with gold coordinates)")
        print(f"error km           mean {statistics.mean(errors):.0f}  median {statistics.median(errors):.1f}")
    print(f"speed              resolve {resolve_s * 1000 / kb:.2f} ms/KB"
          + (f", entities ({args.entities}) {tag_s * 1000 / kb:.2f} ms/KB" if tagger else "")
          + f"  ({kb:.0f} KB)")
    if args.errors:
        print("\n".join(sorted(report)))


if __name__ == "__main__":
    main()
