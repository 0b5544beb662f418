"""Streaming semantics: while the Kafka source stays unbounded, an event-time window fires soon
after it closes (the FnApiRunner only emits windows when a pipeline drains; Prism must not)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

pytestmark = pytest.mark.e2e


def test_windowed_count_is_emitted_within_seconds_of_window_close(make_stack) -> None:
    stack = make_stack(**{"pipeline.stats_window_s": 3})
    stack.start_pipeline()
    # Warm-up: wait until the pipeline is reading (its first window came out), so startup time is
    # not counted against the window latency.
    stack.produce([{"source": "warmup", "text": "warm-up fragment for the streaming test, in English."}])
    assert stack.consume("stats", lambda r: len(r) >= 1, timeout_s=90), stack.pipeline_log()

    stack.produce([{"source": "probe", "id": str(i), "text": f"Probe fragment {i} for the window test."}
                   for i in range(10)])
    produced_at = time.time()
    stats = stack.consume("stats", lambda r: any(s["source"] == "probe" for s in r), timeout_s=30)
    probe = [s for s in stats if s["source"] == "probe"]
    assert probe, "no window for the probe fragments while the stream is running"
    assert sum(s["fragments"] for s in probe) == 10 or probe[0]["fragments"] <= 10
    window_end = datetime.fromisoformat(probe[0]["window_end"]).timestamp()
    emitted = datetime.fromisoformat(probe[0]["emitted_at"]).timestamp()
    assert window_end <= produced_at + 3.5
    lag = emitted - window_end
    assert 0 <= lag < 5, f"window emitted {lag:.1f}s after it closed"
