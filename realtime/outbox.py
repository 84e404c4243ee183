"""Frames on their way to one client, with a bound: a client that does not read is closed, not buffered.

Daphne gives an ASGI application no backpressure signal. `websocket.send` goes straight to autobahn,
which writes the frame to the connection's Twisted transport, and the transport's buffer grows without
limit while the peer does not read: twenty such sockets took a worker from 158 to 462 MiB in 20 s.

The signal that does exist is Twisted's producer/consumer API. A streaming producer registered on a
transport is told `pauseProducing()` as soon as the transport buffers more than its `bufferSize`
(64 KiB), and `resumeProducing()` once that buffer has drained into the kernel. Each socket's Outbox
registers itself as that producer (through autobahn's `registerProducer`, which passes it to the
transport). One detail makes this necessary rather than optional: after the HTTP upgrade, the transport
still has Twisted's HTTPChannel registered as its producer, as Daphne never unregisters it when it hands
the connection to the WebSocket protocol. Twisted's pause signal then goes to the HTTPChannel, and the
application never hears it. So the outbox unregisters the HTTPChannel first.

While the transport is paused, frames wait in the outbox, counted in bytes and frames. A socket whose
waiting frames exceed CHAT_WS_MAX_BUFFERED_BYTES or CHAT_WS_MAX_BUFFERED_FRAMES is too slow: its frames
are dropped, and it is closed with 4008 (the client resumes with lastMessageId and loses nothing). A
socket therefore holds at most the transport's 64 KiB plus one frame, and the outbox's limit. The close
frame goes out behind what the transport already holds; the client gets CHAT_WS_SLOW_CLOSE_GRACE_S to
read it before autobahn drops the connection.

Writes go to autobahn's `sendMessage`, synchronously, so frames leave in the order they were pushed, even
from different tasks (the send batcher's acknowledgements, the consumer's deliveries). Under servers other
than Daphne (Channels' test communicator, say), frames go through the ASGI `send` callable instead, in
order, from one drain task; the limits apply the same way, without a pause signal.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

# Where asgi.py puts the Daphne protocol object of a WebSocket connection, for the outbox.
PROTOCOL_SCOPE_KEY = "chat.daphne_protocol"

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]


def daphne_protocol(send: Any) -> Any | None:
    """Daphne's WebSocket protocol object behind an application's raw `send` callable, or None.

    Daphne hands each application instance `functools.partial(server.handle_reply, protocol)`. This is
    read before any middleware wraps `send` (Channels' session middleware does)."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # pragma: no cover - Daphne is a dependency; other servers have no such object
        return None
    args = getattr(send, "args", None)  # a functools.partial's bound arguments
    protocol = args[0] if args else None
    return protocol if isinstance(protocol, WebSocketProtocol) else None


class TransportMiddleware:
    """Outermost ASGI middleware for WebSockets: records Daphne's protocol object in the scope."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        return await self.app({**scope, PROTOCOL_SCOPE_KEY: daphne_protocol(send)}, receive, send)


class Outbox:
    """The frames of one socket that the client has not yet taken (see the module docstring)."""

    def __init__(
        self,
        *,
        protocol: Any | None,
        asgi_send: AsgiSend,
        max_bytes: int,
        max_frames: int,
        slow_close_grace_s: float,
        on_overflow: Callable[[], None],
    ) -> None:
        self.protocol = protocol
        self.asgi_send = asgi_send
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self.slow_close_grace_s = slow_close_grace_s
        self.on_overflow = on_overflow
        self.waiting: deque[bytes] = deque()
        self.waiting_bytes = 0
        self.paused = False
        self.closed = False
        self._drain: asyncio.Task[None] | None = None
        self._abort_armed = False

    def start(self) -> None:
        """Become the transport's producer (call once the socket is accepted)."""
        protocol = self.protocol
        if protocol is None:
            return
        transport = getattr(protocol, "transport", None)
        if transport is None:
            self.protocol = None
            return
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()  # the HTTPChannel of the upgraded request (module docstring)
        protocol.registerProducer(self, True)

    # -- Twisted's IPushProducer, called on the event loop by the transport

    def pauseProducing(self) -> None:  # Twisted's IPushProducer interface
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while self.waiting and not self.paused and not self.closed:
            data = self.waiting.popleft()
            self.waiting_bytes -= len(data)
            self._write(data)

    def stopProducing(self) -> None:  # the connection is gone
        self._discard()

    # -- the consumer's side

    def push(self, text: str) -> None:
        """Send one text frame, now if the client keeps up, otherwise as soon as it does."""
        if self.closed:
            return
        data = text.encode()
        if self.protocol is not None and not self.paused and not self.waiting:
            self._write(data)
            return
        self.waiting.append(data)
        self.waiting_bytes += len(data)
        if len(self.waiting) > self.max_frames or self.waiting_bytes > self.max_bytes:
            logger.info("websocket too slow: %d frames (%d bytes) unsent", len(self.waiting), self.waiting_bytes)
            self._discard()
            if self.protocol is not None:
                # autobahn reads this when it sends the close frame: the time the peer gets to answer it.
                self.protocol.closeHandshakeTimeout = self.slow_close_grace_s
                self._abort_later()
            self.on_overflow()
        elif self.protocol is None and (self._drain is None or self._drain.done()):
            self._drain = asyncio.get_running_loop().create_task(self._drain_through_asgi())

    def close(self) -> None:
        """The socket is closing: nothing more is sent; waiting frames are freed."""
        self._discard()
        if self._drain is not None:
            self._drain.cancel()

    @property
    def unsent(self) -> tuple[int, int]:
        """(frames, bytes) waiting here; the transport's own buffer is not included."""
        return len(self.waiting), self.waiting_bytes

    # -- internals

    def _discard(self) -> None:
        self.closed = True
        self.waiting.clear()
        self.waiting_bytes = 0

    def _abort_later(self) -> None:
        """Drop the connection if it is still there after the grace. Needed beyond autobahn's own close
        timeout: once the peer has sent its close, autobahn closes the TCP connection only after the
        transport's buffer drains, which never happens if the peer stops reading."""
        if not self._abort_armed:
            self._abort_armed = True
            asyncio.get_running_loop().call_later(self.slow_close_grace_s, self._abort)

    def _abort(self) -> None:
        transport = getattr(self.protocol, "transport", None)
        if transport is not None and getattr(transport, "connected", False):
            logger.info("websocket dropped: its client took no data for %g s while closing", self.slow_close_grace_s)
            transport.abortConnection()

    def _write(self, data: bytes) -> None:
        protocol = self.protocol
        if protocol.state != protocol.STATE_OPEN:
            # Closing: the peer's close frame or ours is on its way. Dropping is what the client expects
            # (it resumes with lastMessageId), and raising here would only log a traceback.
            logger.debug("frame dropped: the socket is closing")
            self._discard()  # and the frames after it, without asking again
            self._abort_later()
            return
        protocol.sendMessage(data, False)

    async def _drain_through_asgi(self) -> None:
        while self.waiting and not self.closed:
            data = self.waiting.popleft()
            self.waiting_bytes -= len(data)
            await self.asgi_send({"type": "websocket.send", "text": data.decode()})


def socket_outbox(scope: dict[str, Any], asgi_send: AsgiSend, on_overflow: Callable[[], None]) -> Outbox:
    """The outbox of a socket, bounded by the settings (CHAT_WS_MAX_BUFFERED_*, _SLOW_CLOSE_GRACE_S)."""
    conf = settings.CHAT
    return Outbox(
        protocol=scope.get(PROTOCOL_SCOPE_KEY),
        asgi_send=asgi_send,
        max_bytes=conf["WS_MAX_BUFFERED_BYTES"],
        max_frames=conf["WS_MAX_BUFFERED_FRAMES"],
        slow_close_grace_s=conf["WS_SLOW_CLOSE_GRACE_S"],
        on_overflow=on_overflow,
    )
