"""HTTP ingest against the real broker: POST /fragments over TCP on 127.0.0.1, records read back from Kafka."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from bench.http_ingest import post_concurrently
from connectors.redis import RedisServer
from connectors.sources.http import HttpSource
from core.settings import load_settings
from tests.harness import (
    Stack,
    free_port,
    http_ingest,
    scrape,
    series,
    status_records,
    wait_connected,
    write_config,
)

pytestmark = pytest.mark.e2e

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def fragment(i: int, **extra: Any) -> dict[str, Any]:
    return {"source": "http:test", "id": f"f-{i}", "text": f"Item {i}: the ferry resumed service on Tuesday.", **extra}


@pytest.fixture
def ingest(stack: Stack) -> Iterator[HttpSource]:
    with http_ingest(stack.settings, TOKEN) as source:
        yield source


def post(source: HttpSource, body: bytes | Any, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> httpx.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{source.url}/fragments", content=data,
                      headers={"Content-Type": content_type, **AUTH, **(headers or {})}, timeout=30)


def test_valid_batch_is_acknowledged_and_on_the_topic(stack: Stack, ingest: HttpSource) -> None:
    batch = [fragment(i) for i in range(3)]
    batch.append({"source": "http:test", "id": "html-1", "text": "<p>First para.</p><p>Second &amp; last.</p>",
                  "content_type": "text/html", "published_at": "Tue, 10 Jun 2025 04:00:00 +0200"})
    r = post(ingest, batch)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 4 and len(body["records"]) == 4
    assert all(rec["offset"] >= 0 for rec in body["records"])
    ndjson = b"\n".join(orjson.dumps(fragment(i)) for i in range(10, 12)) + b"\n"
    r = post(ingest, ndjson, "application/x-ndjson")
    assert r.status_code == 202 and r.json()["accepted"] == 2, r.text
    single = post(ingest, fragment(20))
    assert single.status_code == 202 and single.json()["accepted"] == 1

    records = stack.consume("fragments", lambda rs: len(rs) >= 7, timeout_s=20)
    assert sorted(r["id"] for r in records) == sorted(["f-0", "f-1", "f-2", "html-1", "f-10", "f-11", "f-20"])
    html = next(r for r in records if r["id"] == "html-1")
    assert html["text"] == "First para.\n\nSecond & last."
    assert html["published_at"] == "2025-06-10T02:00:00Z"
    assert all(r["received_at"] for r in records)


def test_each_bad_request_gets_its_status_and_a_json_reason(stack: Stack, ingest: HttpSource) -> None:
    url = f"{ingest.url}/fragments"
    no_token = httpx.post(url, content=orjson.dumps(fragment(1)), headers={"Content-Type": "application/json"})
    assert no_token.status_code == 401 and no_token.json()["error"] == "unauthorized"
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    wrong = post(ingest, fragment(1), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401

    too_big = post(ingest, [fragment(i, text="x" * 2000) for i in range(600)])
    assert too_big.status_code == 413 and "limit" in too_big.json()["message"]

    form = post(ingest, b"text=hello", "application/x-www-form-urlencoded")
    assert form.status_code == 415 and "application/json" in form.json()["message"]

    not_json = post(ingest, b"{not json")
    assert not_json.status_code == 422 and not_json.json()["error"] == "invalid_json"

    bad = post(ingest, [fragment(1), {"source": "x", "txt": "wrong field"}, fragment(3, published_at="soon-ish"),
                        fragment(4, text="   ")])
    assert bad.status_code == 422
    errors = bad.json()["errors"]
    assert [e["index"] for e in errors] == [1, 2, 3], errors
    assert "text" in errors[0]["error"] and "published_at" in errors[1]["error"]

    # A rejected batch wrote nothing, not even its valid first fragment.
    assert post(ingest, fragment(99)).status_code == 202
    records = stack.consume("fragments", lambda rs: any(r["id"] == "f-99" for r in rs), timeout_s=20)
    assert [r["id"] for r in records] == ["f-99"]

    # GET /metrics (no token needed) counts each answer by status and reason, and times the one produce
    m = scrape(f"{ingest.url}/metrics")
    assert series(m, "newswire_http_requests_total", "status", "reason") == {
        ("401", "unauthorized"): 2, ("413", "payload_too_large"): 1, ("415", "unsupported_media_type"): 1,
        ("422", "invalid_json"): 1, ("422", "invalid_fragments"): 1, ("202", "accepted"): 1}
    assert series(m, "newswire_http_fragments_accepted_total") == {(): 1}
    assert series(m, "newswire_http_produce_latency_seconds_count") == {(): 1}
    assert 0 < series(m, "newswire_http_produce_latency_seconds_sum")[()] < 30
    assert series(m, "newswire_http_broker_connected") == {(): 1} and series(m, "newswire_http_in_flight") == {(): 0}
    # and the status board (the console's health page): clients' refusals are counts, not our errors
    ingest._board.flush()  # type: ignore[union-attr]  # what its thread does every 2 s
    status = status_records(stack.settings)["connector:http:http:ingest"]
    assert status["counts"] == {"refused_4xx": 6, "accepted_posts": 1, "fragments": 1}
    assert status["last_success"] and status["last_error"] is None
    assert status["target"] == f"{ingest.url}/fragments"


def test_rate_limit_answers_429_with_retry_after(make_stack: Any) -> None:
    stack = make_stack(**{"connectors.http.rate_limit_per_s": 0.5, "connectors.http.rate_limit_burst": 2})
    source = HttpSource(stack.settings, port=0, token=TOKEN)
    source.start()
    try:
        wait_connected(source)
        codes = [post(source, fragment(i)).status_code for i in range(3)]
        assert codes == [202, 202, 429]
        limited = post(source, fragment(9))
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"] == "rate_limited"
    finally:
        source.stop()


def test_broker_unreachable_answers_503(tmp_path: Any, redis_server: RedisServer, redis_namespace: str) -> None:
    cfg = write_config(tmp_path / "newswire.yaml", {"kafka.bootstrap_servers": f"127.0.0.1:{free_port()}",
                                                    "data_dir": str(tmp_path), "redis.url": redis_server.url,
                                                    "redis.namespace": redis_namespace})
    settings = load_settings(cfg, environ={})
    source = HttpSource(settings, port=0, token=TOKEN)
    source.start()
    try:
        r = post(source, fragment(1))
        assert r.status_code == 503 and r.json()["error"] == "broker_unavailable"
        assert r.headers["retry-after"] == "1"
        assert httpx.get(f"{source.url}/health").status_code == 503
    finally:
        source.stop()
    # the connector's own failure is its last error on the status board, message and all
    status = status_records(settings)["connector:http:http:ingest"]
    assert status["counts"] == {"refused_5xx": 1} and status["last_success"] is None
    assert status["last_error"].startswith("503 broker_unavailable: no connection to Kafka at 127.0.0.1:")


def test_openapi_document_is_served(ingest: HttpSource) -> None:
    doc = httpx.get(f"{ingest.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    responses = doc["paths"]["/fragments"]["post"]["responses"]
    assert set(responses) == {"202", "401", "408", "413", "415", "422", "429", "503"}
    assert "text" in doc["components"]["schemas"]["Fragment"]["properties"]


def test_thousand_concurrent_posts_land_exactly_once(make_stack: Any) -> None:
    stack = make_stack(**{"connectors.http.rate_limit_per_s": 0})
    source = HttpSource(stack.settings, port=0, token=TOKEN)
    source.start()
    try:
        wait_connected(source)
        # 1,000 connections opened at once, one small post each (httpx's async pool is too slow
        # on 2 cores to make them concurrent; the bench's asyncio-streams client is not).
        bodies = [orjson.dumps(fragment(i)) for i in range(1000)]
        statuses, _, _ = post_concurrently("127.0.0.1", source.port, bodies, connections=1000, token=TOKEN)
        assert Counter(statuses) == {202: 1000}
        records = stack.consume("fragments", lambda rs: len(rs) >= 1000, timeout_s=30)
        assert len(records) == 1000
        assert Counter(r["id"] for r in records) == {f"f-{i}": 1 for i in range(1000)}
        assert source.writer is not None and source.writer.in_flight == 0
    finally:
        source.stop()
