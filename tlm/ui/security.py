"""The console's guards: access token, CSRF, origin and host checks, and security headers.

Bound to a loopback address the console needs no token; bound to any other address every request
needs the access token (``?token=`` once, then an HttpOnly cookie, or ``Authorization: Bearer``).
Every state-changing request (POST) needs the per-session CSRF token (a form field or the
``X-CSRF-Token`` header that htmx sends) and, when the browser says where it comes from, an
``Origin`` equal to the console's own. The ``Host`` header must name the console (DNS rebinding).
Every response carries a Content-Security-Policy that allows scripts from the console only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

import attrs
from aiohttp import web

__all__ = (
    "TOKEN_ENV",
    "TOKEN_COOKIE",
    "SESSION_COOKIE",
    "CSRF_HEADER",
    "CSRF_FIELD",
    "CSRF_KEY",
    "CSP",
    "Guard",
    "is_loopback",
    "token_required",
    "guard_middleware",
)

TOKEN_ENV: Final = "TLM_UI_TOKEN"
TOKEN_COOKIE: Final = "tlm_ui_token"
SESSION_COOKIE: Final = "tlm_ui_session"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
CSRF_KEY: Final = web.RequestKey("tlm_ui_csrf", str)
"""Where the guard leaves the request's CSRF token for the templates."""
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.", "ip6-localhost"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def token_required(host: str) -> bool:
    """Whether binding ``host`` needs the access token: any address but a loopback one."""
    return not is_loopback(host)


@attrs.define
class Guard:
    """What the middleware checks; one per application.

    Args:
        token: The access token, or ``None`` when none is required (loopback bind).
        allowed_hosts: ``Host`` header names accepted (without port); empty accepts any.
        secret: Key for the CSRF tokens (random per process).
    """

    token: str | None = None
    allowed_hosts: frozenset[str] = frozenset()
    secret: bytes = attrs.Factory(lambda: secrets.token_bytes(32))

    def csrf_for(self, session: str) -> str:
        """The CSRF token of one browser session."""
        return hmac.new(self.secret, session.encode(), hashlib.sha256).hexdigest()

    def has_token(self, request: web.Request) -> bool:
        """Whether ``request`` carries the access token (always true when none is needed)."""
        if self.token is None:
            return True
        given = request.cookies.get(TOKEN_COOKIE, "")
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def host_allowed(self, request: web.Request) -> bool:
        """Whether the ``Host`` header names this console."""
        if not self.allowed_hosts:
            return True
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
        return host.strip("[]").lower() in self.allowed_hosts

    def origin_allowed(self, request: web.Request) -> bool:
        """Whether ``Origin`` (else ``Referer``), when sent, is the console itself."""
        origin = request.headers.get("Origin") or request.headers.get("Referer")
        if not origin:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == request.host


def _session_of(request: web.Request) -> tuple[str, bool]:
    session = request.cookies.get(SESSION_COOKIE, "")
    if len(session) >= 32 and session.isalnum():
        return session, False
    return secrets.token_hex(16), True


def _refuse(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def _secure(response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    if "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"


def guard_middleware(
    guard: Guard,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The aiohttp middleware enforcing ``guard`` and adding the security headers."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not guard.host_allowed(request):
            response: web.StreamResponse = _refuse(421, "unknown host")
            _secure(response)
            return response
        query_token = request.query.get("token")
        if guard.token is not None and query_token is not None and request.method == "GET":
            if hmac.compare_digest(query_token.encode(), guard.token.encode()):
                # keep the token in a cookie and drop it from the address bar
                url = request.rel_url
                target = url.with_query([(k, v) for k, v in url.query.items() if k != "token"])
                redirect = web.HTTPSeeOther(str(target))
                redirect.set_cookie(
                    TOKEN_COOKIE, guard.token, httponly=True, samesite="Strict", path="/"
                )
                _secure(redirect)
                raise redirect
        if not guard.has_token(request):
            response = _refuse(
                401, "this console needs its access token: open the URL printed by `tlm ui`"
            )
            _secure(response)
            return response
        session, new_session = _session_of(request)
        request[CSRF_KEY] = guard.csrf_for(session)
        if request.method not in _SAFE_METHODS:
            if not guard.origin_allowed(request):
                response = _refuse(403, "cross-origin request refused")
                _secure(response)
                return response
            given = request.headers.get(CSRF_HEADER)
            if given is None and request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                given = str((await request.post()).get(CSRF_FIELD, ""))
            if new_session or not given or not hmac.compare_digest(given, request[CSRF_KEY]):
                response = _refuse(403, "missing or wrong CSRF token: reload the page")
                _secure(response)
                return response
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and errors: the same headers, then raise
            if new_session:
                exc.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict", path="/")
            _secure(exc)
            raise
        if new_session:
            response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict", path="/")
        _secure(response)
        return response

    return middleware
