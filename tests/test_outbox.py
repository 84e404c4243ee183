"""The outbox's rules on their own, against a stand-in for autobahn's protocol and Twisted's transport
(the real pair is exercised by tests/test_backpressure.py, through real Daphne workers)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from realtime.outbox import Outbox, daphne_protocol

pytestmark = pytest.mark.asyncio


class Transport:
    """What the outbox uses of a Twisted transport; pauses its producer past `buffer_size` like one."""

    def __init__(self, buffer_size: int = 100) -> None:
        self.buffer_size = buffer_size
        self.buffered: list[bytes] = []
        self.producer: Any = object()  # the HTTPChannel left registered by the upgrade
        self.connected = True
        self.aborted = False

    def unregisterProducer(self) -> None:
        self.producer = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert self.producer is None, "Twisted refuses a second producer"
        assert streaming
        self.producer = producer

    def write(self, data: bytes) -> None:
        self.buffered.append(data)
        if sum(map(len, self.buffered)) > self.buffer_size:
            self.producer.pauseProducing()

    def drain(self) -> list[bytes]:
        """The peer read everything: Twisted tells the producer to go on."""
        written, self.buffered = self.buffered, []
        self.producer.resumeProducing()
        return written

    def abortConnection(self) -> None:
        self.connected, self.aborted = False, True


class Protocol:
    STATE_OPEN = 3
    STATE_CLOSING = 4

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.state = self.STATE_OPEN
        self.closeHandshakeTimeout = 1

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.transport.registerProducer(producer, streaming)

    def sendMessage(self, payload: bytes, is_binary: bool) -> None:
        if self.state != self.STATE_OPEN:
            raise RuntimeError("Attempt to send on a closed protocol")  # what autobahn raises
        self.transport.write(payload)


def outbox(protocol: Protocol | None, overflows: list[int], **limits: Any) -> Outbox:
    box = Outbox(
        protocol=protocol,
        asgi_send=None,  # type: ignore[arg-type]
        max_bytes=limits.get("max_bytes", 1000),
        max_frames=limits.get("max_frames", 5),
        slow_close_grace_s=limits.get("grace", 0.05),
        on_overflow=lambda: overflows.append(1),
    )
    box.start()
    return box


async def test_frames_wait_while_the_transport_is_paused_and_leave_in_order():
    transport, overflows = Transport(buffer_size=10), []
    box = outbox(Protocol(transport), overflows)
    assert transport.producer is box  # the upgrade's stale producer was replaced
    box.push("first frame")  # 11 bytes: the transport pauses its producer
    assert box.paused
    box.push("second")
    box.push("third")
    assert box.unsent == (2, 11)
    assert transport.drain() == [b"first frame"]  # resumeProducing writes the next, which pauses again
    assert transport.drain() == [b"second", b"third"]
    assert box.unsent == (0, 0) and not overflows


@pytest.mark.parametrize(("frames", "limits"), [(6, {"max_frames": 5}), (3, {"max_bytes": 25})])
async def test_over_the_bound_the_waiting_frames_are_dropped_and_the_socket_is_closed(frames, limits):
    transport, overflows = Transport(buffer_size=0), []
    protocol = Protocol(transport)
    box = outbox(protocol, overflows, grace=0.01, **limits)
    for i in range(frames + 1):
        box.push(f"frame {i} of ten")  # the first is written (and pauses), the rest wait
    assert overflows == [1]
    assert box.unsent == (0, 0)  # freed at once
    assert protocol.closeHandshakeTimeout == 0.01  # the client's time to read the close frame
    box.push("after")  # nothing more is taken
    assert box.unsent == (0, 0)

    async def aborted() -> None:
        while not transport.aborted:
            await asyncio.sleep(0.005)  # the outbox's own timer; nothing else to await

    await asyncio.wait_for(aborted(), timeout=5)  # dropped once the grace is over


async def test_a_closing_protocol_drops_frames_quietly(caplog):
    caplog.set_level(logging.DEBUG)
    transport, overflows = Transport(), []
    protocol = Protocol(transport)
    box = outbox(protocol, overflows)
    protocol.state = Protocol.STATE_CLOSING  # the peer's close frame arrived
    box.push("late")
    assert not transport.buffered
    assert all(record.levelno <= logging.DEBUG for record in caplog.records if record.name == "realtime.outbox")


async def test_without_daphne_frames_go_through_the_asgi_send_in_order():
    sent: list[str] = []

    async def asgi_send(message: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        sent.append(message["text"])

    box = Outbox(
        protocol=None, asgi_send=asgi_send, max_bytes=1000, max_frames=10, slow_close_grace_s=1, on_overflow=list
    )
    for i in range(5):
        box.push(str(i))
    while box.unsent[0] or len(sent) < 5:
        await asyncio.sleep(0)
    assert sent == ["0", "1", "2", "3", "4"]


async def test_the_protocol_is_found_only_behind_daphnes_send():
    async def plain_send(message: dict[str, Any]) -> None:
        return None

    assert daphne_protocol(plain_send) is None
    assert daphne_protocol(lambda message: None) is None
