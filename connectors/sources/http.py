"""HttpSource: the ``POST /fragments`` ingest endpoint (Starlette app served by uvicorn).

A post carries one fragment (a JSON object), a batch (a JSON array) or NDJSON (one object a line,
``Content-Type: application/x-ndjson``). A batch is all or nothing: every fragment is checked
against config/schemas/fragment.v1.json first, and the answer is ``202`` only after the broker
acknowledged every record of it (acks=all, idempotent producer). Refusals are JSON bodies
``{"error": code, "message": what is wrong and what to do}``:

=====  ======================  ===========================================================
401    unauthorized            missing or wrong ``Authorization: Bearer <token>``
413    payload_too_large       body over ``connectors.http.max_body_bytes``
415    unsupported_media_type  not application/json or application/x-ndjson
422    invalid_json /          body is not JSON, or a fragment breaks the schema
       invalid_fragments       (``errors`` lists each by index; nothing was written)
429    rate_limited            over the client address's token bucket (``Retry-After``)
503    broker_unavailable /    no connection to Kafka yet, too many records waiting for
       buffer_full /           acknowledgement, or the broker did not acknowledge in
       not_acknowledged        ``ack_timeout_s``; the client should retry (``Retry-After``)
=====  ======================  ===========================================================

``GET /openapi.json`` describes the API; ``GET /health`` says whether the broker is reachable.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import threading
import time
from typing import Any

import orjson
import uvicorn
from kafka.producer.future import RecordMetadata
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.sources.base import BaseSource, BufferFull, FragmentWriter, complete_fragment, fragment_error
from newswire.schemas import load_schema
from newswire.settings import ConfigError, Settings

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


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


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
                    "413": refusal("body larger than max_body_bytes"),
                    "415": refusal("content type is not application/json or application/x-ndjson"),
                    "422": refusal("not JSON, or a fragment does not match the schema (nothing written)"),
                    "429": refusal("rate limit for this client address exceeded; see Retry-After"),
                    "503": refusal("broker unreachable, buffer full or no acknowledgement in time; retry"),
                }}},
            "/health": {"get": {"summary": "Broker connection and delivery counters", "security": [],
                                "responses": {"200": {"description": "connected"},
                                              "503": {"description": "no broker connection"}}}},
        },
    }


class HttpSource(BaseSource):
    """Serves the ingest app on ``connectors.http.host:port`` from a background thread.

    `token` overrides the environment variable ``connectors.http.token_env``; with neither set,
    posts need no token, which is allowed only on a loopback host. ``port`` 0 picks a free port
    (read ``self.port`` after ``start()``).
    """

    def __init__(self, settings: Settings, host: str | None = None, port: int | None = None,
                 token: str | None = None) -> None:
        super().__init__(settings)
        self.config = settings.connectors.http
        self.host = host or self.config.host
        self.port = self.config.port if port is None else port
        self.token = token if token is not None else os.environ.get(self.config.token_env) or None
        self.writer: FragmentWriter | None = None
        self.broker_error: str | None = "not connected yet"
        self.requests = 0
        self.accepted = 0
        self._limiter = RateLimiter(self.config.rate_limit_per_s, self.config.rate_limit_burst)
        self._stop = threading.Event()
        self._writer_lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._threads: list[threading.Thread] = []
        self.app = self._app()

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 30) -> None:
        if self.token is None and not _is_loopback(self.host):
            raise ConfigError(f"connectors.http: refusing to serve {self.host} without a token; set the "
                              f"environment variable {self.config.token_env} (connectors.http.token_env)")
        if self.token is None:
            log.warning("http ingest on %s:%s accepts posts without a token (loopback only); set %s to require one",
                        self.host, self.port, self.config.token_env)
        self._stop.clear()
        connector = threading.Thread(target=self._connect, name="http-ingest-broker", daemon=True)
        connector.start()
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", access_log=False,
                                lifespan="off", backlog=4096, timeout_graceful_shutdown=5)
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

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ the app
    def _app(self) -> Starlette:
        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            return _json(exc.status_code, {"error": "http_error", "message": exc.detail})

        async def openapi(request: Request) -> Response:
            return _json(200, openapi_document(self.settings))

        return Starlette(routes=[
            Route("/fragments", self._post_fragments, methods=["POST"]),
            Route("/health", self._health, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ], exception_handlers={HTTPException: http_error})

    async def _health(self, request: Request) -> Response:
        writer = self.writer
        body = {"broker": "connected" if writer else "unavailable", "error": self.broker_error,
                "requests": self.requests, "accepted": self.accepted,
                "delivered": writer.delivered if writer else 0, "failed": writer.failed if writer else 0,
                "in_flight": writer.in_flight if writer else 0, "last_delivery_error": writer.last_error if writer else None}
        return _json(200 if writer else 503, body)

    async def _post_fragments(self, request: Request) -> Response:
        self.requests += 1
        try:
            fragments = await self._read(request)
            records = await self._deliver(fragments)
        except Refusal as refusal:
            return refusal.response()
        self.accepted += len(records)
        return _json(202, {"accepted": len(records), "topic": self.default_topic,
                           "records": [{"partition": md.partition, "offset": md.offset} for md in records]})

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
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large
        items = parse_body(bytes(body), media_type)
        if not items:
            raise Refusal(422, "invalid_fragments", "the body holds no fragments")
        fragments, errors = [], []
        for index, item in enumerate(items):
            error = fragment_error(item) if not isinstance(item, dict) else None
            if error is None:
                try:
                    item = complete_fragment(item, self.config.source)
                    error = fragment_error(item)
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
            return await asyncio.wait_for(asyncio.gather(*waiting), self.config.ack_timeout_s)
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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
