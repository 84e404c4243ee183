"""ASGI-level guards that must act before Django reads a request."""

from __future__ import annotations

import json
import re
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from django.conf import settings

from chatservice.errors import error_body

Scope = dict[str, Any]


# The upload path, whose body is a file in multipart framing; every other request is JSON or nothing.
ATTACHMENT_UPLOAD_PATH = re.compile(rb"^/api/conversations/[A-Za-z0-9_\-]{1,64}/attachments/?(?:\?|$)")
# Boundaries, part headers (a file name up to a few hundred bytes) and any small form fields beside the file.
MULTIPART_OVERHEAD_BYTES = 16 * 1024


def _is_upload(path: bytes | str) -> bool:
    raw = path.encode("latin-1", "replace") if isinstance(path, str) else path
    return ATTACHMENT_UPLOAD_PATH.match(raw) is not None


def body_limit(path: bytes | str) -> int:
    """The most body bytes a request to `path` may send: CHAT_ATTACHMENT_MAX_BYTES plus framing on the upload
    path, MAX_REQUEST_BODY_BYTES (1 MiB) everywhere else."""
    if _is_upload(path):
        return settings.CHAT["ATTACHMENT_MAX_BYTES"] + MULTIPART_OVERHEAD_BYTES
    return settings.MAX_REQUEST_BODY_BYTES


def body_refusal(path: bytes | str, limit: int) -> tuple[str, str]:
    """(detail, code) of a 413 for a body over `limit` bytes to `path`."""
    if _is_upload(path):
        files = settings.CHAT["ATTACHMENT_MAX_BYTES"]
        return f"The file is larger than {files} bytes.", "attachment_too_large"
    return f"Request body is larger than {limit} bytes.", "request_too_large"


class BodySizeLimitMiddleware:
    """Refuse HTTP request bodies over the path's limit (`body_limit`) with 413, before anything buffers or
    parses them. Under Daphne the HTTP layer refused them already, while they streamed in
    (chatservice.header_limits); this is the same rule for any other ASGI server and for in-process tests.

    A declared Content-Length over the limit is refused without reading the body; a body without one
    (chunked) is read up to the limit and refused as soon as it goes over, and otherwise handed on with
    its Content-Length declared (DRF reads no body from a request that has none).
    """

    def __init__(self, app: Any, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes  # None: per path (body_limit)

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        limit = self.max_bytes if self.max_bytes is not None else body_limit(path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            return await self._refuse(send, path, limit)
        if declared is not None:
            return await self.app(scope, receive, send)

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await self._refuse(send, path, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"transfer-encoding"]
        headers.append((b"content-length", str(size).encode()))
        return await self.app({**scope, "headers": headers}, replay, send)

    async def _refuse(self, send: ASGISendCallable, path: str, limit: int) -> None:
        body = json.dumps(error_body(*body_refusal(path, limit))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
