"""WebSocket authentication: who opened a socket, from a token or a staff session.

* **Token.** The JWT from `?token=`, verified by the same code as REST. The token is removed from the
  scope's query string before the consumer (or anything that logs or traces the scope) sees it; what
  remains is the result, `scope["principal"]`, or the refusal code in `scope["auth_error"]`. Any origin
  may use a token: a donor portal on another origin is legitimate, and a page can only send a token it
  holds.
* **Staff session.** Staff may instead connect with their Django admin session (Channels'
  AuthMiddlewareStack fills `scope["user"]`). A browser sends the session cookie whichever page opens
  the socket, so the page's Origin must be trusted, compared exactly (scheme, host and port): the
  configured CHAT_STAFF_TRUSTED_ORIGINS, or by default the request's own scheme and port on any host of
  ALLOWED_HOSTS. Otherwise a page on another port of an allowed host could act as that staff member.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from chatservice.authentication import Principal, TokenError, principal_for_staff, principal_from_token
from chatservice.config import DEFAULT_PORTS, origin_string
from realtime.dbpool import db

TOKEN_PARAM = "token"  # noqa: S105 - the parameter name, not a secret


def strip_token(query_string: bytes) -> tuple[str | None, bytes]:
    """Return (token, query string without it)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    tokens = [value for key, value in pairs if key == TOKEN_PARAM]
    rest = [(key, value) for key, value in pairs if key != TOKEN_PARAM]
    return (tokens[-1] if tokens else None), urlencode(rest).encode("latin-1")


class QueryTokenAuthMiddleware:
    """Connections with a token go straight to `token_app`; the others to `session_app` (the same app
    behind Channels' session and auth middleware, for staff). Token connections thus skip the session
    wrapper, which otherwise runs on every frame the socket sends."""

    def __init__(self, *, token_app: Any, session_app: Any) -> None:
        self.token_app = token_app
        self.session_app = session_app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        token, query_string = strip_token(scope.get("query_string", b""))
        scope = {**scope, "query_string": query_string, "principal": None, "auth_error": None}
        if not token:
            return await self.session_app(scope, receive, send)
        try:
            scope["principal"] = principal_from_token(token)
        except TokenError as exc:
            scope["auth_error"] = exc.code
        return await self.token_app(scope, receive, send)


async def socket_principal(scope: dict[str, Any]) -> Principal | None:
    """Who opened the socket, or None (close 4401)."""
    principal = scope.get("principal")
    if principal is not None:
        return principal
    if scope.get("auth_error"):
        return None
    user = scope.get("user")
    if user is None or not (user.is_authenticated and user.is_active and user.is_staff):
        return None
    if not origin_trusted_for_staff(scope):
        return None  # a session cookie alone must not let another page open a socket (CSWSH)
    return await db(principal_for_staff)(user)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def request_scheme(scope: dict[str, Any]) -> str:
    """http or https, as the browser connected. Behind a proxy the socket is plain: the proxy's
    X-Forwarded-Proto says what the browser used (a browser cannot set that header on a WebSocket, so a
    page cannot fake it)."""
    forwarded = _header(scope, b"x-forwarded-proto")
    if forwarded:
        return "https" if forwarded.split(",")[0].strip().lower() == "https" else "http"
    return "https" if scope.get("scheme") in {"wss", "https"} else "http"


def origin_trusted_for_staff(scope: dict[str, Any]) -> bool:
    origin = _header(scope, b"origin")
    if not origin:
        return False
    parsed = urlsplit(origin.strip())
    try:
        port = parsed.port
    except ValueError:
        return False
    if parsed.scheme not in DEFAULT_PORTS or not parsed.hostname:
        return False
    trusted = settings.CHAT["STAFF_TRUSTED_ORIGINS"]
    if trusted:
        return origin_string(parsed.scheme, parsed.hostname, port) in trusted
    scheme = request_scheme(scope)
    host = _header(scope, b"host") or ""
    _, host_port = split_domain_port(host)
    request_port = int(host_port) if host_port.isdigit() else DEFAULT_PORTS[scheme]
    return (
        parsed.scheme == scheme
        and (port or DEFAULT_PORTS[parsed.scheme]) == request_port
        and validate_host(_host_pattern(parsed.hostname), settings.ALLOWED_HOSTS)
    )


def _host_pattern(hostname: str) -> str:
    """A host as ALLOWED_HOSTS writes it: IPv6 literals in brackets."""
    hostname = hostname.lower()
    return f"[{hostname}]" if ":" in hostname else hostname
