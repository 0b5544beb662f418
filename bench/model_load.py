"""CPU seconds to load the enrichment models (place resolver + gazetteer entity tagger) in a fresh process.

    python bench/model_load.py [--repeat 3] [--root ../other-checkout]

Each run is a new Python process (what a worker pays at start-up), timed with time.process_time():
`no cache` builds everything from the files (NEWSWIRE_MODEL_CACHE=off), `cold cache` builds and
writes the model cache (a worker's first start), `warm cache` reads it back (every later start).
The cache used is a temporary folder, removed afterwards. `--root` times another checkout
of the code (an older one without the cache: its three cases are the same build). Prints the load average and the date
with the figures: the development machine is shared, so compare runs made back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, time
t0 = time.process_time()
from pipelines.text.entities import EntityTagger
from pipelines.text.places import PlaceResolver
t1 = time.process_time()
resolver = PlaceResolver()
t2 = time.process_time()
tagger = EntityTagger(mode="gazetteer", places=resolver.place_keys())
t3 = time.process_time()
text = "Flooding hit Paris and Berlin on Monday, Angela Merkel said."
resolver.resolve(text, "en", tagger.tag(text, "en"))
t4 = time.process_time()
print(json.dumps({"imports": t1 - t0, "resolver": t2 - t1, "tagger": t3 - t2, "first text": t4 - t3,
                  "total": t4 - t0}))
"""


def _run(root: Path, cache: str) -> dict[str, float]:
    env = {**os.environ, "NEWSWIRE_MODEL_CACHE": cache, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=root, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (the median is printed)")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose code is timed")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    print(f"code {root}")
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}  cpus {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        cases: dict[str, list[dict[str, float]]] = {"no cache": [], "cold cache": [], "warm cache": []}
        for i in range(args.repeat):
            cases["no cache"].append(_run(root, "off"))
            folder = str(Path(tmp) / f"cache-{i}")
            cases["cold cache"].append(_run(root, folder))
            cases["warm cache"].append(_run(root, folder))
        for name, runs in cases.items():
            cells = "  ".join(f"{k} {statistics.median(r[k] for r in runs):5.2f}" for k in runs[0])
            print(f"{name:<11} CPU s (median of {len(runs)}): {cells}")
    print(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
