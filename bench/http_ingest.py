"""HTTP ingest throughput: requests/s and fragments/s through POST /fragments into the real broker.

    python bench/http_ingest.py [--requests 3000] [--connections 50] [--batch 100]

Starts its own Kafka broker (free loopback ports, temporary data dir) and the ingest endpoint as
`newswire source http` in a separate process, then posts small fragments from this process over
keep-alive HTTP/1.1 connections on 127.0.0.1. Every 202 means the broker acknowledged the records
(acks=all), so the numbers include the Kafka round trip. Scenarios: single fragments one at a time
(latency), single fragments over N connections, batches (JSON arrays) over a few connections.

The load generator is a few lines of asyncio streams rather than an HTTP client library: httpx's
AsyncClient peaks near 150 requests/s on the 2-core VM, so it would measure itself, not the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import orjson
import yaml

TOKEN = "bench-token"


async def _connection(host: str, port: int, bodies: list[bytes], headers: bytes,
                      statuses: list[int], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while bodies:
            body = bodies.pop()
            started = time.perf_counter()
            writer.write(b"POST /fragments HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n%s"
                         % (host.encode(), headers, len(body), body))
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses.append(int(status_line.split()[1]))
    finally:
        writer.close()


def post_concurrently(host: str, port: int, bodies: list[bytes], connections: int, token: str | None = None,
                      content_type: str = "application/json") -> tuple[list[int], list[float], float]:
    """POST every body to /fragments over `connections` keep-alive connections opened at once;
    returns (status codes, per-request latencies in s, wall seconds)."""
    headers = f"Content-Type: {content_type}\r\n".encode()
    if token:
        headers += f"Authorization: Bearer {token}\r\n".encode()
    statuses: list[int] = []
    latencies: list[float] = []
    queue = list(reversed(bodies))

    async def run() -> None:
        await asyncio.gather(*(_connection(host, port, queue, headers, statuses, latencies)
                               for _ in range(min(connections, len(bodies)))))

    started = time.perf_counter()
    asyncio.run(run())
    return statuses, latencies, time.perf_counter() - started


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fragment(i: int) -> dict[str, Any]:
    return {"source": "bench:http", "id": f"b-{i}",
            "text": f"Item {i}: the harbour authority said ferry services would resume after the storm."}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000, help="single-fragment posts per scenario (max 20000)")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--batch", type=int, default=100, help="fragments per batch post")
    ap.add_argument("--batches", type=int, default=200, help="batch posts (max 2000)")
    args = ap.parse_args(argv)
    n, batches = min(args.requests, 20_000), min(args.batches, 2000)

    from connectors.kafka import KafkaBroker
    from core.schemas import config_dir
    from core.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="newswire-bench-http-"))
    http_port = _free_port()
    overrides = {"kafka.bootstrap_servers": f"127.0.0.1:{_free_port()}", "kafka.embedded.controller_port": _free_port(),
                 "data_dir": str(tmp), "connectors.http.port": http_port, "connectors.http.rate_limit_per_s": 0}
    raw = yaml.safe_load((config_dir() / "newswire.yaml").read_text())
    for dotted, value in overrides.items():
        node = raw
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    config = tmp / "newswire.yaml"
    config.write_text(yaml.safe_dump(raw))
    settings = load_settings(config, environ={})

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}", flush=True)
    with KafkaBroker(settings):
        server = subprocess.Popen([sys.executable, "-m", "newswire.cli", "--config", str(config), "source", "http"],
                                  cwd=REPO, env={**os.environ, "NEWSWIRE_HTTP_TOKEN": TOKEN},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_ready(http_port, server)
            post_concurrently("127.0.0.1", http_port, [orjson.dumps(_fragment(-i)) for i in range(1, 200)], 20, TOKEN)
            scenarios = [
                ("single, 1 connection", [orjson.dumps(_fragment(i)) for i in range(min(n, 500))], 1, 1),
                (f"single, {args.connections} connections", [orjson.dumps(_fragment(i)) for i in range(n)],
                 args.connections, 1),
                (f"batch of {args.batch}, 10 connections",
                 [orjson.dumps([_fragment(b * args.batch + j) for j in range(args.batch)]) for b in range(batches)],
                 10, args.batch),
            ]
            print(f"{'scenario':<32} {'requests':>8} {'req/s':>8} {'fragments/s':>12} {'p50 ms':>8} {'p99 ms':>8}")
            for name, bodies, connections, per_request in scenarios:
                statuses, latencies, wall = post_concurrently("127.0.0.1", http_port, bodies, connections, TOKEN)
                bad = {s for s in statuses if s != 202}
                if bad:
                    print(f"{name}: unexpected statuses {sorted(bad)}", file=sys.stderr)
                    return 1
                latencies.sort()
                p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
                print(f"{name:<32} {len(bodies):>8} {len(bodies) / wall:>8.0f} {len(bodies) * per_request / wall:>12.0f} "
                      f"{statistics.median(latencies) * 1000:>8.1f} {p99 * 1000:>8.1f}", flush=True)
        finally:
            server.terminate()
            server.wait(30)
    return 0


def _wait_ready(port: int, server: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"ingest server exited: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("ingest server did not report a broker connection in time")


if __name__ == "__main__":
    sys.exit(main())
