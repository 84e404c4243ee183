"""Request headers over the HTTP layer's limit get an answer, 431 with the API's JSON error, not a dropped connection.

Daphne parses requests with Twisted's HTTPChannel, which reads at most 16 KiB per line (MAX_LENGTH) and
16 KiB of request line and headers in all (totalHeadersSize). Past the first it closes the connection
without a word, which is what a client sending a 100 KB token saw; past the second it writes a bare
`400 Bad Request` and closes while the client may still be sending, so the client can get a reset
instead of even that.

`HeaderLimitedHTTPChannel` keeps the limit (HTTP_MAX_HEADER_BYTES, the same 16 KiB: bearer tokens are
refused by the application well below it, JWT_MAX_TOKEN_BYTES) and answers both cases with
`431 Request Header Fields Too Large`, `{"detail", "code": "request_headers_too_large"}`. It then closes
its side of the connection but goes on reading, and discarding, what the client is still sending, so the
client reads the answer rather than a reset; REFUSAL_LINGER_S later the connection is dropped whatever the
client does. The refusal is written to the access log like any answer (chatservice.access_log redacts it).

Bodies get the same treatment: Twisted would read any body into a temporary file before the application
sees a byte, so the limit is applied here, while it streams in. A declared Content-Length over the path's
limit (`chatservice.asgi_middleware.body_limit`: 1 MiB, or CHAT_ATTACHMENT_MAX_BYTES plus the multipart
framing on the upload path) is answered 413 as soon as the headers are in, without reading the body; a
chunked body is counted as it arrives and refused the moment it goes over.

`install()` makes Daphne's HTTP factory build its connections with this channel; Twisted's HTTPChannel
itself, and any other Twisted server in the process, are left alone.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from twisted.web import http

from chatservice.asgi_middleware import body_limit, body_refusal
from chatservice.config import HTTP_MAX_HEADER_BYTES
from chatservice.errors import error_body

logger = logging.getLogger(__name__)

STATUS = 431
CODE = "request_headers_too_large"
# How long a refused connection is kept open, reading and discarding, so that the client has read the
# 431 before the connection goes; a client still uploading after that is not reading answers anyway.
REFUSAL_LINGER_S = 5.0
# Characters of a refused request's target kept for the access log when the request line itself was too
# long; its query string is left out, as it was cut at an arbitrary point.
MAX_LOGGED_TARGET = 2048


def refusal_body() -> bytes:
    detail = f"Request line and headers are larger than {HTTP_MAX_HEADER_BYTES} bytes."
    return json.dumps(error_body(detail, CODE)).encode()


class HeaderLimitedHTTPChannel(http.HTTPChannel):
    MAX_LENGTH = HTTP_MAX_HEADER_BYTES
    totalHeadersSize = HTTP_MAX_HEADER_BYTES

    _header_bytes = 0  # of the request being read: Twisted's own count, kept here to act before it does
    _request_line: bytes | None = None
    _refused = False
    _body_limit: int | None = None  # of the request whose body is being read
    _body_bytes = 0  # read so far, as sent (chunk framing included: a little stricter than the limit)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return  # what is left of a refused request: read so that the client is not reset, then dropped
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        if self._request_line is None and line:
            self._request_line = line
        self._header_bytes += len(line)
        if self._header_bytes > self.totalHeadersSize:
            self._refuse(cut=False)
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        cut = self._request_line is None
        if cut:
            self._request_line = line[:MAX_LOGGED_TARGET]
        self._refuse(cut=cut)

    def allHeadersReceived(self) -> None:
        limit = body_limit(getattr(self, "_path", b""))
        if self.length is not None and self.length > limit:
            self._refuse_body(limit)
            return
        self._body_limit, self._body_bytes = limit, 0
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._body_limit is not None:
            self._body_bytes += len(data)
            if self._body_bytes > self._body_limit:
                self._refuse_body(self._body_limit)
                return
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        # The request's headers and body are in: the next request on this connection counts from zero.
        self._header_bytes = 0
        self._request_line = None
        self._body_limit = None
        super().allContentReceived()

    def timeoutConnection(self) -> None:
        if self._refused:
            self.transport.abortConnection()
            return
        super().timeoutConnection()

    def _refuse_body(self, limit: int) -> None:
        # Daphne never saw this request (it starts at allContentReceived): only the connection is ours to close.
        detail, code = body_refusal(getattr(self, "_path", b""), limit)
        self._refuse(
            cut=False, status=413, reason=b"Content Too Large", body=json.dumps(error_body(detail, code)).encode()
        )

    def _refuse(
        self,
        *,
        cut: bool,
        status: int = STATUS,
        reason: bytes = b"Request Header Fields Too Large",
        body: bytes | None = None,
    ) -> None:
        self._refused = True
        body = refusal_body() if body is None else body
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self._log_refusal(len(body), cut=cut, status=status)
        self.setTimeout(REFUSAL_LINGER_S)  # our timeoutConnection then drops the connection
        half_close = getattr(self.transport, "loseWriteConnection", None)
        if half_close is None:
            self.transport.loseConnection()
        else:
            half_close()

    def _log_refusal(self, size: int, *, cut: bool, status: int = STATUS) -> None:
        server = getattr(self.factory, "server", None)  # Daphne's factory knows its server, and so its log
        if server is None:
            return
        method, target = request_line_parts(self._request_line or b"", cut=cut)
        peer = self.transport.getPeer()
        client = f"{peer.host}:{peer.port}" if hasattr(peer, "host") else None
        details = {"path": target, "status": status, "method": method, "client": client, "time_taken": 0.0}
        try:
            server.log_action("http", "complete", {**details, "size": size})
        except Exception:
            logger.exception("could not log a request refused for its headers")


def request_line_parts(line: bytes, *, cut: bool) -> tuple[str, str]:
    """(method, target) of a request line as the access log shows them; a cut line loses its query."""
    method, _, rest = line.partition(b" ")
    target = rest.split(b" ", 1)[0].decode("ascii", "replace") or "-"
    if cut and "?" in target:
        target = target.split("?", 1)[0] + "?[truncated]"
    return method[:16].decode("ascii", "replace") or "-", target


def _channel_protocol(factory: Any) -> Any:
    """Twisted's HTTPFactory.protocol, with our channel inside Twisted's protocol-switching wrapper."""
    return http._GenericHTTPChannelProtocol(HeaderLimitedHTTPChannel())


def install() -> None:
    """Make Daphne's HTTP factory build HeaderLimitedHTTPChannel connections (idempotent)."""
    from daphne.http_protocol import HTTPFactory

    if not hasattr(http, "_GenericHTTPChannelProtocol"):
        # A Twisted release without the wrapper: keep Twisted's behaviour rather than fail every connection.
        logger.warning("oversized request headers will not be answered with 431: twisted.web.http changed")
        return
    HTTPFactory.protocol = _channel_protocol
