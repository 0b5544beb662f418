"""The console's web app (Starlette, Jinja2 templates) and the server that runs it (uvicorn).

Pages: alerts (live over SSE), stories, a story's timeline, an event, search, dead letters, health. Every
page needs a session with a role (:mod:`newswire.console.auth`); the actions, acknowledging an
alert, snoozing a rule and re-submitting a dead letter, need an operator and the session's CSRF token. Every response carries a strict
Content-Security-Policy: scripts and styles only from ``/static`` (no inline code), nothing from
another origin, no framing. Data reaches the script only through ``data-`` attributes and the
JSON of the live stream; it sets ``textContent``, never markup.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

import jinja2
import orjson
import uvicorn
from kafka import KafkaProducer
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.kafka import make_producer
from connectors.metrics import exposition
from connectors.process import is_loopback
from connectors.sinks import EventQuery, EventStore, open_store
from connectors.sinks.rows import iso, parse_time
from connectors.sources.http import RateLimiter
from connectors.status import status_key
from core.alert_rules import parse_duration
from core.settings import ConfigError, Settings
from newswire.console import health, views, worldmap
from newswire.console.auth import COOKIE, LOGIN_COOKIE, OPERATOR, VIEWER, Credentials, Session, SessionSigner
from newswire.console.feed import TopicFeed
from newswire.console.metrics import ConsoleMetrics

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
T = TypeVar("T")

#: No inline script or style, nothing from elsewhere, no framing, forms post only here.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                           "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # same-origin, not no-referrer: under no-referrer a browser posts forms with "Origin: null"
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def with_security_headers(app: ASGIApp) -> ASGIApp:
    """`app` with SECURITY_HEADERS on every HTTP response (static files and errors included), and
    its cookies marked ``Secure`` when the request came over https (uvicorn reads a loopback
    proxy's ``X-Forwarded-Proto``)."""
    async def secured(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(n, v + b"; Secure" if https and n.lower() == b"set-cookie" else v)
                           for n, v in message.get("headers", [])]
                present = {name.lower() for name, _ in headers}
                message["headers"] = [*headers, *((n, v) for n, v in SECURITY_HEADERS if n not in present)]
            await send(message)
        await app(scope, receive, send_secured)
    return secured


def templates() -> jinja2.Environment:
    """The page templates, autoescaped (every template, whatever its name), with the view helpers."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(visible=views.visible, safe_href=views.safe_href, size=health.size, when=views.short_time)
    return env


class StoreReader:
    """The store the console reads, opened on first use and reopened after it went away; one
    connection, so calls take turns (in Starlette's thread pool, off the event loop)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store: EventStore | None = None
        self._lock = threading.Lock()

    async def read(self, query: Callable[[EventStore], T]) -> T:
        return await run_in_threadpool(self._read, query)

    def _read(self, query: Callable[[EventStore], T]) -> T:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.url)
            try:
                return query(self._store)
            except Exception as exc:
                if self._store.unavailable(exc):
                    self._close()
                raise

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except Exception as exc:  # noqa: BLE001 - it is being dropped either way
                log.debug("console: closing the store: %s", exc)
            self._store = None


class Console:
    """Serves the console on ``console.host:port`` from a background thread (``port`` 0: any free
    one; read ``self.port`` after ``start()``). ``credentials`` default to the environment."""

    #: Keep-alive comment on an idle live stream (proxies close silent connections).
    HEARTBEAT_S = 15.0
    #: Alerts a new live stream gets first (the page may have rendered before they were stored).
    STREAM_REPLAY = 20

    def __init__(self, settings: Settings, host: str | None = None, port: int | None = None,
                 credentials: Credentials | None = None) -> None:
        self.settings = settings
        self.config = settings.console
        self.host = host or self.config.host
        self.port = self.config.port if port is None else port
        self.credentials = credentials or Credentials.from_environment(self.config.viewer_token_env,
                                                                       self.config.operator_token_env)
        self.sessions = SessionSigner(self.config.session_ttl_s)
        self.feed = TopicFeed(settings, self.config.alert_backlog, self.config.dead_letter_backlog)
        self.store = StoreReader(settings.storage_url)
        self.templates = templates()
        self._logins = RateLimiter(1.0, 10)  # per client address: guessing tokens stays slow
        #: (dlq partition, offset) -> when an operator re-submitted that dead letter (this process)
        self.resubmitted: dict[tuple[int, int], str] = {}
        self._producer: KafkaProducer | None = None
        self._producer_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.metrics = ConsoleMetrics(lambda: self.feed.live_streams)
        self.app = self._app()

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 30) -> None:
        if self.credentials.open and not is_loopback(self.host):
            raise ConfigError(f"console: refusing to serve {self.host} without a login token; set "
                              f"{self.config.operator_token_env} (and {self.config.viewer_token_env} for viewers)")
        if self.credentials.open:
            log.warning("console on %s:%s has no login (loopback only); set %s to require one",
                        self.host, self.port, self.config.operator_token_env)
        self._stopping.clear()
        self.feed.start()
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="console", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"console could not listen on {self.host}:{self.port} (in use?)")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self._stopping.set()
        self.feed.stop()  # first: it ends the open live streams, which the server would wait for
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None
        self.store.close()
        with self._producer_lock:
            if self._producer is not None:
                self._producer.close()
                self._producer = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> str:
        login = "no login: loopback only" if self.credentials.open else "login with a viewer or operator token"
        return f"console: {self.url}/ ({login})"

    # ------------------------------------------------------------------ the app
    def _app(self) -> ASGIApp:
        routes = [
            Route("/", lambda request: RedirectResponse("/alerts", 303)),
            Route("/login", self._login_page, methods=["GET"]),
            Route("/login", self._login, methods=["POST"]),
            Route("/logout", self._logout, methods=["POST"]),
            Route("/alerts", self._alerts, methods=["GET"]),
            Route("/alerts/stream", self._alert_stream, methods=["GET"]),
            Route("/alerts/{alert_id}/ack", self._acknowledge, methods=["POST"]),
            Route("/alerts/snooze", self._snooze, methods=["POST"]),
            Route("/stories", self._stories, methods=["GET"]),
            Route("/stories/{story_id}", self._story, methods=["GET"]),
            Route("/events", self._search, methods=["GET"]),
            Route("/events/{event_id}", self._event, methods=["GET"]),
            Route("/dead-letters", self._dead_letters, methods=["GET"]),
            Route("/dead-letters/{partition:int}/{offset:int}/resubmit", self._resubmit, methods=["POST"]),
            Route("/health", self._health, methods=["GET"]),
            # The map's outlines (public-domain shapes, no record content), cached by the browser.
            Route("/map/world.svg", self._world_map, methods=["GET"]),
            # For Prometheus and orchestrators: counts and status only, no login (no record content).
            Route("/metrics", self._metrics, methods=["GET"]),
            Route("/healthz", lambda request: JSONResponse({"alive": True}), methods=["GET"]),
            Route("/readyz", self._readyz, methods=["GET"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        return with_security_headers(self.metrics.counted(Starlette(routes=routes)))

    async def _world_map(self, request: Request) -> Response:
        body = await run_in_threadpool(worldmap.base_map_svg)  # decoded and projected once per process
        return Response(body, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})

    async def _metrics(self, request: Request) -> Response:
        body, content_type = exposition(self.metrics.registry)
        return Response(body, media_type=content_type)

    async def _readyz(self, request: Request) -> Response:
        """200 when the store answers and the topic feed is connected; 503 with the reasons otherwise."""
        try:
            await self.store.read(lambda store: store.size_bytes())
            store = {"ok": True, "detail": "answered"}
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            store = {"ok": False, "detail": f"store unavailable: {type(exc).__name__}"}
        checks = {"store": store, "feed": {"ok": self.feed.error is None, "detail": self.feed.error or "connected"}}
        ready = all(c["ok"] for c in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, 200 if ready else 503)

    # -- sessions
    def _session(self, request: Request) -> tuple[Session, bool]:
        """The request's session, and whether it is new (its cookie must be set). An open console
        gives every visitor an operator's session."""
        session = self.sessions.load(request.cookies.get(COOKIE))
        if session is not None and session.role is not None:
            return session, False
        if self.credentials.open:
            return self.sessions.new(OPERATOR), True
        session = self.sessions.load(request.cookies.get(LOGIN_COOKIE))
        if session is not None and session.role is None:
            return session, False
        return self.sessions.new(None), True

    def _set_cookie(self, response: Response, session: Session) -> None:
        """Set `session`'s cookie: the session cookie once it has a role, else the login form's."""
        response.set_cookie(COOKIE if session.role else LOGIN_COOKIE, self.sessions.dump(session),
                            max_age=int(self.config.session_ttl_s), httponly=True, samesite="lax", path="/")

    def _denied(self, request: Request, session: Session, role: str) -> Response | None:
        """None if `session` may see a page that needs `role`; else where to go (login) or 403."""
        if session.may(role):
            return None
        if session.role is None:
            if request.headers.get("accept", "").startswith("text/event-stream"):
                return Response("log in first", 401, media_type="text/plain")
            return RedirectResponse("/login", 303)
        return self._error(session, 403, f"this needs the {role} role; you are logged in as {session.role}")

    def _forged(self, request: Request, session: Session, form: Any) -> Response | None:
        """403 unless a POST carries the session's CSRF token and, if it says, comes from this origin."""
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if (origin is not None and origin != own) or not session.csrf_matches(form.get("csrf")):
            return self._error(session, 403, "the form's security token is missing or stale (CSRF check); "
                               "reload the page and try again")
        return None

    def _page(self, session: Session, fresh: bool, template: str, status: int = 200, **context: Any) -> Response:
        body = self.templates.get_template(template).render(
            session=session, open_console=self.credentials.open, **context)
        response = HTMLResponse(body, status, headers={"Cache-Control": "no-store"})
        if fresh:
            self._set_cookie(response, session)
        return response

    def _error(self, session: Session, status: int, message: str) -> Response:
        return self._page(session, False, "error.html", status, message=message, title=f"Error {status}")

    async def _viewer_page(self, request: Request) -> tuple[Session, bool, Response | None]:
        session, fresh = self._session(request)
        return session, fresh, self._denied(request, session, VIEWER)

    # -- login
    async def _login_page(self, request: Request) -> Response:
        session, fresh = self._session(request)
        if session.role is not None:
            return RedirectResponse("/alerts", 303)
        return self._page(session, fresh, "login.html", title="Log in", message=None)

    async def _login(self, request: Request) -> Response:
        session, fresh = self._session(request)
        form = await _form(request)
        if (refusal := self._forged(request, session, form)) is not None:
            return refusal
        wait = self._logins.check(request.client.host if request.client else "?")
        if wait:
            self.metrics.logins.labels("limited").inc()
            return self._page(session, fresh, "login.html", 429, title="Log in",
                              message=f"too many attempts; wait {wait:.0f}s")
        role = self.credentials.role_for(str(form.get("token") or ""))
        if role is None:
            self.metrics.logins.labels("invalid").inc()
            return self._page(session, fresh, "login.html", 401, title="Log in", message="that token is not valid")
        self.metrics.logins.labels("ok").inc()
        response = RedirectResponse("/alerts", 303)
        self._set_cookie(response, self.sessions.new(role))  # a new CSRF token with the new role
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    async def _logout(self, request: Request) -> Response:
        session, _ = self._session(request)
        form = await _form(request)
        if (refusal := self._forged(request, session, form)) is not None:
            return refusal
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- alerts
    async def _alerts(self, request: Request) -> Response:
        session, fresh, denied = await self._viewer_page(request)
        if denied:
            return denied
        limit = self.config.alert_backlog

        now = datetime.now(UTC).isoformat()

        def read(store: EventStore) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
            alerts = store.alerts(limit=limit)
            return alerts, store.alert_acks([a["alert_id"] for a in alerts]), store.rule_snoozes(now)
        try:
            alerts, acks, snoozes = await self.store.read(read)
            error = None
        except Exception as exc:  # noqa: BLE001 - the live stream still works without the store
            alerts, acks, snoozes, error = [], {}, {}, f"{type(exc).__name__}: {exc}"
        shown = [views.alert_view(a, snoozes.get(a["rule"], {}).get("until")) for a in alerts]
        status = await run_in_threadpool(health.measure, lambda: health.status_board(self.settings))
        rules = status["value"]["alert_rules"] if status["value"] else None  # a failed read: the health page says
        return self._page(session, fresh, "alerts.html", title="Alerts", alerts=shown, acks=acks, store_error=error,
                          rules=rules,
                          feed_error=self.feed.error, snoozes=snoozes, snooze_minutes=SNOOZE_MINUTES)

    async def _snoozed_view(self, alert: dict[str, Any]) -> dict[str, Any]:
        """An alert as the live stream sends it, marked when its rule is snoozed now."""
        try:
            snoozes = await self.store.read(lambda store: store.rule_snoozes(datetime.now(UTC).isoformat()))
        except Exception as exc:  # noqa: BLE001 - the alert still goes out, unmarked
            log.warning("console: cannot read snoozes: %s", exc)
            snoozes = {}
        return views.alert_view(alert, snoozes.get(str(alert.get("rule")), {}).get("until"))

    async def _alert_stream(self, request: Request) -> Response:
        session, _ = self._session(request)
        if (denied := self._denied(request, session, VIEWER)) is not None:
            return denied if denied.status_code != 303 else Response("log in first", 401, media_type="text/plain")
        queue = self.feed.subscribe()
        recent = list(self.feed.alerts)[-self.STREAM_REPLAY:]

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\n"
                for earlier in recent:
                    yield _sse("alert", await self._snoozed_view(earlier))
                while not self._stopping.is_set():
                    try:
                        alert = await asyncio.wait_for(queue.get(), self.HEARTBEAT_S)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if alert is None:  # the console is stopping
                        return
                    yield _sse("alert", await self._snoozed_view(alert))
            finally:
                self.feed.unsubscribe(queue)
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _operator_post(self, request: Request) -> tuple[Session, Any] | Response:
        """An operator's action: (session, form), or the answer that refuses it (login, 403, CSRF)."""
        session, _ = self._session(request)
        if (denied := self._denied(request, session, OPERATOR)) is not None:
            return denied
        form = await _form(request)
        if (refusal := self._forged(request, session, form)) is not None:
            return refusal
        return session, form

    async def _snooze(self, request: Request) -> Response:
        """Operator: snooze a rule for `minutes` (0 ends its snooze); its alerts show muted meanwhile."""
        checked = await self._operator_post(request)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        rule, minutes = form.get("rule", ""), form.get("minutes", "")
        if not rule or len(rule) > 200 or not minutes.isdigit() or int(minutes) not in (0, *SNOOZE_MINUTES):
            return self._error(session, 400, f"snooze: a rule and minutes, one of 0 (end), "
                               f"{', '.join(map(str, SNOOZE_MINUTES))}")
        until = (datetime.now(UTC) + timedelta(minutes=int(minutes))).isoformat()
        await self.store.read(lambda store: store.snooze_rule(rule, until, session.role or OPERATOR))
        self.metrics.actions.labels("snooze").inc()
        return RedirectResponse("/alerts", 303)

    async def _acknowledge(self, request: Request) -> Response:
        checked = await self._operator_post(request)
        if isinstance(checked, Response):
            return checked
        session, _ = checked
        alert_id = request.path_params["alert_id"]
        await self.store.read(lambda store: store.acknowledge_alert(alert_id, session.role or OPERATOR))
        self.metrics.actions.labels("ack").inc()
        return RedirectResponse("/alerts", 303)

    # -- stories and events
    async def _stories(self, request: Request) -> Response:
        session, fresh, denied = await self._viewer_page(request)
        if denied:
            return denied
        now = datetime.now(UTC)
        hour, day = (now - timedelta(hours=1)).isoformat(), (now - timedelta(hours=24)).isoformat()
        def read(store: EventStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str | None],
                                         dict[str, str]]:
            growing, biggest = store.growing_stories(hour, 20), store.biggest_stories(day, 20)
            # a story is named by its first event's title (one indexed read each)
            headlines = {}
            for story in (*growing, *biggest):
                if story["story_id"] not in headlines:
                    first = store.story_events(story["story_id"], limit=1)
                    headlines[story["story_id"]] = first[0].get("title") if first else None
            volume = store.story_volume(list(headlines), day, 3600, 24)
            return growing, biggest, headlines, {sid: views.sparkline(v) for sid, v in volume.items()}
        growing, biggest, headlines, sparklines = await self.store.read(read)
        return self._page(session, fresh, "stories.html", title="Stories", growing=growing, biggest=biggest,
                          headlines=headlines, sparklines=sparklines, names=views.names)

    async def _story(self, request: Request) -> Response:
        session, fresh, denied = await self._viewer_page(request)
        if denied:
            return denied
        story_id = request.path_params["story_id"]
        story, events = await self.store.read(lambda s: (s.story(story_id), s.story_events(story_id)))
        if story is None:
            return self._error(session, 404, "no such story in the store")
        if story["story_id"] != story_id:  # merged into another (late merge): one page per story
            target = f"/stories/{quote(story['story_id'], safe='')}?merged={quote(story_id, safe='')}"
            return RedirectResponse(target, 303)
        # says which story the visitor came from, when it is one merged into this one
        came_from = request.query_params.get("merged")
        return self._page(session, fresh, "story.html", title="Story", story=story, names=views.names,
                          came_from=came_from if came_from in story["merged_from"] else None,
                          headline=events[0].get("title") if events else None, events=[_event_view(e) for e in events],
                          markers=(markers := worldmap.place_markers(events)), view=worldmap.map_view(markers),
                          map_box=(worldmap.VIEW_W, worldmap.VIEW_H))

    async def _search(self, request: Request) -> Response:
        """Stored events filtered by entity, place, country, language, source, how far back and a time range."""
        session, fresh, denied = await self._viewer_page(request)
        if denied:
            return denied
        params = {name: request.query_params.get(name, "").strip()[:200] for name in SEARCH_FIELDS}
        message, events = None, None
        try:
            since, until = search_window(params["since"], params["from"], params["to"], datetime.now(UTC))
        except ValueError as exc:
            message, since, until = str(exc), None, None
        if message is None and any(params.values()):
            query = EventQuery(entity=params["entity"] or None, place=params["place"] or None,
                               country=params["country"] or None, language=params["language"] or None,
                               source=params["source"] or None, since=since, until=until)
            events = [_event_view(e) for e in await self.store.read(lambda s: s.search_events(query, SEARCH_LIMIT))]
        return self._page(session, fresh, "search.html", 400 if message else 200, title="Search", params=params,
                          events=events, message=message, limit=SEARCH_LIMIT)

    async def _event(self, request: Request) -> Response:
        session, fresh, denied = await self._viewer_page(request)
        if denied:
            return denied
        event_id = request.path_params["event_id"]
        event = await self.store.read(lambda s: s.event(event_id))
        if event is None:
            return self._error(session, 404, "no such event in the store")
        return self._page(session, fresh, "event.html", title="Event", event=_event_view(event))

    # -- dead letters and health
    async def _dead_letters(self, request: Request) -> Response:
        session, fresh, denied = await self._viewer_page(request)
        if denied:
            return denied
        fragments = self.settings.kafka.topics.fragments.name
        letters = [{"stage": d.get("stage"), "reason": d.get("reason"), "error": d.get("error"),
                    "failed_at": d.get("failed_at"), "origin": d.get("origin") or {},
                    "size": d.get("original_size"), "payload": views.payload_preview(d),
                    "position": (d["dlq_partition"], d["dlq_offset"]),
                    "resubmitted": self.resubmitted.get((d["dlq_partition"], d["dlq_offset"])),
                    "not_resubmittable": resubmit_refusal(d, fragments)}
                   for d in reversed(self.feed.dead_letters)]
        return self._page(session, fresh, "dead_letters.html", title="Dead letters", letters=letters,
                          feed_error=self.feed.error, topic=self.settings.kafka.topics.dlq.name)

    async def _resubmit(self, request: Request) -> Response:
        """Operator: produce a dead letter's original record to the raw topic again (after a fix)."""
        checked = await self._operator_post(request)
        if isinstance(checked, Response):
            return checked
        session, _ = checked
        position = (request.path_params["partition"], request.path_params["offset"])
        letter = self.feed.dead_letter(*position)
        if letter is None:
            return self._error(session, 404, "that dead letter is no longer kept by the console")
        why = resubmit_refusal(letter, self.settings.kafka.topics.fragments.name)
        if why:
            return self._error(session, 409, f"cannot re-submit: {why}")
        await run_in_threadpool(self._produce_original, letter)
        self.resubmitted[position] = datetime.now(UTC).isoformat(timespec="seconds")
        log.info("console: dead letter %s re-submitted to %s", position, letter["origin"]["topic"])
        self.metrics.actions.labels("resubmit").inc()
        return RedirectResponse("/dead-letters", 303)

    def _produce_original(self, letter: dict[str, Any]) -> None:
        key = letter.get("original_key_b64")
        with self._producer_lock:
            if self._producer is None:
                self._producer = make_producer(self.settings)
            self._producer.send(letter["origin"]["topic"], base64.b64decode(letter["original_b64"]),
                                key=base64.b64decode(key) if key else None).get(30)

    async def _health(self, request: Request) -> Response:
        session, fresh, denied = await self._viewer_page(request)
        if denied:
            return denied
        s = self.settings
        lag = await run_in_threadpool(health.measure, lambda: health.consumer_lag(s))
        redis = await run_in_threadpool(health.measure, lambda: health.redis_memory(s))
        status = await run_in_threadpool(health.measure, lambda: health.status_board(s))
        try:
            store: dict[str, Any] = {"value": await self.store.read(lambda st: st.size_bytes()), "error": None}
        except Exception as exc:  # noqa: BLE001 - shown as the figure's error
            store = {"value": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
        counts = sorted(self.feed.dead_letter_counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return self._page(session, fresh, "health.html", title="Health", lag=lag, redis=redis, store=store, board=status,
                          status_key=status_key(s.redis.namespace),
                          counts=counts, feed_error=self.feed.error, settings=s,
                          throughput=health.throughput(self.feed.windows))


def resubmit_refusal(letter: dict[str, Any], fragments_topic: str) -> str | None:
    """Why a dead letter cannot be re-submitted to the raw topic, or None when it can: only a
    fragment that failed in the pipeline (not an alert a webhook refused), kept whole."""
    if (letter.get("origin") or {}).get("topic") != fragments_topic:
        return f"it did not come from the raw topic {fragments_topic} (an alert a webhook refused?)"
    if letter.get("original_truncated"):
        return "only the start of the record was kept; replay it from the raw topic at its origin"
    try:
        base64.b64decode(letter.get("original_b64") or "", validate=True)
    except (ValueError, TypeError):
        return "its original bytes are not valid base64"
    return None


def _event_view(event: dict[str, Any]) -> dict[str, Any]:
    """An EnrichedEvent as the story and event pages show it: text with its new sentences marked."""
    novelty = event.get("novelty") or {}
    return {"event_id": event.get("event_id"), "title": event.get("title"), "source": event.get("source"),
            "url": event.get("url"), "received_at": event.get("received_at"), "story_id": event.get("story_id"),
            "language": (event.get("language") or {}).get("code"),
            "duplicate_of": event.get("duplicate_of") or event.get("near_duplicate_of"),
            "pieces": views.highlight(str(event.get("text") or ""), novelty.get("new_sentences") or ()),
            "novelty_ratio": novelty.get("ratio"),
            "entities": views.names(event.get("entities") or (), 8), "places": views.names(event.get("places") or (), 8),
            "nationalities": views.names(event.get("nationalities") or (), 8)}


#: The search form's fields (query parameters), and the most events one search lists.
SEARCH_FIELDS = ("entity", "place", "country", "language", "source", "since", "from", "to")
SEARCH_LIMIT = 100


def search_window(since: str, start: str, end: str, now: datetime) -> tuple[str | None, str | None]:
    """The received_at bounds of a search, as ISO-8601 UTC (None: open): ``since`` is how far back
    from `now` (``24h``), ``start``/``end`` (the ``from``/``to`` fields) are ISO-8601 date-times or
    dates, taken as UTC without an offset, ``to`` exclusive. With both ``since`` and ``from`` the
    later bound holds. ValueError names the field and says what it takes."""
    lower = None
    if since:
        try:
            lower = now - timedelta(seconds=parse_duration(since))
        except ValueError as exc:
            raise ValueError(f"since: {exc}") from None
        except OverflowError:
            raise ValueError(f"since: {since!r} reaches back before the year 1") from None
    bounds: list[datetime | None] = []
    for name, text in (("from", start), ("to", end)):
        try:
            moment = parse_time(text) if text else None
        except OverflowError:  # an offset that moves the year 9999 or 1 out of range
            moment = None
        if text and moment is None:
            raise ValueError(f"{name}: must be an ISO-8601 date-time like 2026-03-01T10:00Z or a date like "
                             f"2026-03-01 (UTC unless it has an offset), got {text!r}")
        bounds.append(moment)
    first, last = bounds
    if first is not None and (lower is None or first > lower):
        lower = first
    if lower is not None and last is not None and last <= lower:
        raise ValueError(f"to: {iso(last)} is not after the start of the range ({iso(lower)}); "
                         "'to' is exclusive, so it must be later")
    return iso(lower), iso(last)

#: How long an operator may snooze a rule, in minutes (the buttons on the alerts page).
SNOOZE_MINUTES = (60, 240, 1440)

#: A console form holds a CSRF token and at most a login token.
MAX_FORM_BYTES = 4096


async def _form(request: Request) -> dict[str, str]:
    """The fields of a url-encoded form POST (first value of each); {} for anything else or too big."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
    except ValueError:  # more fields than any console form has
        return {}
    return {name: values[0] for name, values in fields.items()}


def _sse(event: str, data: Any) -> bytes:
    """One server-sent event; the JSON is one line, so it needs one ``data:`` field."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
