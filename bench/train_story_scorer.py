"""Fit the story scorer (pipelines/data/story_scorer.json) on generated gold pairs.

    .venv/bin/python bench/train_story_scorer.py [--seeds 3 4 5] [--c 10]

Replays bench/story_streams.py ``training_stream()`` (tennis matches, regional elections,
earnings, earthquakes, court rulings, three events over three days, local events with stock quotes: none of
the evaluation stream's topics) through gazetteer enrichment and the clusterer's own features,
keeping the *gold* stories: each event is scored against its gold story so far (a positive pair)
and against every other open story the inverted index retrieves for it (negatives), exactly as
``pick_story`` would see them. A logistic regression with L2 penalty ``--c`` (Newton's method,
numpy) is fitted on those pairs and written with its features, so the file states what it means.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import orjson

from bench.eval_stories import as_events
from bench.story_streams import training_stream
from core.settings import StorySettings
from pipelines.stages.stories.clustering import (
    FEATURES,
    Posting,
    Rarity,
    StoryInput,
    StoryState,
    evidence,
    file_posting,
    index_keys,
    rank_candidates,
    story_features,
    vectors,
)

OUT = ROOT / "pipelines" / "data" / "story_scorer.json"


def pairs(seed: int, settings: StorySettings) -> tuple[list[tuple[float, ...]], list[int]]:
    rows = training_stream(seed)
    events = as_events(rows, enrich=True)
    rarity = Rarity(prior_docs=settings.prior_docs)
    gold: dict[str, StoryState] = {}
    index: dict[str, tuple[Posting, ...]] = {}
    xs, ys = [], []
    for row, event in zip(rows, events, strict=True):
        ts = datetime.fromisoformat(event["published_at"]).astimezone(UTC).timestamp()
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--c", type=float, default=10.0)
    args = parser.parse_args(argv)
    settings = StorySettings()
    xs: list[tuple[float, ...]] = []
    ys: list[int] = []
    for seed in args.seeds:
        x, y = pairs(seed, settings)
        xs += x
        ys += y
    x_arr, y_arr = np.array(xs), np.array(ys, dtype=float)
    weights, bias = fit(x_arr, y_arr, args.c)
    p = 1 / (1 + np.exp(-(x_arr @ weights + bias)))
    pred = p >= settings.join_threshold
    tp, fp = int((pred & (y_arr == 1)).sum()), int((pred & (y_arr == 0)).sum())
    fn = int((~pred & (y_arr == 1)).sum())
    print(f"pairs {len(ys)} (positive {int(y_arr.sum())}); training P {tp / max(1, tp + fp):.3f} "
          f"R {tp / max(1, tp + fn):.3f}")
    for name, w in zip(FEATURES, weights, strict=True):
        print(f"  {name:10s} {w:+.3f}")
    print(f"  bias       {bias:+.3f}")
    OUT.write_bytes(orjson.dumps({
        "features": list(FEATURES), "weights": [round(float(w), 4) for w in weights], "bias": round(bias, 4),
        "trained_on": f"bench/story_streams.py training_stream seeds {args.seeds}, {len(ys)} pairs, L2 C={args.c}",
    }, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
