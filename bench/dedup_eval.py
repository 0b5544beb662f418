"""Near-duplicate / fragment detection: precision, recall, state memory and cost.

Run: ``.venv/bin/python bench/dedup_eval.py [--seed N] [--memory-fragments 50000]``

How the evaluation set is generated (deterministic for a seed; all text is real article text:
the hand-written fixtures in tests/fixtures/articles and the two texts in ../shared/samples,
each normalised with ``pipelines.text.normalise.normalise_text``):

* originals: every base article (fixtures minus the derived re-post/edit/excerpt/update files,
  plus the shared samples) is added to a :class:`DedupIndex`, together with ``--background``
  filler articles (default 2000): 12-30 sentences drawn from the base pool with the words of each
  sentence shuffled, so they share vocabulary but not phrasing. Originals are 60 s apart.
* positives, each queried with ``DedupIndex.match`` (read-only) and counted correct only if the
  match names its own original:
  - re-post: the original with line endings and spacing changed (expected ``exact``);
  - edits: every word independently, with probability r in {0.5%, 1%, 2%, 5%, 10%} (at least one
    word), is replaced by a random pool word, deleted, or followed by an inserted pool word (one
    third each), ``--variants`` per rate and article (expected ``near_duplicate``);
  - excerpts: 30-70% of the article's consecutive paragraphs (at least 2), re-wrapped at a random
    width of 40-90 columns, a "i/n" marker line on top, and with probability 1/2 the last
    sentence cut in the middle (expected ``contained``); the excerpt is normalised like any
    fragment, so the marker is taken off.
* negatives, any match is a false positive:
  - unrelated: 500 further filler articles not in the index;
  - collages: 8 sentences, each from a different base article (hard: every sentence is known);
  - same event, other outlet: the liveblog sample vs. the article sample, and the fixture pair
    turku-port-fire / turku-port-fire.other-outlet (each queried against an index with the other).

Also reported: per-fragment cost (fingerprint + probe-and-insert) in ms per 1 KB of text, the cost
of the MinHash signature alone vs ``datasketch`` 2.0.0 when it is installed, and state memory per
1M fragments: tracemalloc growth while ``--memory-fragments`` filler fragments (~1 KB each, 8-10
sentences) are inserted, extrapolated linearly, next to a layout estimate (entries x bytes).
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import textwrap
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.stages.dedup.logic import (
    DEFAULT_SETTINGS,
    DedupIndex,
    fingerprint,
    minhash_signature,
    sentences,
    words,
)
from pipelines.text.normalise import normalise_text

ARTICLES = ROOT / "tests" / "fixtures" / "articles"
SAMPLES = ROOT.parent / "shared" / "samples"
DERIVED = (".repost.", ".edited.", ".excerpt", ".update-2.", ".update-3.", ".other-outlet.")
RATES = (0.005, 0.01, 0.02, 0.05, 0.10)


def base_articles() -> dict[str, str]:
    """Normalised base texts by name."""
    paths = [p for p in sorted(ARTICLES.glob("*.txt")) if not any(d in p.name for d in DERIVED)]
    paths += sorted(SAMPLES.glob("*.txt"))
    return {p.name: normalise_text(p.read_text(encoding="utf-8")).text for p in paths}


def filler(rng: random.Random, pool: list[str], n_sentences: int) -> str:
    out = []
    for _ in range(n_sentences):
        toks = rng.choice(pool).split()
        rng.shuffle(toks)
        out.append(" ".join(toks).capitalize().rstrip(".") + ".")
    return "\n\n".join(" ".join(out[i:i + 3]) for i in range(0, len(out), 3))


def edit(rng: random.Random, text: str, rate: float, vocab: list[str]) -> str:
    """Each word edited with probability ``rate`` (at least one edit, so it is never an exact copy)."""
    toks = text.split(" ")
    picked = [i for i in range(len(toks)) if rng.random() < rate] or [rng.randrange(len(toks))]
    for i in sorted(picked, reverse=True):
        op = rng.randrange(3)
        if op == 0:
            toks[i] = rng.choice(vocab)
        elif op == 1:
            del toks[i]
        else:
            toks.insert(i + 1, rng.choice(vocab))
    return " ".join(toks)


def excerpt(rng: random.Random, text: str) -> str:
    paras = [p for p in text.split("\n\n") if p.strip()]
    if len(paras) < 4:  # one-line-per-paragraph texts (the live-blog sample)
        paras = [p for p in text.split("\n") if p.strip()]
    k = max(2, round(len(paras) * rng.uniform(0.3, 0.7)))
    start = rng.randrange(0, len(paras) - k + 1)
    chunk = paras[start:start + k]
    if rng.random() < 0.5:
        last = chunk[-1].split()
        chunk[-1] = " ".join(last[: max(3, len(last) // 2)])
    width = rng.randrange(40, 91)
    total = rng.randrange(5, 40)
    body = "\n".join(textwrap.fill(p, width) for p in chunk)
    return f"{rng.randrange(1, total + 1)}/{total}\n{body}\n"


@dataclass
class Evaluation:
    """Outcome of :func:`evaluate`."""

    precision: float
    recall: float
    groups: dict[str, Counter[str]]
    ms_per_kb_match: float
    index_events: int


def evaluate(seed: int, background: int, variants: int) -> Evaluation:
    rng = random.Random(seed)
    bases = base_articles()
    pool = [s for t in bases.values() for s in sentences(t) if len(s.split()) >= 6]
    vocab = sorted({w for t in bases.values() for w in words(t)})

    index = DedupIndex()
    ts = 0.0
    for name, body in bases.items():
        index.add(name, body, ts)
        ts += 60
    for i in range(background):
        index.add(f"filler-{i}", filler(rng, pool, rng.randrange(12, 31)), ts)
        ts += 60

    cases: list[tuple[str, str, str | None]] = []  # (group, text, expected original)
    for name, body in bases.items():
        cases.append(("re-post", body.replace("\n\n", "\r\n  \r\n").replace(". ", ".  "), name))
        for rate in RATES:
            for _ in range(variants):
                cases.append((f"edit {rate:.1%}", edit(rng, body, rate, vocab), name))
        for _ in range(variants):
            cases.append(("excerpt", excerpt(rng, body), name))
    for _ in range(500):
        cases.append(("unrelated", filler(rng, pool, rng.randrange(8, 31)), None))
    by_article = {n: [s for s in sentences(t) if len(s.split()) >= 6] for n, t in bases.items()}
    for _ in range(200):
        names = rng.sample(sorted(by_article), k=min(8, len(by_article)))
        cases.append(("collage", " ".join(rng.choice(by_article[n]) for n in names), None))

    per_group: dict[str, Counter[str]] = {}
    tp = fp = fn = 0
    cost_s = cost_kb = 0.0
    for group, raw, expected in cases:
        body = normalise_text(raw).text
        t0 = time.perf_counter()
        m = index.match(body, ts=ts)
        cost_s += time.perf_counter() - t0
        cost_kb += len(body.encode("utf-8")) / 1024
        c = per_group.setdefault(group, Counter())
        c["n"] += 1
        if expected is None:
            if m is not None:
                fp += 1
                c["false_pos"] += 1
        elif m is not None and m.event_id == expected:
            tp += 1
            c["found"] += 1
            c[m.kind] += 1
        else:
            fn += 1
            if m is not None:
                fp += 1
                c["wrong_match"] += 1

    # same event, other outlet: each pair in a fresh index, both directions
    pairs = [("liveblog-fragment-2-26.txt", "russia-warns-finland-sweden.txt")]
    other = ARTICLES / "turku-port-fire.other-outlet.txt"
    bases_plus = dict(bases, **{other.name: normalise_text(other.read_text(encoding="utf-8")).text})
    pairs.append(("turku-port-fire.txt", other.name))
    c = per_group.setdefault("same event, other outlet", Counter())
    for a, b in pairs:
        for first, second in ((a, b), (b, a)):
            idx = DedupIndex()
            idx.add(first, bases_plus[first], 0.0)
            c["n"] += 1
            if idx.match(bases_plus[second], ts=60.0) is not None:
                fp += 1
                c["false_pos"] += 1

    return Evaluation(
        precision=tp / (tp + fp) if tp + fp else 1.0,
        recall=tp / (tp + fn) if tp + fn else 1.0,
        groups=per_group,
        ms_per_kb_match=1000 * cost_s / cost_kb,
        index_events=len(bases) + background,
    )


def cost_per_kb(seed: int, n: int = 2000) -> dict[str, float]:
    """Fingerprint + probe-and-insert per 1 KB, and signature-only cost vs datasketch."""
    rng = random.Random(seed + 1)
    bases = base_articles()
    pool = [s for t in bases.values() for s in sentences(t) if len(s.split()) >= 6]
    texts = [filler(rng, pool, rng.randrange(8, 11)) for _ in range(n)]
    kb = sum(len(t.encode("utf-8")) for t in texts) / 1024
    index = DedupIndex()
    t0 = time.perf_counter()
    for i, t in enumerate(texts):
        index.add(f"e{i}", t, float(i))
    full = 1000 * (time.perf_counter() - t0) / kb
    t0 = time.perf_counter()
    for t in texts:
        minhash_signature(t)
    ours = 1000 * (time.perf_counter() - t0) / kb
    out = {"fingerprint_and_probe_ms_per_kb": full, "signature_ms_per_kb": ours,
           "mean_fragment_kb": kb / n}
    try:
        from datasketch import MinHash
    except ImportError:
        return out
    sub = texts[: n // 4]
    sub_kb = sum(len(t.encode("utf-8")) for t in sub) / 1024
    t0 = time.perf_counter()
    for t in sub:
        toks = words(t)
        mh = MinHash(num_perm=DEFAULT_SETTINGS.num_perm, seed=1)
        mh.update_batch([" ".join(toks[i:i + 3]).encode() for i in range(max(1, len(toks) - 2))])
    out["datasketch_signature_ms_per_kb"] = 1000 * (time.perf_counter() - t0) / sub_kb
    return out


def memory(seed: int, n: int) -> dict[str, float]:
    """tracemalloc growth of DedupIndex state for n ~1 KB fragments, extrapolated to 1M."""
    rng = random.Random(seed + 2)
    bases = base_articles()
    pool = [s for t in bases.values() for s in sentences(t) if len(s.split()) >= 6]
    fps = []
    for i in range(n):
        text = filler(rng, pool, rng.randrange(8, 11))
        fps.append((f"{i:032x}", fingerprint(text)))  # event ids are 32 hex chars, as in the schema
    index = DedupIndex()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, (eid, fp) in enumerate(fps):
        index.observe(eid, fp, float(i))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    entries = index.entry_count()
    keys = len(index)
    pickled = len(pickle.dumps(index.state, protocol=pickle.HIGHEST_PROTOCOL))
    # Layout estimate for serialised keyed state: key (2-4 char prefix + 16 hex, or 32 hex for
    # content hashes) ~22 B + per entry event_id 32 B + ts 8 B + size 4 B.
    layout = keys * 22 + entries * 44
    scale = 1_000_000 / n
    return {
        "fragments": n,
        "keys_per_fragment": keys / n,
        "entries_per_fragment": entries / n,
        "python_heap_MiB_per_1M": (after - before) * scale / 2**20,
        "pickled_MiB_per_1M": pickled * scale / 2**20,
        "layout_estimate_MiB_per_1M": layout * scale / 2**20,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--background", type=int, default=2000)
    parser.add_argument("--variants", type=int, default=10)
    parser.add_argument("--memory-fragments", type=int, default=50_000)
    args = parser.parse_args(argv)

    s = DEFAULT_SETTINGS
    print(f"settings: {s.bands} bands x {s.rows} rows ({s.num_perm} perms), {s.shingle_words}-word shingles, "
          f"near_duplicate_jaccard={s.near_duplicate_jaccard}, containment={s.containment}, "
          f"min_sentence_hits={s.min_sentence_hits}, max_bucket_entries={s.max_bucket_entries}")
    result = evaluate(args.seed, args.background, args.variants)
    print(f"\nindex: {result.index_events} originals (real bases + shuffled-sentence filler)")
    print(f"{'group':28s} {'n':>5s} {'found':>6s} {'false+':>6s}  kinds")
    for group, c in result.groups.items():
        kinds = {k: v for k, v in c.items() if k not in ("n", "found", "false_pos")}
        print(f"{group:28s} {c['n']:5d} {c['found']:6d} {c['false_pos']:6d}  {kinds}")
    print(f"\nprecision {result.precision:.4f}   recall {result.recall:.4f}   "
          f"(targets >= 0.98 / >= 0.95)")
    print(f"match cost: {result.ms_per_kb_match:.3f} ms per KB (read-only probe, index of "
          f"{result.index_events})")
    for k, v in cost_per_kb(args.seed).items():
        print(f"{k}: {v:.3f}")
    if args.memory_fragments:
        for k, v in memory(args.seed, args.memory_fragments).items():
            print(f"{k}: {v:,.1f}")


if __name__ == "__main__":
    main()
