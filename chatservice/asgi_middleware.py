"""ASGI-level guards that must act before Django reads a request."""

from __future__ import annotations

import json
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable

from chatservice.errors import error_body

Scope = dict[str, Any]


class BodySizeLimitMiddleware:
    """Refuse HTTP request bodies over `max_bytes` with 413, before anything buffers or parses them.

    A declared Content-Length over the limit is refused without reading the body; a body without one
    (chunked) is read up to the limit and refused as soon as it goes over, and otherwise handed on with
    its Content-Length declared (DRF reads no body from a request that has none).
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            return await self._refuse(send)
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
            if size > self.max_bytes:
                return await self._refuse(send)
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

    async def _refuse(self, send: ASGISendCallable) -> None:
        body = json.dumps(
            error_body(f"Request body is larger than {self.max_bytes} bytes.", "request_too_large")
        ).encode()
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
