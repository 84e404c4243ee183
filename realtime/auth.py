"""WebSocket authentication: the JWT from `?token=`, verified by the same code as REST.

The token is removed from the scope's query string before the consumer (or anything that logs or
traces the scope) sees it; what remains is the result, `scope["principal"]`, or the refusal code in
`scope["auth_error"]`. Staff may instead connect with their Django admin session (Channels'
AuthMiddlewareStack fills `scope["user"]`), checked in the consumer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from chatservice.authentication import TokenError, principal_from_token

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
