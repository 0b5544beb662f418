"""End-to-end throughput and latency: raw topic -> Prism pipeline -> enriched topic, on this machine.

Starts its own Apache Kafka broker (free ports, temporary data dir) and the pipeline as a separate
process, exactly as `newswire up` does, then:

1. throughput: produce N distinct ~1 KB fragments as fast as the producer can and measure
   fragments/s from the first produce until the last enriched event is on the topic;
2. latency: produce at a fixed rate (default 200/s) and report p50/p99 of
   (enriched record time - raw record time), both Kafka CreateTime stamps from this machine's clock;
3. baseline: the same stage functions (parse, normalise, language, [enrich], dedup, stories, alerts,
   schema check) in a plain Python loop, no Kafka and no Beam, on the same fragments, with the same
   Redis: overhead ratio = baseline / pipeline;
4. the same plain loop in as many processes at once as the pipeline has jobs (forked like them,
   sharing the Redis and the cores): the stage work's throughput on this machine without Kafka, Beam
   or sinks. Its rate / the pipeline's is what the framework costs (the single loop uses one core,
   the pipeline all of them, so ratio 3 flatters the pipeline on a machine with more than one).

Every default is the shipped config/newswire.yaml's (gazetteer entities, near-dup dedup, stories, alerts).

    python bench/e2e_throughput.py [--n 5000] [--rate 200] [--seconds 15] [--dedup near|exact]
                                   [--entities off|gazetteer|spacy] [--stories on|off] [--alerts on|off]
                                   [--profile DIR]

Also prints the CPU time of the pipeline's processes (Python with its SDK worker, Prism) per fragment
over the throughput phase, which is steadier than wall clock on a shared machine. ``--profile DIR``:
samples the pipeline process with py-spy (the dev extra) during the throughput phase and prints where
its CPU goes (DIR gets the collapsed stacks and an SVG flame graph).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.stage_chain import StageChain, StageClock
from connectors.kafka import KafkaBroker, make_consumer, make_producer
from connectors.redis import RedisServer, make_redis
from core.settings import STATE_STAGES, load_settings
from newswire.workers import default_workers
from pipelines.text.normalise import split_sentences
from tests.harness import Stack, free_port


def corpus_sentences() -> list[str]:
    """English sentences from the real samples (../shared/samples) and the demo fragments."""
    texts = [p.read_text(encoding="utf-8") for p in (REPO.parent / "shared" / "samples").glob("*.txt")]
    for line in (REPO / "docs" / "examples" / "demo-fragments.jsonl").read_text().splitlines():
        doc = orjson.loads(line)
        if doc.get("text") and doc["source"].startswith("demo:wire"):
            texts.append(doc["text"])
    return [s for t in texts for s in split_sentences(" ".join(t.split())) if len(s) > 40]


def make_fragments(n: int, seed: int, tag: str, shuffle: bool = False) -> list[bytes]:
    """n distinct fragments of about 1 KB: random real sentences plus a unique numbered sentence.
    ``shuffle``: each sentence's words shuffled, so sentences, bands and shingles almost never recur
    (bench/stage_cpu.py's ``--stream unique``)."""
    rng = random.Random(seed)
    sentences = corpus_sentences()
    out = []
    for i in range(n):
        body = [f"Update {tag}-{i}: officials confirmed the figures on {rng.randint(1, 28)} November."]
        while sum(map(len, body)) < 950:
            if shuffle:
                words = rng.choice(sentences).split()
                rng.shuffle(words)
                body.append(" ".join(words) + ".")
            else:
                body.append(rng.choice(sentences))
        out.append(orjson.dumps({"source": f"bench:{i % 8}", "id": f"{tag}-{i}", "text": " ".join(body)}))
    return out


_SYLLABLES = ("ka", "lo", "vi", "ren", "dor", "mi", "sa", "tel", "no", "bru", "an", "qui", "zel", "ost", "har", "pe")


def open_fragments(n: int, seed: int, tag: str) -> list[bytes]:
    """n distinct fragments of about 1 KB whose vocabulary keeps growing, as a news stream's does:
    words drawn by frequency from the shipped English word-frequency table
    (pipelines/data/word_prior.tsv.gz, ~58,000 words), made-up names and numbers never seen before
    in about one word in eleven, and a quotation in about one sentence in seven. The corpus streams
    above recycle a few hundred sentences, so the caches keyed by words, names and quotations stay
    small on them; this stream fills them (bench/cache_memory.py)."""
    from pipelines.stages.stories.prior import word_prior  # the table, not a cache (loaded once)

    rng = random.Random(seed)
    table = word_prior()
    words, cumulative = list(table), list(itertools.accumulate(table.values()))

    def novel() -> str:
        return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()

    out = []
    for i in range(n):
        body = [f"Update {tag}-{i}: officials confirmed the figures on {rng.randint(1, 28)} November."]
        while sum(map(len, body)) < 950:
            drawn = rng.choices(words, cum_weights=cumulative, k=rng.randint(8, 22))
            for j in range(len(drawn)):
                roll = rng.random()
                if roll < 0.06:
                    drawn[j] = f"{novel()} {novel()}" if roll < 0.02 else novel()
                elif roll < 0.09:
                    drawn[j] = f"{rng.randint(2, 99_999):,}"
            sentence = " ".join(drawn)
            if rng.random() < 0.15:  # a quotation, attributed: what the stories stage's quote caches hold
                body.append(f'"{sentence[0].upper()}{sentence[1:]}," {novel()} said.')
            else:
                body.append(sentence[0].upper() + sentence[1:] + ".")
        out.append(orjson.dumps({"source": f"bench:{i % 8}", "id": f"{tag}-{i}", "text": " ".join(body)}))
    return out


#: --split: the stages given a Redis server of their own (redis.stage_urls).
SPLITS = {"none": (), "stories": ("stories",), "each": STATE_STAGES}


def start_split(tmp: Path, split: str) -> tuple[dict[str, RedisServer], dict[str, str]]:
    """--split's servers, one per stage it names (started, in ``tmp``), and the config overrides
    (``redis.stage_urls.<stage>``) that point the stages at them."""
    own = {stage: RedisServer(tmp / f"redis-{stage}", port=free_port()).start() for stage in SPLITS[split]}
    return own, {f"redis.stage_urls.{stage}": server.url for stage, server in own.items()}


def wait_until_serving(stack: Stack, name: str, timeout_s: float = 180) -> None:
    """One warm-up fragment on every raw-topic partition, then wait for all of them enriched: every
    job (every member of a consumer group) is up. Exits with the logs if they do not all come back."""
    topic, partitions = stack.settings.kafka.topics.fragments.name, stack.settings.kafka.topics.fragments.partitions
    warm = make_producer(stack.settings)
    for p in range(partitions):
        warm.send(topic, partition=p, value=orjson.dumps({"source": "bench", "id": f"warmup-{p}",
                                                          "text": f"Warm-up fragment {p}."}))
    warm.flush()
    warm.close()
    if len(collect(stack, {f"warmup-{p}" for p in range(partitions)}, timeout_s)) < partitions:
        sys.exit(f"{name} did not come up:\n" + stack.pipeline_log())


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def collect(stack: Stack, want: set[str], timeout_s: float) -> dict[str, tuple[int, int]]:
    """Read enriched events until every source_id in `want` arrived: id -> (raw ts, enriched ts)."""
    consumer = make_consumer(stack.settings, group_id=None)
    consumer.subscribe([stack.settings.kafka.topics.enriched.name])
    got: dict[str, tuple[int, int]] = {}
    deadline = time.monotonic() + timeout_s
    while want - got.keys() and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200, max_records=5000).values():
            for r in records:
                doc = orjson.loads(r.value)
                if doc["source_id"] in want:
                    got[doc["source_id"]] = (doc["origin"]["timestamp_ms"], r.timestamp)
    consumer.close()
    return got


def baseline(values: list[bytes], settings, clock: StageClock | None = None) -> float:
    """Fragments/s of the same stage functions in a plain loop (one core, no Kafka, no Beam):
    bench/stage_chain.py, shared with the Quix Streams peer; ``clock`` collects the time of each stage."""
    chain = StageChain(settings, namespace="baseline:", clock=clock or StageClock())
    t0, cpu0 = time.perf_counter(), time.process_time()
    for i, v in enumerate(values):
        chain.process(v, i)
    rate = len(values) / (time.perf_counter() - t0)
    if clock is not None:
        clock.cpu_ms = (time.process_time() - cpu0) * 1000 / len(values)
    chain.close()
    return rate


def parallel_baseline(values: list[bytes], settings, procs: int) -> tuple[float, float]:
    """(fragments/s, CPU ms per fragment) of the same stage chain in ``procs`` plain-loop processes
    at once, sharing one Redis and this machine's cores as the pipeline's jobs do, and forked as
    `newswire up`'s launcher forks its jobs (models loaded, ``gc.freeze()``, then ``fork``); the
    fragments are dealt round-robin. What the same stage work does on the same cores with no Kafka,
    no Beam and no sinks: the pipeline's throughput against this is what the framework costs."""
    warm = StageChain(settings, namespace="parallel:")
    warm.process(values[0], 0)  # loads the models here, before the fork, like the launcher
    warm.close()
    gc.freeze()
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    children = []
    for k in range(procs):
        pid = os.fork()
        if pid == 0:  # a loop: wait for the start, run its share, report its CPU seconds
            code = 0
            try:
                chain = StageChain(settings, namespace="parallel:")
                os.read(go_r, 1)
                cpu0 = time.process_time()
                for i in range(1 + k, len(values), procs):
                    chain.process(values[i], i)
                os.write(done_w, f"{time.process_time() - cpu0}\n".encode())
                chain.close()
            except BaseException:  # noqa: BLE001 - report, then leave without the parent's cleanup
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        children.append(pid)
    os.close(done_w)
    time.sleep(1.0)  # every child has built its chain
    t0 = time.perf_counter()
    os.write(go_w, b"x" * procs)
    failed = sum(1 for pid in children if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    wall = time.perf_counter() - t0
    with os.fdopen(done_r) as reports:
        cpu_s = sum(float(line) for line in reports)
    gc.unfreeze()
    if failed:
        sys.exit(f"{failed} of the {procs} parallel plain loops failed")
    n = len(values) - 1
    return n / wall, cpu_s * 1000 / n


def command_stats(client: Any) -> tuple[int, int, int]:
    """(commands, script calls, microseconds of script time) a Redis server has run so far
    (``INFO commandstats``; scripts: EVAL / EVALSHA)."""
    calls = scripts = usec = 0
    for name, stat in client.info("commandstats").items():
        calls += stat["calls"]
        if "eval" in name:
            scripts += stat["calls"]
            usec += stat["usec"]
    return calls, scripts, usec


def redis_work(servers: list[RedisServer]) -> tuple[int, int, int]:
    """:func:`command_stats` summed over ``servers``: set against their CPU, whether Redis did more
    work or did it dearer."""
    totals = [0, 0, 0]
    for server in servers:
        client = make_redis(server.url)
        totals = [a + b for a, b in zip(totals, command_stats(client), strict=True)]
        client.close()
    return totals[0], totals[1], totals[2]


def _per_fragment(before: tuple[int, int, int], after: tuple[int, int, int], n: int) -> str:
    calls, scripts, usec = (b - a for a, b in zip(before, after, strict=True))
    return f"{calls / n:.1f} commands, {scripts / n:.2f} script calls, {usec / 1000 / n:.2f} ms of script time"


def start_profile(pid: int, out: Path, native: bool = False) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` (the pipeline process, all threads) into ``out``/pipeline.collapsed until
    stopped with SIGINT: only samples holding the GIL (Python doing work), or with ``native`` every
    thread on a CPU with its C frames too (gRPC, sockets, the kernel's share does not show)."""
    out.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    mode = ["--native"] if native else ["--gil"]
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--format", "raw", *mode, "--rate", "200",
                             "--output", str(out / "pipeline.collapsed")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def python_speed_ns(n: int = 2_000_000) -> float:
    """Nanoseconds per iteration of a plain ``for`` loop adding integers, best of three, on a quiet
    machine: this VM's speed has varied ~2x between hours, so a run's figures are compared with
    another day's only in proportion to this (bench/RESULTS.md, "Story retries under concurrency")."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        for i in range(n):
            total += i
        best = min(best, time.perf_counter() - t0)
    return best * 1e9 / n


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of each live thread of ``pid``, keyed ``tid:name`` (gRPC's C threads name
    themselves; Python's threads show the process name)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[f"{task.name}:{name}"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _frame(frame: str) -> str:
    """``func (/long/path/site-packages/pkg/mod.py:123)`` -> ``func (pkg/mod.py)``."""
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    path = re.sub(r"^.*?/(site-packages|lib/python3\.\d+)/", "", m.group(2))
    path = re.sub(r"^.*/wt-[^/]+/|^" + re.escape(str(REPO)) + "/", "", path)
    return f"{m.group(1)} ({path})"


def stop_profile(spy: subprocess.Popen[bytes], out: Path, top: int = 25) -> None:
    """Stop py-spy and print the top frames by self and inclusive share of the samples."""
    spy.send_signal(signal.SIGINT)
    spy.wait(60)
    self_n: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    path = out / "pipeline.collapsed"
    if not path.exists():
        print("profile: py-spy wrote nothing (ptrace not permitted?)")
        return
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        count = int(n)
        frames = [_frame(f) for f in stack.split(";")[1:]]
        total += count
        if frames:
            self_n[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    print(f"profile: {total} samples (200/s); top self:")
    for f, n in self_n.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {f}")
    print("top inclusive:")
    for f, n in incl.most_common(top * 2):
        print(f"  {100 * n / total:5.1f}%  {f}")


def main() -> None:
    shipped = load_settings(environ={})  # every default below is the shipped config/newswire.yaml's
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="fragments for the throughput run")
    ap.add_argument("--rate", type=float, default=200, help="fragments/s for the latency run")
    ap.add_argument("--seconds", type=float, default=15, help="duration of the latency run")
    ap.add_argument("--partitions", type=int, default=shipped.kafka.topics.fragments.partitions)
    ap.add_argument("--dedup", choices=["near", "exact"], default=shipped.pipeline.dedup.mode,
                    help="pipeline.dedup.mode: near (Redis index) or exact (content hash, Beam state)")
    ap.add_argument("--entities", choices=["off", "gazetteer", "spacy"], default=shipped.pipeline.enrichment.entities,
                    help="enrichment mode (pipeline.enrichment.entities); off = the foundation stages only")
    ap.add_argument("--stories", choices=["on", "off"], default="on" if shipped.pipeline.stories.enabled else "off",
                    help="pipeline.stories.enabled")
    ap.add_argument("--alerts", choices=["on", "off"], default="on" if shipped.alerts.enabled else "off",
                    help="alerts.enabled (config/alerts.yaml)")
    ap.add_argument("--workers", type=int, default=None,
                    help="pipeline jobs splitting the partitions, as `newswire up --workers N` starts them "
                         "(default: up's, two per core, at most one per partition)")
    ap.add_argument("--split", choices=sorted(SPLITS), default="none",
                    help="stages on Redis servers of their own (redis.stage_urls): none (the shipped config), "
                         "stories, or each stage")
    ap.add_argument("--profile", type=Path, help="py-spy the pipeline process over the throughput phase into DIR")
    ap.add_argument("--profile-native", action="store_true",
                    help="with --profile: sample threads on a CPU with native frames, not only GIL holders")
    ap.add_argument("--baseline-only", action="store_true",
                    help="only the plain loop and its per-stage cost table (no broker, no pipeline)")
    args = ap.parse_args()
    if args.workers is None:
        args.workers = default_workers(args.partitions)

    speed = python_speed_ns()
    tmp = Path(tempfile.mkdtemp(prefix="newswire-bench-"))
    redis = RedisServer(tmp / "redis", port=free_port()).start()
    own, stage_urls = start_split(tmp, args.split)
    if args.baseline_only:
        settings = load_settings(environ={}, overrides={
            "redis.url": redis.url, **stage_urls, "pipeline.enrichment.entities": args.entities,
            "pipeline.dedup.mode": args.dedup,
            "pipeline.stories.enabled": args.stories == "on", "alerts.enabled": args.alerts == "on"})
        clock = StageClock()
        rate = baseline(make_fragments(args.n, 1, "tp"), settings, clock)
        par_rate, par_cpu = parallel_baseline(make_fragments(args.n, 1, "tp"), settings, args.workers)
        for server in (*own.values(), redis):
            server.stop()
        print(f"plain loop, {args.n} fragments, enrichment: {args.entities}, dedup: {args.dedup}, stories: "
              f"{args.stories}, alerts: {args.alerts}: {rate:.0f} fragments/s ({1000 / rate:.2f} ms each), CPU "
              f"{clock.cpu_ms:.2f} ms per fragment; per stage:")
        print(clock.table(args.n))
        print(f"Python speed: {speed:.0f} ns per loop iteration (python_speed_ns)")
        print(f"{args.workers} plain loops at once (forked, one Redis, {os.cpu_count()} cores): {par_rate:.0f} "
              f"fragments/s, CPU {par_cpu:.2f} ms per fragment")
        return
    base = {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}", "kafka.embedded.controller_port": free_port(),
            "data_dir": str(tmp), "redis.url": redis.url, **stage_urls}
    with KafkaBroker(load_settings(overrides=base, environ={})):
        stack = Stack(base, tmp, **{"kafka.topics.fragments.partitions": args.partitions,
                                    "pipeline.enrichment.entities": args.entities,
                                    "pipeline.dedup.mode": args.dedup,
                                    "pipeline.stories.enabled": args.stories == "on",
                                    "alerts.enabled": args.alerts == "on"})
        t_start = time.monotonic()
        pids = stack.start_jobs(args.workers)
        wait_until_serving(stack, "pipeline")
        startup = time.monotonic() - t_start

        # 1. Throughput
        values = make_fragments(args.n, 1, "tp")
        size = statistics.mean(map(len, values))
        producer = make_producer(stack.settings, linger_ms=20, batch_size=256 * 1024)
        from bench.peers.compare import (  # (compare imports this module)
            memory_mb,
            tree_cpu_s,
            tree_memory_by_name,
        )

        spy = start_profile(pids[0], args.profile, args.profile_native) if args.profile else None
        cpu0 = [tree_cpu_s(pid) for pid in pids]
        redis_pids = [server.proc.pid for server in (redis, *own.values()) if server.proc is not None]
        redis0 = [sum(tree_cpu_s(pid).values()) for pid in redis_pids]
        servers = [redis, *own.values()]
        work0 = redis_work(servers)
        threads0 = thread_cpu_s(pids[0])
        t0 = time.time()
        for v in values:
            producer.send(stack.settings.kafka.topics.fragments.name, value=v)
        producer.flush()
        produced_s = time.time() - t0
        got = collect(stack, {f"tp-{i}" for i in range(args.n)}, 600)
        cpu1 = [tree_cpu_s(pid) for pid in pids]
        redis_ms = [(sum(tree_cpu_s(pid).values()) - before) * 1000 / args.n
                    for pid, before in zip(redis_pids, redis0, strict=True)]
        work = _per_fragment(work0, redis_work(servers), args.n)
        threads1 = thread_cpu_s(pids[0])
        by_thread = sorted(((k, (v - threads0.get(k, 0.0)) * 1000 / args.n) for k, v in threads1.items()),
                           key=lambda kv: -kv[1])
        if spy is not None:
            stop_profile(spy, args.profile)
        cpu_by: Counter[str] = Counter()
        for before, after in zip(cpu0, cpu1, strict=True):
            for name, v in after.items():
                cpu_by[name] += (v - before.get(name, 0.0)) * 1000 / args.n
        last_ms = max(e for _, e in got.values())
        throughput = len(got) / (last_ms / 1000 - t0)
        tp_lat = [e - r for r, e in got.values()]

        # 2. Latency at a fixed rate
        values_l = make_fragments(int(args.rate * args.seconds), 2, "lat")
        interval = 1 / args.rate
        t1 = time.monotonic()
        for i, v in enumerate(values_l):
            producer.send(stack.settings.kafka.topics.fragments.name, value=v)
            producer.flush() if i % 10 == 9 else None
            pause = t1 + (i + 1) * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        producer.flush()
        got_l = collect(stack, {f"lat-{i}" for i in range(len(values_l))}, 300)
        lat = [e - r for r, e in got_l.values()]
        memory = [(tree_memory_by_name(pid, "Pss"), tree_memory_by_name(pid, "Rss")) for pid in pids]
        launcher = [memory_mb(root) for root in stack.process_roots() if root not in pids]  # the jobs' parent
        producer.close()
        stack.stop_all()

    clock = StageClock()
    n_base = min(args.n, 3000)
    work0 = redis_work(servers)
    base_rate = baseline(make_fragments(n_base, 1, "tp"), stack.settings, clock)
    base_work = _per_fragment(work0, redis_work(servers), n_base)
    work0 = redis_work(servers)
    par_rate, par_cpu = parallel_baseline(make_fragments(n_base, 1, "tp"), stack.settings, args.workers)
    par_work = _per_fragment(work0, redis_work(servers), n_base)
    for server in (*own.values(), redis):
        server.stop()
    print(f"machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
          f"runner: Prism, jobs: {args.workers}, partitions: {args.partitions}, enrichment: {args.entities}, "
          f"dedup: {args.dedup}, stories: {args.stories}, alerts: {args.alerts}, stages on Redis servers of their "
          f"own: {args.split}; Python speed {speed:.0f} ns per loop iteration (python_speed_ns)")
    print(f"pipeline startup (process start -> first enriched event): {startup:.1f} s")
    print(f"throughput: {len(got)}/{args.n} fragments of {size:.0f} B; produced in {produced_s:.2f} s; "
          f"end to end {throughput:.0f} fragments/s")
    print(f"  CPU of the pipeline's processes: {sum(cpu_by.values()):.1f} ms per fragment ("
          + ", ".join(f"{k} {v:.1f}" for k, v in cpu_by.most_common()) + f"); load average {os.getloadavg()[0]:.1f}")
    print(f"  CPU of Redis: {sum(redis_ms):.2f} ms per fragment" + (
        " (" + ", ".join(f"{name} {ms:.2f}" for name, ms in zip(["redis.url", *own], redis_ms, strict=True)) + ")"
        if own else "") + f"; its work per fragment: {work} (the plain loop: {base_work}; "
          f"{args.workers} plain loops at once: {par_work})")
    print("  CPU ms per fragment by thread of the (first) pipeline process: "
          + ", ".join(f"{k} {v:.1f}" for k, v in by_thread if v >= 0.1))
    print(f"  latency under that burst: p50 {percentile(tp_lat, .5):.0f} ms, p99 {percentile(tp_lat, .99):.0f} ms")
    print(f"latency at {args.rate:.0f} fragments/s for {args.seconds:.0f} s ({len(got_l)}/{len(values_l)} arrived): "
          f"p50 {percentile(lat, .5):.0f} ms, p99 {percentile(lat, .99):.0f} ms, max {max(lat):.0f} ms")
    print("memory of each pipeline job at the end, PSS (shared pages split among their sharers) / RSS: " + "; ".join(
        f"job {i}: " + ", ".join(f"{name} {mb:.0f}/{rss.get(name, 0.0):.0f} MB" for name, mb in pss.items())
        for i, (pss, rss) in enumerate(memory))
        + (f"; the launcher that forked them: {launcher[0]:.0f} MB PSS" if launcher else "")
        + f"; all together {sum(sum(pss.values()) for pss, _ in memory) + sum(launcher):.0f} MB PSS")
    print(f"baseline (same stage functions, plain loop, 1 core): {base_rate:.0f} fragments/s, CPU "
          f"{clock.cpu_ms:.1f} ms per fragment; per stage:")
    print(clock.table(n_base))
    print(f"overhead ratio (baseline / pipeline): {base_rate / throughput:.2f}x")
    print(f"{args.workers} plain loops at once, one per job (forked, one Redis, the same {os.cpu_count()} cores, no "
          f"Kafka, Beam or sinks): {par_rate:.0f} fragments/s, CPU {par_cpu:.1f} ms per fragment; what the framework "
          f"costs (their throughput / the pipeline's): {par_rate / throughput:.2f}x")


if __name__ == "__main__":
    main()
