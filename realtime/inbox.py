"""The inbox WebSocket: `WS /ws/inbox?token=<jwt>` (or a staff session from a trusted origin).

One socket per inbox, not one per conversation: staff get `conversation_created`, `conversation_updated`
and `inbox_message` for every conversation; donors for their own, never about a note. The socket only
listens (the one frame it takes is `ping`), so it can miss nothing that matters: on (re)connect a client
first opens the socket, then reloads the list over REST, and applies events on top (README, "Inbox").

Bounded like a conversation socket: the same per-person socket cap (4429), outbox (4008), frame size
and rate limits.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from chatservice import metrics
from chatservice.authentication import Principal
from desk.services import agents_seen
from realtime import auth, events, frames, presence
from realtime.consumers import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_TOO_MANY_SOCKETS,
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHENTICATED,
)
from realtime.dbpool import db
from realtime.frames import FrameError
from realtime.inbox_events import (
    InboxBatchEvent,
    InboxConversationEvent,
    InboxMessagesEvent,
    InboxReadEvent,
    inbox_groups,
    person_key,
)
from realtime.inbox_hub import staff_hub
from realtime.outbox import Outbox, socket_outbox
from realtime.ratelimit import TokenBucket
from realtime.registry import PeriodicJob, SocketRegistry, per_loop

logger = logging.getLogger(__name__)


class InboxRefresher:
    """Every PRESENCE_REFRESH_S: each open inbox socket renews its socket-cap entry; donors' sockets
    re-join their group, the staff hub its subscription (the core layer expires group members); staff
    with a socket open are not away."""

    def __init__(self, registry: SocketRegistry) -> None:
        self.registry = registry

    async def refresh(self) -> None:
        store, layer = presence.get_presence(), self._layer()
        staff: set[str] = set()
        for socket in self.registry.all():
            await store.refresh(socket.conversation_id, socket.principal, socket.channel_name)
            if socket.principal.is_admin:
                staff.add(socket.principal.user_id)
            else:
                await layer.group_add(socket.conversation_id, socket.channel_name)
        if staff:
            await staff_hub().refresh()
            await db(agents_seen)(sorted(staff))

    @staticmethod
    def _layer() -> Any:
        return get_channel_layer()


def _refresh_job(registry: SocketRegistry) -> PeriodicJob:
    return PeriodicJob("inbox refresh", lambda: presence.PRESENCE_REFRESH_S, InboxRefresher(registry).refresh, registry)


# Registered under their group name (where conversation sockets use their conversation id).
inbox_sockets = per_loop(lambda: SocketRegistry([_refresh_job]))


class InboxConsumer(AsyncWebsocketConsumer):
    principal: Principal
    outbox: Outbox
    conversation_id: str  # the group: what the registry and its refresher key on

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self._owed: list[str] = []
        self._ended = False
        self.accepted = False
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._clean_up()

    async def connect(self) -> None:
        try:
            await self._open()
        except Exception as exc:
            logger.warning("inbox socket could not be opened: %s", exc, exc_info=True)
            await self._refuse(CLOSE_INTERNAL_ERROR)

    async def _open(self) -> None:
        principal = await auth.socket_principal(self.scope)
        if principal is None:
            return await self._refuse(CLOSE_UNAUTHENTICATED)
        self.principal = principal
        conf = settings.CHAT
        if not await presence.get_presence().claim_socket(
            principal, self.channel_name, conf["WS_MAX_SOCKETS_PER_USER"]
        ):
            return await self._refuse(CLOSE_TOO_MANY_SOCKETS)
        self._owed.append("socket_claim")
        self.conversation_id = inbox_groups(principal)
        if principal.is_admin:  # one subscription per worker, shared (realtime.inbox_hub)
            await staff_hub().add(self)
            self._owed.append("hub")
        else:
            await self.channel_layer.group_add(self.conversation_id, self.channel_name)
            self._owed.append("group")
        self.bucket = TokenBucket(rate=conf["WS_MESSAGE_RATE"], burst=conf["WS_MESSAGE_BURST"])
        self.outbox = socket_outbox(self.scope, self.base_send, self._too_slow)
        self.accepted = True
        await self.accept()
        self.outbox.start()
        metrics.socket_opened()
        self._owed.append("gauge")
        inbox_sockets().add(self)
        self._owed.append("registry")
        if principal.is_admin:
            await db(agents_seen)([principal.user_id])

    async def _refuse(self, code: int) -> None:
        if not self.accepted:
            self.accepted = True
            await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        await self._clean_up()

    async def _clean_up(self) -> None:
        if self._ended:
            return
        self._ended = True
        owed, self._owed = self._owed, []
        if hasattr(self, "outbox"):
            self.outbox.close()
        for step in reversed(owed):
            try:
                if step == "gauge":
                    metrics.socket_closed()
                elif step == "registry":
                    inbox_sockets().remove(self)
                elif step == "group":
                    await self.channel_layer.group_discard(self.conversation_id, self.channel_name)
                elif step == "hub":
                    await staff_hub().remove(self)
                elif step == "socket_claim":
                    await presence.get_presence().release_socket(self.principal, self.channel_name)
            except Exception as exc:
                logger.warning("inbox socket cleanup step %s failed: %s", step, exc, exc_info=True)

    def _too_slow(self) -> None:
        metrics.slow_socket_closed()
        asyncio.get_running_loop().create_task(self.close(code=CLOSE_TOO_SLOW))

    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            await super().dispatch(message)
        except StopConsumer:
            raise
        except Exception as exc:
            logger.error("inbox handler for %s failed: %s", message.get("type"), exc, exc_info=True)

    # -- inbound: ping only

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame_type, _ = frames.decode(text_data, bytes_data)
            if not self.bucket.take():
                metrics.rate_limited("message")
                raise FrameError("rate_limited", f"Too many frames; retry in {self.bucket.retry_after():.1f} s.")
            if frame_type != "ping":
                raise FrameError("unknown_type", "The inbox socket takes `ping` frames only.")
            self._push(events.PONG)
        except FrameError as exc:
            metrics.error_frame(exc.code)
            self._push(events.error_frame(exc.code, exc.message))

    # -- events

    def unread_of(self, unread: dict[str, int]) -> int | None:
        return unread.get(person_key(self.principal.user_id, self.principal.role))

    # Donors' events come through their own group; staff events through the hub (push_text).

    async def inbox_messages(self, event: InboxMessagesEvent) -> None:
        unread = self.unread_of(event["unread"])
        for item in event["messages"]:
            self._push(events.inbox_message_frame(event["conversationId"], item, unread))

    async def inbox_batch(self, event: InboxBatchEvent) -> None:
        handlers = {"inbox.messages": self.inbox_messages, "inbox.read": self.inbox_read}
        for inner in event["events"]:
            await handlers.get(inner["type"], self.inbox_conversation)(inner)

    async def inbox_read(self, event: InboxReadEvent) -> None:
        self._push(events.inbox_read_frame(event["conversationId"], event["unreadCount"]))

    async def inbox_conversation(self, event: InboxConversationEvent) -> None:
        self._push(
            events.inbox_conversation_frame(event["kind"], event["conversation"], self.unread_of(event["unread"]))
        )

    def _push(self, frame: Any) -> None:
        self.push_text(json.dumps(frame, separators=(",", ":")))

    def push_text(self, text: str) -> None:
        if hasattr(self, "outbox") and not self.outbox.closed:
            self.outbox.push(text)
