"""The health page's figures, each cheap to read and each allowed to fail on its own.

Throughput is the pipeline's own fragment counts per event-time window (the stats topic, tailed by
the console's feed); consumer lag is the pipeline group's committed offset against the end of each raw-topic partition
(the pipeline commits only what every sink has flushed, so lag is what is not yet stored); Redis
memory is ``INFO memory``; the store's size comes from the store; connector health and the alert
rules file's state are the status records the connectors and the pipeline's alerts stage write to
Redis (:mod:`connectors.status`). A figure that cannot be read shows why instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import CoordinatorNotAvailableError, NotCoordinatorError

from connectors.kafka import make_consumer
from connectors.redis import make_redis
from connectors.sinks.rows import parse_time
from connectors.status import ALERT_RULES, read_status
from core.settings import Settings


def consumer_lag(settings: Settings) -> dict[str, Any]:
    """Per partition of the raw topic (``partitions``): end offset, the pipeline group's committed
    offset, lag; ``note`` says why no committed offsets were known (None when they were)."""
    topic = settings.kafka.topics.fragments.name
    # A page waits for these: a broker that does not answer costs 2 s, not kafka-python's 30 s.
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers.split(","),
                             client_id="newswire-console", request_timeout_ms=5000, bootstrap_timeout_ms=2000)
    consumer = make_consumer(settings, group_id=None, request_timeout_ms=5000, bootstrap_timeout_ms=2000)
    try:
        group = settings.kafka.consumer_group
        note = None
        try:
            offsets = admin.list_group_offsets({group: None}).get(group, {})
        except (CoordinatorNotAvailableError, NotCoordinatorError) as exc:
            # on a cluster where no group has committed yet, the offsets topic is still being made
            offsets, note = {}, f"no committed offsets known ({type(exc).__name__}): the pipeline has not committed yet"
        committed = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = consumer.end_offsets(partitions)
    finally:
        consumer.close()
        admin.close()
    rows = []
    for tp in partitions:
        done = committed.get(tp.partition)
        rows.append({"partition": tp.partition, "end": ends[tp], "committed": done,
                     "lag": ends[tp] - (done if done is not None and done >= 0 else 0)})
    return {"partitions": rows, "note": note}


def throughput(windows: dict[tuple[str, str], dict[str, int]], last: int = 10) -> list[dict[str, Any]]:
    """The newest `last` fragment-count windows (the pipeline's stats topic), newest first: start,
    end, fragments, fragments per second and the busiest sources."""
    rows = []
    for (start, end), by_source in sorted(windows.items(), reverse=True)[:last]:
        begun, ended = parse_time(start), parse_time(end)
        seconds = (ended - begun).total_seconds() if begun and ended and ended > begun else 0.0
        total = sum(by_source.values())
        rows.append({"start": start, "end": end, "fragments": total,
                     "per_s": total / seconds if seconds else None,
                     "sources": sorted(by_source.items(), key=lambda kv: (-kv[1], kv[0]))[:3]})
    return rows


def redis_memory(settings: Settings) -> dict[str, Any]:
    """Redis ``INFO memory``: used and peak memory, the maxmemory limit (0: none), summed over the
    state's servers (``redis.url`` and those of ``redis.stage_urls``; ``servers``: how many)."""
    infos = []
    for url in settings.redis.server_stages(settings.state_stages):
        client = make_redis(url, retries=0, socket_timeout_s=2.0)
        try:
            infos.append(client.info("memory"))
        finally:
            client.close()
    limits = [int(info.get("maxmemory") or 0) for info in infos]
    return {"used": sum(int(info["used_memory"]) for info in infos),
            "peak": sum(int(info["used_memory_peak"]) for info in infos),
            "maxmemory": 0 if 0 in limits else sum(limits),  # one server without a limit: none in all
            "servers": len(infos)}


def status_board(settings: Settings) -> dict[str, Any]:
    """The status hash: ``connectors`` (their records, by kind then name) and ``alert_rules`` (the
    alerts stage's record of its rules file, None before a worker wrote one)."""
    client = make_redis(settings.redis.url, retries=0, socket_timeout_s=2.0)
    try:
        records = read_status(client, settings.redis.namespace)
    finally:
        client.close()
    connectors = sorted((r for name, r in records.items() if name.startswith("connector:")),
                        key=lambda r: (str(r.get("kind")), str(r.get("name"))))
    for record in connectors:
        counts = record.get("counts")
        record["counts"] = sorted((str(k), v) for k, v in counts.items() if isinstance(v, int)) \
            if isinstance(counts, dict) else []
    return {"connectors": connectors, "alert_rules": records.get(ALERT_RULES)}


def measure(read: Callable[[], Any]) -> dict[str, Any]:
    """``{"value": read(), "error": None}``, or ``{"value": None, "error": why}`` when it failed."""
    try:
        return {"value": read(), "error": None}
    except Exception as exc:  # noqa: BLE001 - shown on the page as the figure's error
        return {"value": None, "error": f"{type(exc).__name__}: {exc}"[:300]}


def size(num_bytes: int) -> str:
    """Bytes for people: 1.5 MB."""
    value = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
