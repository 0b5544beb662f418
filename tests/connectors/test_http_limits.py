"""HTTP ingest under hostile clients: slow or oversized request heads, slow bodies, too many
connections, methods it does not take, and /health while the broker goes away and comes back.

Every connection is to 127.0.0.1, every wait bounded. Only the broker test needs a broker; the
others run against an endpoint whose broker address is a closed port (posts would get 503).
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.kafka import KafkaBroker
from connectors.sources.http import HttpLimits, HttpSource
from core.settings import Settings, load_settings
from tests.harness import free_port, wait_connected, write_config

TOKEN = "s3cret-token"


def offline_settings(tmp_path: Path) -> Settings:
    cfg = write_config(tmp_path / "newswire.yaml", {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}",
                                                    "data_dir": str(tmp_path)})
    return load_settings(cfg, environ={})


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """serve(**limits) -> a started HttpSource with those HttpLimits (stopped after the test)."""
    with ExitStack() as stack:
        def start(**limits: Any) -> HttpSource:
            source = HttpSource(offline_settings(tmp_path), port=0, token=TOKEN, limits=HttpLimits(**limits))
            source.start()
            stack.callback(source.stop)
            return source
        yield start


def connect(source: HttpSource) -> socket.socket:
    return socket.create_connection(("127.0.0.1", source.port), timeout=5)


def closed_by_peer(sock: socket.socket, wait_s: float) -> tuple[bool, bytes]:
    """Whether the server closed `sock` within `wait_s`, and what it sent before that."""
    received = b""
    deadline = time.monotonic() + wait_s
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return True, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


def trickle(sock: socket.socket, data: bytes, every_s: float, for_s: float) -> tuple[bool, bytes, float]:
    """Send `data` a byte at a time, one every `every_s`, until the server closes the connection or
    `for_s` passed: (closed, what the server sent, seconds it took)."""
    started = time.monotonic()
    received = b""
    for i in range(int(for_s / every_s)):
        try:
            sock.sendall(data[i % len(data):i % len(data) + 1])
        except (BrokenPipeError, ConnectionResetError):
            return True, received, time.monotonic() - started
        closed, more = closed_by_peer(sock, every_s)
        received += more
        if closed:
            return True, received, time.monotonic() - started
    return False, received, time.monotonic() - started


def test_slow_or_missing_request_head_is_cut_off(serve: Any) -> None:
    source = serve(header_timeout_s=1)
    with connect(source) as idle:  # connects and sends nothing
        closed, _ = closed_by_peer(idle, wait_s=4)
        assert closed, "an idle connection was kept past header_timeout_s"
    with connect(source) as slow:  # slowloris: the head, a byte every 0.2 s
        slow.sendall(b"POST /fragments HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed, _, took = trickle(slow, b"X-Slow: drip\r\n", every_s=0.2, for_s=5)
        assert closed and took < 3, f"a head trickled in for {took:.1f}s and the connection is still open"
    # A client that sends its head in time is served, and its keep-alive connection gets a new deadline.
    with httpx.Client(base_url=source.url, timeout=5) as client:
        assert client.get("/openapi.json").status_code == 200
        time.sleep(0.5)
        assert client.get("/openapi.json").status_code == 200


def test_slow_body_gets_408_and_the_connection_closed(serve: Any) -> None:
    source = serve(header_timeout_s=5, body_timeout_s=1)
    with connect(source) as sock:
        sock.sendall(b"POST /fragments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[")
        closed, received, took = trickle(sock, b" ", every_s=0.2, for_s=5)
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert b"request_timeout" in received
    assert closed and took < 3


def test_oversized_request_head_is_refused(serve: Any) -> None:
    source = serve(max_header_bytes=8192)
    with httpx.Client(base_url=source.url, timeout=5) as client:
        assert client.get("/openapi.json", headers={"X-Pad": "a" * 4000}).status_code == 200
    with connect(source) as sock:
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 12_000 + b"\r\n\r\n")
        closed, received = closed_by_peer(sock, wait_s=5)
    assert received.split(b" ", 2)[1] in (b"400", b"431"), received[:200]
    assert closed


def test_methods_it_does_not_take_get_405_with_allow(serve: Any) -> None:
    source = serve()
    with httpx.Client(base_url=source.url, timeout=5) as client:
        for method, path, allowed in [("TRACE", "/fragments", {"POST"}), ("PUT", "/fragments", {"POST"}),
                                      ("TRACE", "/health", {"GET", "HEAD"}), ("DELETE", "/openapi.json", {"GET", "HEAD"})]:
            r = client.request(method, path)
            assert r.status_code == 405, (method, path, r.status_code)
            assert {m.strip() for m in r.headers["allow"].split(",")} == allowed, (method, path, r.headers)
            assert r.json()["error"] == "method_not_allowed"
        assert "canary-7f3" not in client.request("TRACE", "/fragments", headers={"X-Echo": "canary-7f3"}).text


def test_connections_past_the_cap_get_503(serve: Any) -> None:
    source = serve(max_connections=4, header_timeout_s=30)
    with ExitStack() as stack:
        held = [stack.enter_context(connect(source)) for _ in range(4)]
        with httpx.Client(base_url=source.url, timeout=5) as client:
            deadline = time.monotonic() + 5
            status = 0
            while time.monotonic() < deadline and status != 503:  # until the server has seen all four
                status = client.get("/openapi.json").status_code
                time.sleep(0.05)
            assert status == 503, "a fifth connection was served past max_connections=4"
        held.pop().close()
        with httpx.Client(base_url=source.url, timeout=5) as client:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and status != 200:  # the fourth is served again
                status = client.get("/openapi.json").status_code
                time.sleep(0.05)
            assert status == 200


def health(source: HttpSource) -> httpx.Response:
    return httpx.get(f"{source.url}/health", timeout=5)


def wait_health(source: HttpSource, status: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    r = health(source)
    while r.status_code != status and time.monotonic() < deadline:
        time.sleep(0.2)
        r = health(source)
    assert r.status_code == status, r.text
    return dict(r.json())


@pytest.mark.e2e
def test_health_follows_a_broker_outage(tmp_path: Path) -> None:
    """A broker of this test's own, stopped and started again under a connected endpoint."""
    cfg = write_config(tmp_path / "newswire.yaml", {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}",
                                                    "kafka.embedded.controller_port": free_port(),
                                                    "data_dir": str(tmp_path)})
    settings = load_settings(cfg, environ={})
    broker = KafkaBroker(settings).start()
    source = HttpSource(settings, port=0, token=TOKEN)
    try:
        source.start()
        wait_connected(source)
        assert health(source).json()["broker"] == "connected"
        broker.stop()
        down = wait_health(source, 503, timeout_s=15)
        assert down["broker"] == "unavailable" and down["error"], down
        assert httpx.get(f"{source.url}/readyz").status_code == 503  # /readyz is /health
        assert httpx.get(f"{source.url}/healthz").json() == {"alive": True}
        broker.start()
        up = wait_health(source, 200, timeout_s=60)
        assert up["broker"] == "connected" and up["error"] is None
    finally:
        source.stop()
        broker.stop()
