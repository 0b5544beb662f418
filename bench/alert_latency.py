"""Alert latency: from the triggering fragment's arrival in Kafka to the alert on the alerts topic.

Starts its own Kafka broker, Redis and the pipeline (Prism), as `newswire up` does, with one rule
that fires on every probe fragment (keyword ``latencyprobe``, threshold 1 event, window and cooldown
1 s). It sends one probe every ``--interval`` seconds (longer than the cooldown, so each fires)
while ``--background`` other fragments per second flow through the same pipeline, then reports
p50/p99/max of (time the alert was read from news.alerts - the probe's broker append time, both
this machine's clock; the raw topic uses LogAppendTime).

    python bench/alert_latency.py [--probes 60] [--interval 1.2] [--background 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_throughput import collect, make_fragments, percentile
from connectors.kafka import KafkaBroker, make_consumer, make_producer
from connectors.redis import RedisServer
from core.settings import load_settings
from tests.harness import Stack, free_port

RULES = """
version: 1
rules:
  - name: latency-probe
    match: {keyword: latencyprobe}
    window: 1s
    threshold: {count: 1, of: events}
    cooldown: 1s
    severity: info
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--probes", type=int, default=60)
    ap.add_argument("--interval", type=float, default=1.2, help="seconds between probes (> the 1 s cooldown)")
    ap.add_argument("--background", type=float, default=50, help="other fragments per second meanwhile")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="newswire-alert-bench-"))
    (tmp / "rules.yaml").write_text(RULES)
    redis = RedisServer(tmp / "redis", port=free_port()).start()
    base = {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}", "kafka.embedded.controller_port": free_port(),
            "data_dir": str(tmp), "redis.url": redis.url}
    with KafkaBroker(load_settings(overrides=base, environ={})):
        stack = Stack(base, tmp, **{"alerts.rules_path": str(tmp / "rules.yaml")})
        stack.start_pipeline()
        stack.produce([orjson.dumps({"source": "bench", "id": "warmup", "text": "Warm-up fragment for the bench."})])
        if not collect(stack, {"warmup"}, 120):
            sys.exit("pipeline did not come up:\n" + stack.pipeline_log())

        lat: dict[str, float] = {}  # alert_id -> ms from the probe's arrival to the alert being read
        stop = threading.Event()

        def read_alerts() -> None:
            consumer = make_consumer(stack.settings, group_id=None)
            consumer.subscribe([stack.settings.kafka.topics.alerts.name])
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=50).values():
                    now = time.time()
                    for r in records:
                        alert = orjson.loads(r.value)
                        probe = max((ev["received_at"] for ev in alert["evidence"] if ev["source"] == "bench:probe"),
                                    default=None)
                        if probe is not None:
                            arrival = datetime.fromisoformat(probe).timestamp()
                            lat.setdefault(alert["alert_id"], (now - arrival) * 1000)
            consumer.close()

        reader = threading.Thread(target=read_alerts, daemon=True)
        reader.start()
        producer = make_producer(stack.settings, linger_ms=2)
        topic = stack.settings.kafka.topics.fragments.name
        background = iter(make_fragments(int(args.background * args.interval * args.probes) + 10, 5, "bg"))
        per_gap = max(1, int(args.background * args.interval))
        for i in range(args.probes):
            t = time.monotonic()
            producer.send(topic, value=orjson.dumps(
                {"source": "bench:probe", "id": f"probe-{i}", "text": f"Probe {i}: latencyprobe fired at the desk."}))
            producer.flush()
            for _ in range(per_gap):
                producer.send(topic, value=next(background))
                time.sleep(max(0.0, args.interval / per_gap - 0.0005))
            producer.flush()
            time.sleep(max(0.0, args.interval - (time.monotonic() - t)))
        probes = collect(stack, {f"probe-{i}" for i in range(args.probes)}, 60)
        time.sleep(2)
        stop.set()
        reader.join(5)
        producer.close()
        stack.stop_all()
    redis.stop()

    values = list(lat.values())
    print(f"probes: {args.probes} every {args.interval:.1f} s, background {args.background:.0f} fragments/s")
    print(f"alerts received: {len(values)} for {len(probes)}/{args.probes} probes enriched")
    if values:
        print(f"alert latency (probe arrival in Kafka -> alert read from news.alerts): "
              f"p50 {percentile(values, .5):.0f} ms, p99 {percentile(values, .99):.0f} ms, max {max(values):.0f} ms")


if __name__ == "__main__":
    main()
