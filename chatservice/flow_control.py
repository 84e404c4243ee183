"""Backpressure for streamed responses under Daphne.

Daphne writes every `http.response.body` message to the connection at once and ASGI's `send` never waits,
so a body produced faster than the client reads piles up in Twisted's send buffer: a 40 MB export to a slow
client held 40 MB in the worker. Twisted has the mechanism to stop that, producers: a push producer
registered on the request is paused while the connection's send buffer is full and resumed once it drains.

`install()` makes Daphne's requests put a `ResponseFlow`, such a producer, in the ASGI scope
(`scope["extensions"]["chat.flow"]`); a streaming body (chatservice.asgi_handler.streamed) waits on it
before producing each batch. Under another server, or in tests, there is none and bodies go as produced.
"""

from __future__ import annotations

import asyncio
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

SCOPE_KEY = "chat.flow"


@implementer(IPushProducer)
class ResponseFlow:
    """One request's producer: `writable()` returns while the connection can take more of its body."""

    def __init__(self, request: Any) -> None:
        self._request = request
        self._writable = asyncio.Event()
        self._writable.set()
        self._registered = False

    def start(self) -> None:
        """Take part in the connection's flow control (once the body starts; on the reactor's loop)."""
        if not self._registered and self._request.producer is None and not self._request.finished:
            self._request.registerProducer(self, True)
            self._registered = True

    def stop(self) -> None:
        """The body is complete: the next request on this connection may register its own."""
        if self._registered:
            self._registered = False
            self._request.unregisterProducer()

    async def writable(self) -> None:
        await self._writable.wait()

    # IPushProducer, called by Twisted on the event loop
    def pauseProducing(self) -> None:
        self._writable.clear()

    def resumeProducing(self) -> None:
        self._writable.set()

    def stopProducing(self) -> None:
        self._writable.set()  # the connection is gone: let the body end (its writes are dropped)


def flow_of(scope: dict[str, Any]) -> ResponseFlow | None:
    return scope.get("extensions", {}).get(SCOPE_KEY)


class _ServerAddingFlow:
    """Daphne's server, as one request sees it: its applications' scopes carry the request's ResponseFlow."""

    def __init__(self, server: Any, request: Any) -> None:
        self._server = server
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        scope = {**scope, "extensions": {**scope.get("extensions", {}), SCOPE_KEY: ResponseFlow(self._request)}}
        return self._server.create_application(protocol, scope)


def install() -> None:
    """Make Daphne build its HTTP requests with a ResponseFlow (idempotent)."""
    from daphne import http_protocol

    if getattr(http_protocol.WebRequest, "_chat_flow", False):
        return

    class FlowControlledRequest(http_protocol.WebRequest):
        _chat_flow = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.server = _ServerAddingFlow(self.server, self)

    http_protocol.WebRequest = FlowControlledRequest
