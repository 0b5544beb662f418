"""What a job forked from `newswire up`'s launcher copies of the launcher's shared heap, and where.

`newswire up --workers N` loads the stage models once in a launcher, freezes them out of the
garbage collector's reach and forks the jobs (newswire/workers.py), so the models' ~400 MB are
shared. A page of them stays shared until a job writes to it; reading an object writes too (its
reference count), so code that walks a whole shared table (iterates it, copies it, builds a set
from it) copies every page the table touches into that job, all at once. This bench does what
the launcher does (load the shipped config's models, ``gc.freeze()``, fork), runs the plain loop
of the shipped stages (bench/stage_chain.py, its own Redis) in the child over
``bench/e2e_throughput.py``'s ``open_fragments``, and samples the child's ``Shared_Dirty``
(``/proc/self/smaps_rollup``) every 50 ms. It prints:

* every drop of more than ``--drop-kb`` within one sample, with the fragment, the stage and the
  innermost lines of the main thread's stack at that moment (where the copying happens);
* ``Shared_Dirty`` at the start and the end, and the loss per 1,000 fragments after the first
  ``--warm`` (first calls of each code path copy a few MB; what keeps going after is the drift).

    python bench/shared_memory.py                  # 6,000 open-vocabulary fragments
    python bench/shared_memory.py --n 20000
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_throughput import open_fragments
from bench.stage_chain import StageChain, _NoClock
from connectors.redis import RedisServer
from core.settings import load_settings
from tests.harness import free_port


def shared_dirty_kb() -> int:
    """This process's Shared_Dirty (kB): pages it still shares with the process it was forked from
    and that someone has written since they were mapped."""
    with open("/proc/self/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Shared_Dirty:"):
                return int(line.split()[1])
    raise RuntimeError("no Shared_Dirty in /proc/self/smaps_rollup")


class _Where(_NoClock):
    """Records which stage runs (the chain calls its clock around each stage); times nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.stage = ""
        self.fragment = 0

    def __call__(self, name: str) -> _Where:
        self.stage = name
        return self


def run_child(settings, values: list[bytes], drop_kb: int, warm: int) -> None:
    where = _Where()
    chain = StageChain(settings, namespace="shm:", clock=where)
    main = threading.get_ident()
    done = threading.Event()
    marks: dict[int, int] = {}

    def watch() -> None:
        last = shared_dirty_kb()
        while not done.is_set():
            time.sleep(0.05)
            now = shared_dirty_kb()
            if last - now > drop_kb:
                frame = sys._current_frames().get(main)
                lines = [ln.strip() for ln in traceback.format_stack(frame)[-4:]] if frame else []
                print(f"  drop {(last - now) / 1024:6.1f} MB at fragment {where.fragment}, stage {where.stage}")
                for ln in lines:
                    print("      " + ln.replace(str(REPO) + "/", "").replace("\n", " | "))
            last = now

    start = shared_dirty_kb()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.time()
    for i, value in enumerate(values):
        where.fragment = i
        if i == warm:
            marks[i] = shared_dirty_kb()
        chain.process(value, i)
    end = shared_dirty_kb()
    done.set()
    watcher.join()
    chain.close()
    n = len(values)
    print(f"Shared_Dirty of the forked child: {start / 1024:.0f} MB at the fork, {end / 1024:.0f} MB after {n} "
          f"fragments ({time.time() - t0:.0f} s): {(start - end) / 1024:.1f} MB copied")
    if warm in marks and n > warm:
        drift = (marks[warm] - end) / 1024 / ((n - warm) / 1000)
        print(f"after the first {warm} fragments: {drift:.2f} MB copied per 1,000 fragments")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6000, help="open-stream fragments (default 6000)")
    ap.add_argument("--seed", type=int, default=5, help="stream seed (5: a fragment taken for another "
                    "language comes at ~3,900)")
    ap.add_argument("--drop-kb", type=int, default=1024, help="report drops above this (kB per 50 ms)")
    ap.add_argument("--warm", type=int, default=500, help="fragments before the drift is measured")
    args = ap.parse_args()
    if not Path("/proc/self/smaps_rollup").exists():
        sys.exit("needs Linux /proc/PID/smaps_rollup")
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="newswire-shm-")) / "redis", port=free_port()).start()
    try:
        settings = load_settings(environ={}, overrides={"redis.url": redis.url})
        from pipelines.warmup import warm_up

        warm_up(settings)  # what the launcher loads before it forks (newswire/workers.py _preload)
        import newswire.cli  # noqa: F401
        import pipelines.supervisor  # noqa: F401

        values = open_fragments(args.n, args.seed, "shm")
        print(f"machine: {os.cpu_count()} cores, CPython {platform.python_version()}; config: shipped "
              f"(config/newswire.yaml); {args.n} open-stream fragments, seed {args.seed}")
        gc.freeze()  # as the launcher does before forking
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run_child(settings, values, args.drop_kb, args.warm)
            except BaseException:  # noqa: BLE001 - report, then leave without the parent's cleanup
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status):
            sys.exit("the child failed")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
