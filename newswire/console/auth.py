"""Who may use the console: login tokens from the environment, two roles, signed session cookies, CSRF.

A login is one token: the viewer's (``console.viewer_token_env``) or the operator's
(``console.operator_token_env``). With neither variable set the console is open, and then it
refuses to serve beyond loopback (like HTTP ingest without its token): everyone on this machine is
an operator. A session is a cookie signed with a key made when the console starts (a restart logs
everyone out), ``HttpOnly`` and ``SameSite=Lax`` (a link from a chat or an alert webhook opens the
page logged in; a cross-site POST goes without it), holding the role, an expiry and the session's
CSRF token. Every POST must carry that CSRF token in its form and, when the browser sends an
``Origin``, come from the console's own origin.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import orjson

VIEWER, OPERATOR = "viewer", "operator"
#: What each role may do, lowest first: an operator may do everything a viewer may.
ROLES = (VIEWER, OPERATOR)
#: The logged-in session's cookie, and the one that only carries the login form's CSRF token (apart,
#: so that a visit without the session cookie, e.g. a cross-site redirect, never overwrites a login).
COOKIE, LOGIN_COOKIE = "newswire_console", "newswire_console_login"


@dataclass(frozen=True)
class Credentials:
    """The two login tokens (None: not set). Neither set: the console is open (loopback only)."""

    viewer: str | None
    operator: str | None

    @classmethod
    def from_environment(cls, viewer_env: str, operator_env: str, environ: Any = None) -> Credentials:
        """The tokens in the environment variables named ``viewer_env`` and ``operator_env``."""
        env = os.environ if environ is None else environ
        return cls(env.get(viewer_env) or None, env.get(operator_env) or None)

    @property
    def open(self) -> bool:
        """No token is set: no login, everyone is an operator (allowed on loopback only)."""
        return self.viewer is None and self.operator is None

    def role_for(self, token: str) -> str | None:
        """The role `token` logs in as, or None. Both comparisons always run, in constant time."""
        given = token.encode()
        matches = {role: expected is not None and hmac.compare_digest(given, expected.encode())
                   for role, expected in ((VIEWER, self.viewer), (OPERATOR, self.operator))}
        return OPERATOR if matches[OPERATOR] else VIEWER if matches[VIEWER] else None


@dataclass(frozen=True)
class Session:
    """One browser's session: its role (None before login), CSRF token and expiry (epoch seconds)."""

    role: str | None
    csrf: str
    expires: float

    def may(self, role: str) -> bool:
        """Whether this session has `role` or a higher one."""
        return self.role is not None and ROLES.index(self.role) >= ROLES.index(role)

    def csrf_matches(self, given: str | None) -> bool:
        """Whether `given` (a form's csrf field) is this session's CSRF token."""
        return bool(given) and hmac.compare_digest(str(given).encode(), self.csrf.encode())


class SessionSigner:
    """Makes and reads session cookies, signed (HMAC-SHA256) with a key of this process."""

    def __init__(self, ttl_s: float, key: bytes | None = None) -> None:
        self.ttl_s = ttl_s
        self._key = key or secrets.token_bytes(32)

    def new(self, role: str | None) -> Session:
        """A fresh session (new CSRF token): at first visit, and again at login and logout."""
        return Session(role, secrets.token_urlsafe(32), time.time() + self.ttl_s)

    def dump(self, session: Session) -> str:
        """The cookie value for `session`."""
        payload = base64.urlsafe_b64encode(orjson.dumps(
            {"r": session.role, "c": session.csrf, "e": session.expires})).decode().rstrip("=")
        return f"{payload}.{self._sign(payload)}"

    def load(self, cookie: str | None) -> Session | None:
        """The session in a cookie value; None when missing, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            doc = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(doc["r"], str(doc["c"]), float(doc["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.role not in (None, *ROLES) or session.expires < time.time():
            return None
        return session

    def _sign(self, payload: str) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, payload.encode(), sha256).digest()).decode().rstrip("=")
