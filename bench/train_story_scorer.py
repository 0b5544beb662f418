"""Fit the story scorer (pipelines/data/story_scorer.json) on generated gold pairs, and choose
the join threshold on held-out seeds.

    .venv/bin/python bench/train_story_scorer.py [--seeds 3 4 5] [--held-out 6 8 9] [--c 10] [--towns]

Replays bench/story_streams.py ``training_stream()`` (tennis matches, regional elections,
earnings, earthquakes, court rulings, three events over three days, local events with stock quotes,
and with ``--towns``, as the shipped scorer is fitted, unrelated local incidents in one town a day or
two apart: none of the evaluation stream's topics), each seed twice: as templated copy and as varied copy
(``Varied``: a one-line flash to a long feature, reworded, bystander names, reports up to two days
late; what real multi-outlet reporting has and templates lack), through gazetteer enrichment and the
clusterer's own features, keeping the *gold* stories: each event is scored against its gold story
so far (a positive pair) and against every other open story the inverted index retrieves for it
(negatives), exactly as ``choose_story`` would see them. A logistic regression with L2 penalty
``--c`` (Newton's method, numpy) is fitted on those pairs and written with its features, so the
file states what it means.

Then the threshold: the ``--held-out`` seeds (varied copy; never fitted on) are clustered by
:class:`StoryClusterer` with the new coefficients at each of :data:`THRESHOLDS`, and the one with
the best mean pairwise F1 is written to the file as ``join_threshold`` (templated copy is left out
of this choice: its tennis draw repeats pairs of players, rematches no threshold tells apart, which
caps its precision near 0.7 at every threshold); ``pipeline.stories
.join_threshold`` (core/settings.py, config/newswire.yaml) ships that value
(tests/pipelines/stages/test_stories_scorer.py checks they agree).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import orjson

from bench.eval_stories import as_events, pairwise
from bench.story_streams import Varied, training_stream
from core.settings import StorySettings
from pipelines.stages.stories.clustering import (
    FEATURES,
    Posting,
    Rarity,
    Scorer,
    StoryClusterer,
    StoryInput,
    StoryState,
    evidence,
    file_posting,
    index_keys,
    rank_candidates,
    story_features,
    vectors,
)
from pipelines.stages.stories.transform import story_time_s

OUT = ROOT / "pipelines" / "data" / "story_scorer.json"
THRESHOLDS = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
Stream = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # gold rows, enriched events


def stream(seed: int, varied: bool, towns: bool = False) -> Stream:
    """``training_stream(seed)`` (varied or templated copy; ``towns``: with same-town distractors)
    with its enriched events."""
    rows = training_stream(seed, Varied() if varied else None, towns=towns)
    return rows, as_events(rows, enrich=True)


def _ts(event: dict[str, Any]) -> float:
    return story_time_s(event)  # what the stage scores on (a date-only report: its day's noon)


def pairs(data: Stream, settings: StorySettings) -> tuple[list[tuple[float, ...]], list[int]]:
    rows, events = data
    rarity = Rarity(prior_docs=settings.prior_docs)
    gold: dict[str, StoryState] = {}
    index: dict[str, tuple[Posting, ...]] = {}
    xs, ys = [], []
    for row, event in zip(rows, events, strict=True):
        ts = _ts(event)
        item = StoryInput.from_event(event, ts)
        features = story_features(item, settings)
        rarity.observe(features.terms)
        vecs = vectors(features, rarity)
        keys = index_keys(features, settings)
        hits: dict[str, float] = {}
        for k, w in keys.items():
            for sid, seen in index.get(k, ()):
                if seen >= ts - settings.max_gap_s:
                    hits[sid] = hits.get(sid, 0.0) + w
        for sid in set(rank_candidates(hits, settings)) | ({row["event"]} & gold.keys()):
            xs.append(evidence(features, vecs, ts, gold[sid]))
            ys.append(int(sid == row["event"]))
        story = gold.setdefault(row["event"], StoryState(row["event"], ts, ts))
        story.add(item, features, vecs, settings)
        for k in keys:
            index[k] = file_posting(index.get(k, ()), row["event"], ts, settings)
    return xs, ys


def fit(x: np.ndarray, y: np.ndarray, c: float, iters: int = 50) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression by Newton's method (bias not penalised)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    penalty = np.eye(xb.shape[1]) / c
    penalty[-1, -1] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-xb @ w))
        grad = xb.T @ (p - y) + penalty @ w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def held_out_f1(data: Stream, scorer: Scorer, settings: StorySettings) -> tuple[float, float, float]:
    """Pairwise P, R, F1 of :class:`StoryClusterer` (late merges followed) with ``scorer``."""
    rows, events = data
    clusterer = StoryClusterer(settings, scorer=scorer)
    pred = [clusterer.assign(StoryInput.from_event(e, _ts(e))).story_id for e in events]
    return pairwise([r["event"] for r in rows], [clusterer.root(p) for p in pred])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--held-out", type=int, nargs="+", default=[6, 8, 9])
    parser.add_argument("--c", type=float, default=10.0)
    parser.add_argument("--towns", action="store_true", help="fit and choose the threshold on training_stream "
                        "with its same-town distractors (unrelated local events in one town a day or two apart)")
    args = parser.parse_args(argv)
    settings = StorySettings()
    xs: list[tuple[float, ...]] = []
    ys: list[int] = []
    for seed in args.seeds:
        for varied in (False, True):
            x, y = pairs(stream(seed, varied, args.towns), settings)
            xs += x
            ys += y
    x_arr, y_arr = np.array(xs), np.array(ys, dtype=float)
    weights, bias = fit(x_arr, y_arr, args.c)
    print(f"pairs {len(ys)} (positive {int(y_arr.sum())})")
    for name, w in zip(FEATURES, weights, strict=True):
        print(f"  {name:14s} {w:+.3f}")
    print(f"  bias           {bias:+.3f}")
    scorer = Scorer(tuple(round(float(w), 4) for w in weights), round(bias, 4))
    held = {f"varied-{seed}": stream(seed, True, args.towns) for seed in args.held_out}
    best = (-1.0, settings.join_threshold)
    for threshold in THRESHOLDS:
        at = dataclasses.replace(settings, join_threshold=threshold)
        scores = {name: held_out_f1(data, scorer, at) for name, data in held.items()}
        mean_f1 = float(np.mean([f for _, _, f in scores.values()]))
        print(f"held out, join_threshold {threshold:.2f}: mean pairwise F1 {mean_f1:.3f}  "
              + "  ".join(f"{n} {p:.2f}/{r:.2f}" for n, (p, r, _) in scores.items()))
        best = max(best, (mean_f1, threshold))
    print(f"join_threshold {best[1]} (held-out mean pairwise F1 {best[0]:.3f})")
    OUT.write_bytes(orjson.dumps({
        "features": list(FEATURES), "weights": list(scorer.weights), "bias": scorer.bias,
        "join_threshold": best[1],
        "trained_on": (f"bench/story_streams.py training_stream seeds {args.seeds}"
                       f"{' with same-town distractors' if args.towns else ''}, templated and varied copy, "
                       f"{len(ys)} pairs, L2 C={args.c}; join_threshold: best mean pairwise F1 "
                       f"({best[0]:.3f}) on held-out seeds {args.held_out}, varied copy"),
    }, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
