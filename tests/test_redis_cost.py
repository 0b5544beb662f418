"""bench/redis_cost.py still finds every script it splits the Redis time by (it reaches into the
stage stores of bench/stage_chain.py, so a renamed store attribute would silently drop a script)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.paths import REPO


def test_redis_cost_splits_the_script_time_by_every_script() -> None:
    out = subprocess.run([sys.executable, "bench/redis_cost.py", "--n", "60", "--warmup", "10"], cwd=REPO,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    m = re.search(r"Redis CPU per fragment: ([\d.]+) ms \(scripts ([\d.]+) ms\); one Redis bounds all jobs "
                  r"together at ~(\d+) fragments/s", out)
    assert m, out
    cpu, scripts = float(m.group(1)), float(m.group(2))
    assert 0 < scripts <= cpu * 1.05, out  # script time is part of the server's CPU (1 ms clock granularity)
    split = dict(re.findall(r"^  (dedup probe|stories read|stories commit|alerts \(the rest\)) +([\d.]+) ms$", out,
                            re.MULTILINE))
    assert set(split) == {"dedup probe", "stories read", "stories commit", "alerts (the rest)"}, out
    # every direct script call was timed: each of the three has server time of its own
    assert all(float(split[name]) > 0 for name in ("dedup probe", "stories read", "stories commit")), out
