"""Fan-out of the staff inbox group inside one worker.

Every staff inbox socket gets every event of the staff group. Through the channel layer that is one copy
of the event per socket (the in-memory layer deep-copies it into each socket's queue) and one consumer
dispatch per socket: 311 µs of worker CPU per frame delivered (bench/inbox_bench.py). Instead, each worker
subscribes once, and this hub encodes each event once and hands the ready text to every local staff
socket, which only splices in its viewer's unread count.

Invariant: a staff inbox socket is registered here exactly while it is open; the hub holds the group
subscription while it has at least one socket, and renews it with the sockets' periodic refresh (the core
Redis layer expires group members).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer

from realtime.inbox_events import STAFF_GROUP
from realtime.registry import per_loop

logger = logging.getLogger(__name__)


class StaffInboxSocket(Protocol):
    def unread_of(self, unread: dict[str, int]) -> int | None: ...

    def push_text(self, text: str) -> None: ...


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


Encoded = list[tuple[str, str, dict[str, int]]]  # (text before the count, text after it, unread counts)


def encode(event: dict[str, Any]) -> Encoded:
    """The event's frames, ready but for the viewer's unreadCount: each socket sends prefix + its count +
    suffix. Built once per event, whatever the number of sockets."""
    kind = event.get("type")
    if kind == "inbox.batch":
        return [frame for inner in event["events"] for frame in encode(inner)]
    unread = event.get("unread", {})
    if kind == "inbox.messages":
        frames = []
        for item in event["messages"]:
            body = _dumps({"type": "inbox_message", "conversationId": event["conversationId"], **item})
            frames.append((body[:-1] + ',"unreadCount":', "}", unread))
        return frames
    if kind == "inbox.conversation":
        conversation = {key: value for key, value in event["conversation"].items() if key != "unreadCount"}
        body = _dumps({"type": event["kind"], "conversation": conversation})
        return [(body[:-2] + ',"unreadCount":', "}}", unread)]
    return []


class StaffInboxHub:
    def __init__(self) -> None:
        self.sockets: weakref.WeakSet[StaffInboxSocket] = weakref.WeakSet()
        self.channel: str | None = None
        self.task: asyncio.Task[None] | None = None

    async def add(self, socket: StaffInboxSocket) -> None:
        self.sockets.add(socket)
        if self.task is None or self.task.done():
            layer = get_channel_layer()
            self.channel = await layer.new_channel("inbox-hub.")
            await layer.group_add(STAFF_GROUP, self.channel)
            self.task = asyncio.get_running_loop().create_task(self._receive(layer, self.channel))

    async def remove(self, socket: StaffInboxSocket) -> None:
        self.sockets.discard(socket)
        if not self.sockets and self.task is not None:
            self.task.cancel()
            self.task = None
            channel, self.channel = self.channel, None
            if channel is not None:
                await get_channel_layer().group_discard(STAFF_GROUP, channel)

    async def refresh(self) -> None:
        """Renew the group subscription (called by the inbox sockets' periodic refresh)."""
        if self.channel is not None:
            await get_channel_layer().group_add(STAFF_GROUP, self.channel)

    async def _receive(self, layer: Any, channel: str) -> None:
        while True:
            try:
                event = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the layer is away: the sockets' clients reload on reconnect
                logger.warning("staff inbox hub could not receive: %s", exc, exc_info=True)
                await asyncio.sleep(1.0)
                continue
            self.deliver(event)

    def deliver(self, event: dict[str, Any]) -> None:
        frames = encode(event)
        if not frames:
            return
        for socket in list(self.sockets):
            for prefix, suffix, unread in frames:
                socket.push_text(prefix + _dumps(socket.unread_of(unread)) + suffix)


staff_hub = per_loop(StaffInboxHub)
