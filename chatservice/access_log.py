"""The access log never holds a credential a client put in a query string.

Daphne's access log (stdout, NCSA-like lines) writes each HTTP request target as sent, query string
included, so `GET /api/conversations?access_token=eyJ...` would leave the token in the log. Every line
Daphne logs about a request or a socket goes through one method, `daphne.server.Server.log_action`, which
hands the details to whichever access logger is configured: the command line's `AccessLogGenerator`, or
`manage.py runserver`'s console. `install()` wraps that method so the path it hands on has the values of
secret parameters replaced by `[redacted]`; the request line itself stays in the log.

This is done here rather than with Daphne's flags (`--access-log`) and a logger of our own: it applies
to every way Daphne is started (the image, `make run`, the tests, a `daphne` typed by hand), keeps the
log's format, and also covers the answers Daphne gives without the application (its own 400s and 503s,
the 431 of chatservice.header_limits).
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import unquote_plus

# Query parameters whose values are credentials: the WebSocket's `token`, an attachment link's signature
# (`sig`: anyone holding it may download until it expires), and the names clients and libraries commonly put
# a bearer token under. Compared case-insensitively, percent-decoded, "-" as "_".
SECRET_QUERY_PARAMS = frozenset({"token", "access_token", "jwt", "sig"})
# Any other `*_token` parameter (id_token, refresh_token, auth_token...) is a credential too.
SECRET_QUERY_SUFFIX = "_token"  # noqa: S105 - a parameter name, not a secret
# A value shaped like a JWT (a base64url JSON header, `eyJ`, and two more segments) is redacted whatever
# its parameter is called: a token under a name of the client's own invention is still a token.
JWT_SHAPE = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*", re.ASCII)
REDACTED = "[redacted]"
# Query separators: `&`, and `;`, which some clients and older servers use.
_SEPARATORS = re.compile(r"([&;])")


def _is_secret_name(raw_name: str) -> bool:
    name = unquote_plus(raw_name, errors="replace").strip().lower().replace("-", "_")
    return name in SECRET_QUERY_PARAMS or name.endswith(SECRET_QUERY_SUFFIX)


def redact_query_secrets(target: str) -> str:
    """A request target (path and query, as in the request line) with secret query values redacted."""
    path, question_mark, query = target.partition("?")
    if not question_mark:
        return target
    pieces = _SEPARATORS.split(query)
    for index in range(0, len(pieces), 2):  # odd indexes are the separators themselves
        name, equals, value = pieces[index].partition("=")
        if equals and (_is_secret_name(name) or JWT_SHAPE.search(unquote_plus(value, errors="replace"))):
            pieces[index] = f"{name}={REDACTED}"
    return f"{path}?{''.join(pieces)}"


def redacted_details(details: dict[str, Any]) -> dict[str, Any]:
    path = details.get("path")
    if not isinstance(path, str):
        return details
    return {**details, "path": redact_query_secrets(path)}


def install() -> None:
    """Redact every path Daphne hands its access logger from now on (idempotent)."""
    from daphne.server import Server

    if getattr(Server.log_action, "redacts_query_secrets", False):
        return
    original = Server.log_action

    @functools.wraps(original)
    def log_action(self: Server, protocol: str, action: str, details: dict[str, Any]) -> None:
        original(self, protocol, action, redacted_details(details))

    log_action.redacts_query_secrets = True  # type: ignore[attr-defined]
    Server.log_action = log_action  # type: ignore[method-assign]
