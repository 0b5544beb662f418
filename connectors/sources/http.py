"""HttpSource: the ``POST /fragments`` ingest endpoint (Starlette app served by uvicorn).

A post carries one fragment (a JSON object), a batch (a JSON array) or NDJSON (one object a line,
``Content-Type: application/x-ndjson``). A batch is all or nothing: every fragment is checked
against config/schemas/fragment.v1.json first, and the answer is ``202`` only after the broker
acknowledged every record of it (acks=all, idempotent producer). Refusals are JSON bodies
``{"error": code, "message": what is wrong and what to do}``:

=====  ======================  ===========================================================
401    unauthorized            missing or wrong ``Authorization: Bearer <token>``
405    method_not_allowed      a method the path does not take (``Allow`` lists those it does)
408    request_timeout         the body did not arrive within ``HttpLimits.body_timeout_s``
413    payload_too_large       body over ``connectors.http.max_body_bytes``
431    headers_too_large       request line and headers over ``HttpLimits.max_header_bytes``
415    unsupported_media_type  not application/json or application/x-ndjson
422    invalid_json /          body is not JSON, or a fragment breaks the schema
       invalid_fragments       (``errors`` lists each by index; nothing was written)
429    rate_limited            over the client address's token bucket (``Retry-After``)
503    broker_unavailable /    no connection to Kafka yet, too many records waiting for
       buffer_full /           acknowledgement, or the broker did not acknowledge in
       not_acknowledged        ``ack_timeout_s``; the client should retry (``Retry-After``)
=====  ======================  ===========================================================

``GET /openapi.json`` describes the API; ``GET /health`` (and ``/readyz``, the same answer) says whether
the broker is reachable now, ``GET /healthz`` that the process answers;
``GET /metrics`` counts requests by outcome and times the broker's acknowledgements, for Prometheus
(names in docs/deploy.md#metrics). None needs the token: they carry no fragment data.

What a client can hold of the server is bounded (:class:`HttpLimits`): a request head must arrive
within ``header_timeout_s`` (else the connection is closed) and stay under ``max_header_bytes``
(431, or 400 from the parser when it is still incomplete past that size), a body within
``body_timeout_s`` (408), and past ``max_connections`` open connections a request is answered 503.
A client that trickles bytes (slowloris) is cut off.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import h11
import orjson
import uvicorn
from kafka.producer.future import RecordMetadata
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from connectors.metrics import exposition
from connectors.process import is_loopback
from connectors.sources.base import BaseSource, BufferFull, FragmentWriter, complete_fragment, fragment_error
from connectors.status import ConnectorStatus, StatusBoard
from core.schemas import load_schema
from core.settings import ConfigError, Settings

log = logging.getLogger(__name__)

JSON_TYPES = {"application/json"}
NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}


class Refusal(Exception):
    """A request the endpoint will not take: HTTP status, stable code, a message saying what to do."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers, extra

    def response(self) -> Response:
        return _json(self.status, {"error": self.code, "message": self.message, **self.extra}, self.headers)


def _json(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


@dataclass(frozen=True)
class HttpLimits:
    """What one client may hold of the ingest server.

    ``header_timeout_s``: time from connecting (or from the previous response) until the request
    head is complete, else the connection is closed; ``body_timeout_s``: time to receive the whole
    body once the head is in (408); ``max_connections``: open connections past which requests are
    answered 503 (uvicorn's ``limit_concurrency``); ``max_header_bytes``: request line and headers
    together (431; h11 answers 400 once an incomplete head grows past it).
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 2048
    max_header_bytes: int = 8192


def head_deadline_protocol(timeout_s: float) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request head takes over `timeout_s`.

    uvicorn has no such timeout: a client that sends a header byte now and then holds its
    connection forever (its keep-alive timeout only runs between requests, and any byte resets it).
    """

    class H11WithHeadDeadline(H11Protocol):
        _head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the head is in
                self._disarm()
            elif self._head_deadline is None:
                self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._arm()  # the next request's head gets the same time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_deadline = self.loop.call_later(timeout_s, self._head_too_slow)

        def _disarm(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_too_slow(self) -> None:
            self._head_deadline = None
            if not self.transport.is_closing():
                self.logger.info("closing %s: no complete request head in %gs", self.client, timeout_s)
                self.transport.close()

    return H11WithHeadDeadline


def limit_head_size(app: ASGIApp, max_bytes: int, on_refusal: Callable[[Refusal], None] | None = None) -> ASGIApp:
    """`app` behind a check of the request head's size: over `max_bytes`, 431 and the connection closed
    (and ``on_refusal`` told).

    h11's limit (``h11_max_incomplete_event_size``) holds only while a head is incomplete: one that
    arrives in a single read passes whatever its size.
    """
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = (len(scope["method"]) + len(scope.get("raw_path") or b"") + len(scope["query_string"])
                    + sum(len(name) + len(value) + 4 for name, value in scope["headers"]))
            if size > max_bytes:
                refusal = Refusal(431, "headers_too_large", f"request line and headers take {size} bytes, over the "
                                  f"{max_bytes}-byte limit", {"Connection": "close"})
                if on_refusal is not None:
                    on_refusal(refusal)
                await refusal.response()(scope, receive, send)
                return
        await app(scope, receive, send)
    return guarded


class RateLimiter:
    """A token bucket per client address: `rate` requests/s on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, client: str) -> float:
        """0 if the request may go ahead (a token is taken), else seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > 10_000:  # forget idle clients; a full bucket is the default anyway
            self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < self.burst / self.rate}
        return 0.0


def parse_body(body: bytes, media_type: str) -> list[Any]:
    """The fragments a body holds (not yet validated); Refusal 422 if it is not JSON / NDJSON."""
    if media_type in NDJSON_TYPES:
        items = []
        for n, line in enumerate(body.splitlines(), start=1):
            if line.strip():
                try:
                    items.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise Refusal(422, "invalid_json", f"line {n} is not JSON: {exc}") from None
        return items
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refusal(422, "invalid_json", f"body is not JSON: {exc}") from None
    return doc if isinstance(doc, list) else [doc]


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the endpoint; the fragment schema is config/schemas/fragment.v1.json."""
    fragment = {k: v for k, v in load_schema("fragment").items() if k not in ("$schema", "$id")}
    problem = {"type": "object", "required": ["error", "message"],
               "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                              "errors": {"type": "array", "items": {"type": "object", "properties": {
                                  "index": {"type": "integer"}, "error": {"type": "string"}}}}}}

    def refusal(text: str) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}

    return {
        "openapi": "3.1.0",
        "info": {"title": "Newswire HTTP ingest", "version": "1.0.0",
                 "description": f"Push fragments into the Kafka topic {settings.kafka.topics.fragments.name}."},
        "components": {
            "schemas": {"Fragment": fragment, "Problem": problem},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/fragments": {"post": {
                "summary": "Ingest one fragment, a JSON array of fragments, or NDJSON (all or nothing)",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"oneOf": [
                        {"$ref": "#/components/schemas/Fragment"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/Fragment"}, "minItems": 1}]}},
                    "application/x-ndjson": {"schema": {"type": "string",
                                                        "description": "one Fragment object per line"}}}},
                "responses": {
                    "202": {"description": "every fragment was acknowledged by the broker", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "accepted": {"type": "integer"}, "topic": {"type": "string"},
                            "records": {"type": "array", "items": {"type": "object", "properties": {
                                "partition": {"type": "integer"}, "offset": {"type": "integer"}}}}}}}}},
                    "401": refusal("missing or wrong bearer token"),
                    "408": refusal("the body did not arrive in time (the connection is closed)"),
                    "413": refusal("body larger than max_body_bytes"),
                    "415": refusal("content type is not application/json or application/x-ndjson"),
                    "422": refusal("not JSON, or a fragment does not match the schema (nothing written)"),
                    "429": refusal("rate limit for this client address exceeded; see Retry-After"),
                    "503": refusal("broker unreachable, buffer full or no acknowledgement in time; retry"),
                }}},
            "/health": {"get": {"summary": "Broker connection and delivery counters", "security": [],
                                "responses": {"200": {"description": "connected"},
                                              "503": {"description": "no broker connection"}}}},
            "/readyz": {"get": {"summary": "Ready: the same answer as /health", "security": [],
                                "responses": {"200": {"description": "connected"},
                                              "503": {"description": "no broker connection"}}}},
            "/healthz": {"get": {"summary": "Alive: the process answers", "security": [],
                                 "responses": {"200": {"description": "alive"}}}},
        },
    }


class IngestMetrics:
    """The endpoint's Prometheus metrics, in a registry of its own (one per HttpSource)."""

    def __init__(self, source: HttpSource) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("newswire_http_requests", "POST /fragments requests by answer: HTTP status and "
                                "reason (the refusal's error code, 'accepted' for 202)", ["status", "reason"],
                                registry=self.registry)
        self.fragments = Counter("newswire_http_fragments_accepted", "Fragments the broker acknowledged",
                                 registry=self.registry)
        self.produce_latency = Histogram("newswire_http_produce_latency_seconds", "From the first send of an "
                                         "accepted request's fragments until the broker acknowledged all of them",
                                         registry=self.registry)
        connected = Gauge("newswire_http_broker_connected", "1 while the producer is connected to the broker",
                          registry=self.registry)
        connected.set_function(lambda: 0 if source.writer is None else 1)
        in_flight = Gauge("newswire_http_in_flight", "Fragments sent and waiting for the broker's "
                          "acknowledgement", registry=self.registry)
        in_flight.set_function(lambda: source.writer.in_flight if source.writer is not None else 0)

    def refused(self, refusal: Refusal) -> None:
        self.requests.labels(str(refusal.status), refusal.code).inc()


class HttpSource(BaseSource):
    """Serves the ingest app on ``connectors.http.host:port`` from a background thread.

    `token` overrides the environment variable ``connectors.http.token_env``; with neither set,
    posts need no token, which is allowed only on a loopback host. ``port`` 0 picks a free port
    (read ``self.port`` after ``start()``). ``limits``: see :class:`HttpLimits`.
    """

    name = "http"
    summary = "serve POST /fragments (connectors.http)"

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument("--host", default=None, help="listen address (default: connectors.http.host)")
        parser.add_argument("--port", type=int, default=None, help="port (default: connectors.http.port; 0: any free)")

    @classmethod
    def from_args(cls, settings: Settings, args: Any) -> HttpSource:
        return cls(settings, host=args.host, port=args.port)

    def describe(self) -> str:
        auth = "bearer token required" if self.token else "no token (loopback only)"
        return (f"http ingest: POST {self.url}/fragments -> {self.default_topic} ({auth}; "
                f"API at {self.url}/openapi.json, metrics at {self.url}/metrics)")

    #: How long a broker probe's answer is reused by /health.
    BROKER_PROBE_TTL_S = 1.0
    BROKER_PROBE_TIMEOUT_S = 0.5

    def __init__(self, settings: Settings, host: str | None = None, port: int | None = None,
                 token: str | None = None, limits: HttpLimits | None = None) -> None:
        super().__init__(settings)
        self.config = settings.connectors.http
        self.limits = limits or HttpLimits(self.config.header_timeout_s, self.config.body_timeout_s,
                                           self.config.max_connections, self.config.max_header_bytes)
        self._probe: tuple[float, str | None] = (-1e9, None)  # (monotonic time, error or None)
        self.host = host or self.config.host
        self.port = self.config.port if port is None else port
        self.token = token if token is not None else os.environ.get(self.config.token_env) or None
        self.writer: FragmentWriter | None = None
        self.broker_error: str | None = "not connected yet"
        self.requests = 0
        self.accepted = 0
        #: for the status board: last accepted post, last refusal of ours (5xx) with its message, counts
        self.status = ConnectorStatus("http", self.config.source, "")
        self._board: StatusBoard | None = None
        self._limiter = RateLimiter(self.config.rate_limit_per_s, self.config.rate_limit_burst)
        self.metrics = IngestMetrics(self)
        self._stop = threading.Event()
        self._writer_lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._threads: list[threading.Thread] = []
        self.app = self._app()

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 30) -> None:
        if self.token is None and not is_loopback(self.host):
            raise ConfigError(f"connectors.http: refusing to serve {self.host} without a token; set the "
                              f"environment variable {self.config.token_env} (connectors.http.token_env)")
        if self.token is None:
            log.warning("http ingest on %s:%s accepts posts without a token (loopback only); set %s to require one",
                        self.host, self.port, self.config.token_env)
        self._stop.clear()
        self._board = StatusBoard(self.settings).start()
        connector = threading.Thread(target=self._connect, name="http-ingest-broker", daemon=True)
        connector.start()
        limits = self.limits
        config = uvicorn.Config(limit_head_size(self.app, limits.max_header_bytes, self.metrics.refused),
                                host=self.host, port=self.port,
                                log_level="warning", access_log=False, lifespan="off", backlog=4096,
                                timeout_graceful_shutdown=5, http=head_deadline_protocol(limits.header_timeout_s),
                                # uvicorn answers 503 once connections (this one included) reach the limit
                                limit_concurrency=limits.max_connections + 1,
                                h11_max_incomplete_event_size=limits.max_header_bytes)
        self._server = uvicorn.Server(config)
        server_thread = threading.Thread(target=self._server.run, name="http-ingest", daemon=True)
        server_thread.start()
        self._threads = [connector, server_thread]
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not server_thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"http ingest could not listen on {self.host}:{self.port} (in use?)")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self.status.target = f"{self.url}/fragments"
        self._board.report(self.status)

    def _connect(self) -> None:
        """Connect to the broker, retrying until it answers; posts get 503 meanwhile."""
        while not self._stop.is_set():
            try:
                writer = FragmentWriter(self.settings, max_in_flight=self.config.max_in_flight,
                                        bootstrap_timeout_ms=5000, max_block_ms=5000)
                writer.warm_up()
                with self._writer_lock:
                    if self._stop.is_set():  # stopped while connecting
                        writer.close()
                        return
                    self.writer, self.broker_error = writer, None
                return
            except Exception as exc:  # noqa: BLE001 - any failure to connect means: retry
                self.broker_error = f"{type(exc).__name__}: {exc}"
                log.warning("http ingest: Kafka at %s not reachable (%s); retrying", self.settings.kafka.bootstrap_servers,
                            self.broker_error)
                self._stop.wait(2)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        for thread in self._threads[1:]:  # the server; the connector thread ends on its own
            thread.join(15)
        self._threads = []
        self._server = None
        # A connection attempt still under way closes its own writer once it sees the stop.
        with self._writer_lock:
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        if self._board is not None:
            self._board.stop()
            self._board = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ the app
    def _app(self) -> Starlette:
        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            if exc.status_code == 405:  # Starlette names the path's methods in Allow
                allowed = (exc.headers or {}).get("Allow", "")
                return _json(405, {"error": "method_not_allowed", "message": f"{request.method} is not taken on "
                                   f"{request.url.path}; it takes {allowed}"}, exc.headers)
            return _json(exc.status_code, {"error": "http_error", "message": exc.detail}, exc.headers)

        async def openapi(request: Request) -> Response:
            return _json(200, openapi_document(self.settings))

        return Starlette(routes=[
            Route("/fragments", self._post_fragments, methods=["POST"]),
            Route("/health", self._health, methods=["GET"]),
            Route("/healthz", lambda request: _json(200, {"alive": True}), methods=["GET"]),
            Route("/readyz", self._health, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
        ], exception_handlers={HTTPException: http_error})

    async def _metrics(self, request: Request) -> Response:
        body, content_type = exposition(self.metrics.registry)
        return Response(body, media_type=content_type)

    async def _health(self, request: Request) -> Response:
        writer = self.writer
        error = self.broker_error if writer is None else await self._probe_broker()
        body = {"broker": "unavailable" if error else "connected", "error": error,
                "requests": self.requests, "accepted": self.accepted,
                "delivered": writer.delivered if writer else 0, "failed": writer.failed if writer else 0,
                "in_flight": writer.in_flight if writer else 0, "last_delivery_error": writer.last_error if writer else None}
        return _json(503 if error else 200, body)

    async def _probe_broker(self) -> str | None:
        """None if a bootstrap server takes a TCP connection now, else why not; an answer is reused
        for BROKER_PROBE_TTL_S, so /health polled hard costs the broker one connection a second.

        The producer cannot say: it reconnects on demand, keeps an idle connection for minutes, and
        its connection state is not public API.
        """
        checked_at, error = self._probe
        if time.monotonic() - checked_at < self.BROKER_PROBE_TTL_S:
            return error
        servers = self.settings.kafka.bootstrap_servers
        error = f"no TCP connection to {servers} within {self.BROKER_PROBE_TIMEOUT_S:g}s"
        for server in servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                _, connection = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)),
                                                       self.BROKER_PROBE_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError) as exc:
                error = f"{server}: {type(exc).__name__}: {exc or 'timed out'}"
                continue
            connection.close()
            error = None
            break
        self._probe = (time.monotonic(), error)
        return error

    async def _post_fragments(self, request: Request) -> Response:
        self.requests += 1
        try:
            fragments = await self._read(request)
            records = await self._deliver(fragments)
        except Refusal as refusal:
            self.metrics.refused(refusal)
            self._report_refusal(refusal)
            return refusal.response()
        self.accepted += len(records)
        self.metrics.requests.labels("202", "accepted").inc()
        self.metrics.fragments.inc(len(records))
        self.status.succeeded()
        self.status.count("accepted_posts")
        self.status.count("fragments", len(records))
        if self._board is not None:
            self._board.report(self.status)
        return _json(202, {"accepted": len(records), "topic": self.default_topic,
                           "records": [{"partition": md.partition, "offset": md.offset} for md in records]})

    def _report_refusal(self, refusal: Refusal) -> None:
        """Count a refusal; one of ours (5xx: broker away, buffer full) is the connector's last error,
        a client's (4xx) only a count."""
        if refusal.status >= 500:
            self.status.count("refused_5xx")
            self.status.failed(f"{refusal.status} {refusal.code}: {refusal.message}")
        else:
            self.status.count("refused_4xx")
        if self._board is not None:
            self._board.report(self.status)

    def _check_auth(self, request: Request) -> None:
        if self.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise Refusal(401, "unauthorized", "send 'Authorization: Bearer <token>' with the token from "
                          f"the server's {self.config.token_env}", {"WWW-Authenticate": 'Bearer realm="newswire"'})

    async def _read(self, request: Request) -> list[dict[str, Any]]:
        """Authenticate, rate-limit, read and validate the body; the fragments, completed."""
        self._check_auth(request)
        wait = self._limiter.check(request.client.host if request.client else "?")
        if wait:
            raise Refusal(429, "rate_limited", f"more than {self.config.rate_limit_per_s:g} requests/s from this "
                          f"address; retry in {wait:.2f}s", {"Retry-After": str(max(1, round(wait)))})
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in JSON_TYPES | NDJSON_TYPES:
            raise Refusal(415, "unsupported_media_type", f"content type {media_type or '(none)'} is not accepted; "
                          "send application/json (an object or an array) or application/x-ndjson")
        limit = self.config.max_body_bytes
        too_large = Refusal(413, "payload_too_large", f"body is over the {limit}-byte limit; split the batch")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limit:
                        raise too_large
        except TimeoutError:
            raise Refusal(408, "request_timeout", f"the body did not arrive within {self.limits.body_timeout_s:g}s; "
                          "send it faster or in smaller batches", {"Connection": "close"}) from None
        items = parse_body(bytes(body), media_type)
        if not items:
            raise Refusal(422, "invalid_fragments", "the body holds no fragments")
        fragments, errors = [], []
        for index, item in enumerate(items):
            error = fragment_error(item) if not isinstance(item, dict) else None
            if error is None:
                try:
                    item = complete_fragment(item, self.config.source)
                    error = fragment_error(item, self.settings.pipeline.max_fragment_bytes)
                except ValueError as exc:
                    error = f"fragment: published_at: {exc}"
            if error:
                errors.append({"index": index, "error": error})
            else:
                fragments.append(item)
        if errors:
            raise Refusal(422, "invalid_fragments", f"{len(errors)} of {len(items)} fragments do not match "
                          "config/schemas/fragment.v1.json; nothing was written", errors=errors[:100])
        return fragments

    async def _deliver(self, fragments: list[dict[str, Any]]) -> list[RecordMetadata]:
        """Produce all and wait for every acknowledgement (or refuse with 503)."""
        writer = self.writer
        retry = {"Retry-After": "1"}
        if writer is None:
            raise Refusal(503, "broker_unavailable", f"no connection to Kafka at {self.settings.kafka.bootstrap_servers} "
                          f"({self.broker_error}); retry later", retry)
        try:
            writer.reserve(len(fragments))
        except BufferFull as exc:
            raise Refusal(503, "buffer_full", str(exc), retry) from None
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future[RecordMetadata]] = []
        started = time.perf_counter()
        for sent, fragment in enumerate(fragments):
            future: asyncio.Future[RecordMetadata] = loop.create_future()
            try:
                writer.send(fragment, reserved=True, on_delivery=_resolver(loop, future))
            except Exception as exc:  # noqa: BLE001 - reported to the client as 503
                writer.release(len(fragments) - sent - 1)
                raise Refusal(503, "broker_unavailable", f"could not produce: {type(exc).__name__}: {exc}; retry",
                              retry) from None
            waiting.append(future)
        try:
            acknowledged = await asyncio.wait_for(asyncio.gather(*waiting), self.config.ack_timeout_s)
            self.metrics.produce_latency.observe(time.perf_counter() - started)
            return acknowledged
        except TimeoutError:
            raise Refusal(503, "not_acknowledged", f"the broker did not acknowledge within "
                          f"{self.config.ack_timeout_s:g}s; retry (records that arrive late share their event id, "
                          "so the pipeline keeps one copy)", retry) from None
        except Exception as exc:  # noqa: BLE001 - a KafkaError from the delivery callback
            raise Refusal(503, "not_acknowledged", f"the broker refused the write: {type(exc).__name__}: {exc}; retry",
                          retry) from None


def _resolver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[RecordMetadata]) -> Any:
    """A delivery callback (producer I/O thread) that completes `future` on the event loop."""
    def settle(metadata: RecordMetadata | None, error: Exception | None) -> None:
        if future.done():  # the request timed out or the client went away
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(metadata)  # type: ignore[arg-type]

    def on_delivery(metadata: RecordMetadata | None, error: Exception | None) -> None:
        try:
            loop.call_soon_threadsafe(settle, metadata, error)
        except RuntimeError:  # the server shut down while the record was in flight
            pass
    return on_delivery

