"""The conversation WebSocket: `WS /ws/conversations/<conversationId>?token=<jwt>[&lastMessageId=<id>]`.

The consumer parses and authorizes, calls the services, and renders frames. Everything else has a
module of its own:

    realtime.auth        who opened the socket (token, or staff session and its exact Origin)
    realtime.frames      what an inbound frame may contain (every check, with its error code)
    realtime.delivery    which stored messages the socket sends, and when (exactly once, in order)
    realtime.outbox      the bounded way out to the client (backpressure; too slow: 4008)
    realtime.batcher     group commit of message frames
    realtime.presence    sockets per user (4429) and presence with a grace period
    realtime.sweeper     messages whose event never came
    realtime.ratelimit   token buckets
    realtime.broadcast   every event published; realtime.events: every frame built

A frame gets its normal handling or an `error` frame, and the socket stays open, whatever the frame
holds (a handler that fails unexpectedly answers `internal_error`). However the connection ends (a
close, a crash, a cancelled task), its cleanup runs exactly once.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from opentelemetry.trace import Span

from chatservice import metrics
from chatservice.authentication import Principal
from chatservice.errors import ServiceError
from conversations import selectors as conversation_selectors
from conversations import services as conversation_services
from conversations.models import Conversation
from desk.services import agents_seen
from messaging import selectors as message_selectors
from messaging.replies import message_items, quoted_messages
from messaging.services import SendRequest, Sent
from messaging.visibility import payload_visible
from notifications.contacts import needs_storing, remember_email
from realtime import auth, broadcast, events, frames, presence, tracing
from realtime.batcher import SendResult, send_batcher
from realtime.dbpool import db
from realtime.delivery import Deliveries, DeliveryCursor
from realtime.frames import FrameError
from realtime.outbox import Outbox, socket_outbox
from realtime.ratelimit import TokenBucket, user_buckets
from realtime.registry import SocketRegistry, per_loop
from realtime.sweeper import gap_sweep_job

logger = logging.getLogger(__name__)

# Close codes: the HTTP status a REST client would get, in the 4000 range WebSocket leaves to apps.
CLOSE_TOO_SLOW = 4008  # the client did not read its frames (CHAT_WS_MAX_BUFFERED_*); resume and go on
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_SOCKETS = 4429  # the user already has CHAT_WS_MAX_SOCKETS_PER_USER sockets open
CLOSE_INTERNAL_ERROR = 1011  # the connection could not be set up (the database is away); retry later

# Replays and gap fills read this many messages per query: bounded memory however long the gap.
REPLAY_BATCH = 200
# A typist who stops refreshing is shown as stopped after this long (clients refresh every few seconds).
TYPING_TIMEOUT_S = 10.0

open_sockets = per_loop(lambda: SocketRegistry([gap_sweep_job, presence.presence_refresh_job]))


def _error(code: str, message: str) -> events.ErrorFrame:
    """Every `error` frame is built here, so each one is counted (chat_ws_error_frames_total)."""
    metrics.error_frame(code)
    return events.error_frame(code, message)


def _position(conversation_id: str, last_message_id: str | None, viewer: Principal) -> tuple[int, int | None]:
    """(the conversation's last_seq now, the seq of last_message_id or None if it is not one of its that
    the viewer may see: a donor cannot resume from a note)."""
    last_seq = conversation_selectors.last_seq(conversation_id)
    if not last_message_id:
        return last_seq, None
    return last_seq, message_selectors.message_seq(conversation_id, last_message_id, viewer)


def _replay_page(conversation_id: str, after: int, upto: int) -> tuple[int, list[events.StoredMessage]]:
    """Messages numbered after..upto, at most REPLAY_BATCH, replies resolved: (rows read, items)."""
    rows = message_selectors.messages_between(conversation_id, after=after, upto=upto, limit=REPLAY_BATCH)
    return len(rows), message_items(rows)


def _changes_page(conversation_id: str, after: int, viewer: Principal) -> tuple[list[Any], int, bool]:
    """The frames telling `viewer` of changes after `after` (each message as it is now), the cursor they
    bring the socket to, and whether there are more."""
    page = message_selectors.changes_since(
        conversation_id=conversation_id, after=after, viewer=viewer, limit=REPLAY_BATCH
    )
    quoted = quoted_messages(page.messages)
    frames_ = [events.change_frame(m, quoted.get(m.reply_to_id or "")) for m in page.messages]
    return frames_, page.cursor, page.more


class ConversationConsumer(AsyncWebsocketConsumer):
    conversation_id: str
    principal: Principal
    cursor: DeliveryCursor
    outbox: Outbox

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self._owed: list[str] = []  # cleanup steps owed, in the order they were taken on
        self._ended = False
        self.accepted = False
        self.trace: Span | None = None
        self.frame_span: Span | None = None
        self.typing = False
        self.typing_timer: asyncio.TimerHandle | None = None
        self.filling: asyncio.Task[None] | None = None
        self.closing: asyncio.Task[None] | None = None
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._clean_up()

    # -- opening

    async def connect(self) -> None:
        self.conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        # The scope's path only: the token has already left the query string (realtime.auth).
        self.trace = tracing.connection_started(self.scope["path"], self.conversation_id)
        with tracing.active(self.trace):
            try:
                await self._open()
            except Exception as exc:
                logger.warning("websocket could not be opened: %s", exc, exc_info=True, extra=self._log_fields())
                await self._refuse(CLOSE_INTERNAL_ERROR)

    async def _accept(self) -> None:
        if not self.accepted:
            self.accepted = True
            await self.accept()

    async def _open(self) -> None:
        principal = await auth.socket_principal(self.scope)
        if principal is None:
            return await self._refuse(CLOSE_UNAUTHENTICATED)
        self.principal = principal
        tracing.connection_identified(self.trace, principal.user_id, principal.role)
        access = await db(conversation_selectors.conversation_access)(
            viewer=principal, conversation_id=self.conversation_id
        )
        if access.conversation is None:
            return await self._refuse(CLOSE_NOT_FOUND)
        if not access.allowed:
            return await self._refuse(CLOSE_FORBIDDEN)
        conf = settings.CHAT
        if not await presence.get_presence().claim_socket(
            principal, self.channel_name, conf["WS_MAX_SOCKETS_PER_USER"]
        ):
            return await self._refuse(CLOSE_TOO_MANY_SOCKETS)
        self._owed.append("socket_claim")
        if needs_storing(principal):  # in memory: most sockets take no database thread for this
            await db(remember_email)(principal)
        newly_staff = False
        if not access.takes_part:  # support staff opening a conversation take part from now on
            _, newly_staff = await db(conversation_services.participant_join)(
                conversation=access.conversation, principal=principal
            )

        self.bucket = TokenBucket(rate=conf["WS_MESSAGE_RATE"], burst=conf["WS_MESSAGE_BURST"])
        self.typing_bucket = TokenBucket(rate=conf["WS_TYPING_RATE"], burst=conf["WS_TYPING_BURST"])
        self.user_bucket = user_buckets.acquire(self._who, rate=conf["WS_USER_RATE"], burst=conf["WS_USER_BURST"])
        self._owed.append("user_bucket")
        # Join before reading the sequence: anything committed from here on arrives as an event. The
        # handshake completes only then, so "open" means "live from here" for the client.
        await self.channel_layer.group_add(broadcast.conversation_group(self.conversation_id), self.channel_name)
        self._owed.append("group")
        last_message_id = self._query_param("lastMessageId")
        last_seq, resume_from = await db(_position)(self.conversation_id, last_message_id, principal)
        self.cursor = DeliveryCursor(
            delivered=last_seq if resume_from is None else resume_from,
            known=last_seq,
            sender_id=principal.user_id,
            sender_role=principal.role,
        )
        self.outbox = socket_outbox(self.scope, self.base_send, self._too_slow)
        await self._accept()
        self.outbox.start()
        metrics.socket_opened()
        self._owed.append("gauge")
        open_sockets().add(self)
        self._owed.append("registry")
        logger.info("websocket opened", extra=self._log_fields())
        if last_message_id and resume_from is None:
            self._push(_error("invalid_cursor", "lastMessageId is not a message of this conversation."))
        self._fill_if_wanted()
        changed_since = self._query_param("changedSince")
        if changed_since is not None:
            await self._replay_changes(changed_since)
        self._owed.append("presence")
        await presence.socket_joined(self.conversation_id, principal, self.channel_name, announce=newly_staff)
        if principal.is_admin:
            await db(agents_seen)([principal.user_id])

    async def _refuse(self, code: int) -> None:
        logger.info("websocket refused", extra={**self._log_fields(), "close_code": code})
        # Accept then close: a close code reaches browsers only after the handshake succeeded.
        await self._accept()
        await self.close(code=code)

    # -- closing

    async def disconnect(self, code: int) -> None:
        await self._clean_up(code)

    async def _clean_up(self, code: int | None = None) -> None:
        """Undo what opening did, once, whatever ended the connection; a failing step never stops the
        others (each is logged with its traceback)."""
        if self._ended:
            return
        self._ended = True
        owed, self._owed = self._owed, []
        with tracing.active(self.trace):
            if hasattr(self, "outbox"):
                self.outbox.close()
            for task in (self.filling, self.closing):
                if task is not None and task is not asyncio.current_task():
                    task.cancel()
            if self.typing_timer is not None:
                self.typing_timer.cancel()
            for step in reversed(owed):
                try:
                    await self._undo(step)
                except Exception as exc:
                    logger.warning("websocket cleanup step %s failed: %s", step, exc, exc_info=True)
            if "gauge" in owed:
                logger.info("websocket closed", extra={**self._log_fields(), "close_code": code})
        tracing.connection_ended(self.trace, code)

    async def _undo(self, step: str) -> None:
        if step == "gauge":
            metrics.socket_closed()
        elif step == "registry":
            open_sockets().remove(self)
        elif step == "user_bucket":
            user_buckets.release(self._who)
        elif step == "group":
            await self.channel_layer.group_discard(
                broadcast.conversation_group(self.conversation_id), self.channel_name
            )
        elif step == "presence":
            if self.typing:
                self.typing = False
                await broadcast.typing_changed(self.conversation_id, self.principal, False)
            await presence.socket_left(self.conversation_id, self.principal, self.channel_name)
        elif step == "socket_claim":
            await presence.get_presence().release_socket(self.principal, self.channel_name)

    def _too_slow(self) -> None:
        """The outbox overflowed: the client is not reading. It resumes with lastMessageId."""
        metrics.slow_socket_closed()
        logger.info("websocket too slow, closing", extra={**self._log_fields(), "close_code": CLOSE_TOO_SLOW})
        self.closing = asyncio.get_running_loop().create_task(self._close_too_slow())

    async def _close_too_slow(self) -> None:
        await self.close(code=CLOSE_TOO_SLOW)
        # The connection may take CHAT_WS_SLOW_CLOSE_GRACE_S to end: stop taking the conversation's events
        # now, or each would still be rendered for nothing (the outbox takes no more frames).
        if "group" in self._owed:
            self._owed.remove("group")
            await self._undo("group")

    # -- every message from the client or the channel layer

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Unlike Channels' own dispatch, no `close_old_connections` hop to the sync thread per message (6 %
        # of a worker under load): this consumer's database work runs on pool threads that keep and check
        # their own connections (realtime.dbpool). And a failing handler is logged, not allowed to end
        # the connection without its cleanup.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            logger.warning("websocket got a message it has no handler for: %s", message.get("type"))
            return
        try:
            await handler(message)
        except StopConsumer:
            raise
        except Exception as exc:
            logger.error("websocket handler for %s failed: %s", message.get("type"), exc, exc_info=True)
            if message.get("type") == "websocket.disconnect":
                raise StopConsumer() from None

    # -- inbound frames

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Frames are handled one at a time per socket, so the frame's span can live on the consumer; a
        # message frame hands it to the send batcher, which ends it once stored and announced.
        self.frame_span = span = tracing.frame_started(self.trace)
        with tracing.active(span):
            try:
                frame_type, frame = frames.decode(text_data, bytes_data)
                tracing.frame_typed(span, frame_type)
                await getattr(self, f"_on_{frame_type}")(frame)
            except (FrameError, ServiceError) as exc:
                code, message = (exc.code, exc.message) if isinstance(exc, FrameError) else (exc.code, exc.detail)
                tracing.frame_refused(span, code)
                self._push(_error(code, message))
            except Exception as exc:
                logger.error("websocket frame handler failed: %s", exc, exc_info=True, extra=self._log_fields())
                tracing.frame_refused(span, "internal_error")
                self._push(_error("internal_error", "The frame could not be handled; send it again."))
        tracing.end(self.frame_span)
        self.frame_span = None

    def _spend(self, bucket: TokenBucket, kind: metrics.RateLimitKind) -> None:
        if not bucket.take():
            metrics.rate_limited(kind)
            raise FrameError("rate_limited", f"Too many frames; retry in {bucket.retry_after():.1f} s.")

    async def _on_message(self, frame: dict[str, Any]) -> None:
        self._spend(self.bucket, "message")
        self._spend(self.user_bucket, "user")
        fields = frames.message_fields(frame)
        ticket = self.cursor.send_started()
        # Not awaited: the socket goes on delivering others' messages while its own is being stored.
        send_batcher().submit(
            SendRequest(
                conversation_id=self.conversation_id,
                sender=self.principal,
                content=fields.content,
                message_type=fields.message_type,
                metadata=fields.metadata,
                client_message_id=fields.client_message_id,
                reply_to=fields.reply_to,
            ),
            functools.partial(self._on_stored, ticket),
            self.frame_span,
        )
        self.frame_span = None  # the batcher's now
        if self.typing:
            await self._set_typing(False)

    def _on_stored(self, ticket: int, result: SendResult) -> None:
        """The result of this socket's send, on the event loop, before the message's event goes out."""
        if isinstance(result, Sent):
            released = self.cursor.send_stored(ticket, result.message.seq)
            self._push(events.message_frame(result.payload, own_send=True))
            self._deliver(released)
        else:
            self.cursor.send_failed(ticket)
            if isinstance(result, ServiceError):
                self._push(_error(result.code, result.detail))
            else:
                self._push(_error("unavailable", "The message could not be stored; retry."))
        self._fill_if_wanted()  # a read that waited for this answer may go on

    async def _on_typing(self, frame: dict[str, Any]) -> None:
        is_typing = frames.typing_flag(frame)
        self._spend(self.typing_bucket, "typing")
        if is_typing:
            if self.typing_timer is not None:
                self.typing_timer.cancel()
            loop = asyncio.get_running_loop()
            self.typing_timer = loop.call_later(TYPING_TIMEOUT_S, lambda: loop.create_task(self._typing_expired()))
        await self._set_typing(is_typing)

    async def _typing_expired(self) -> None:
        if self._owed and self.typing:
            await self._set_typing(False)

    async def _set_typing(self, typing: bool) -> None:
        if not typing and self.typing_timer is not None:
            self.typing_timer.cancel()
            self.typing_timer = None
        if typing == self.typing:
            return  # a refresh: nothing new to tell the others
        self.typing = typing
        await broadcast.typing_changed(self.conversation_id, self.principal, typing)

    async def _on_read(self, frame: dict[str, Any]) -> None:
        self._spend(self.bucket, "read")
        await db(conversation_services.participant_mark_read)(
            conversation=Conversation(pk=self.conversation_id),
            reader=self.principal,
            message_id=frames.read_target(frame),
        )

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        self._push(events.PONG)

    # -- events from the channel layer

    async def chat_messages(self, event: events.MessagesEvent) -> None:
        with tracing.delivering(event, self.trace):
            self._deliver(self.cursor.live(event["messages"], tag=event.get(broadcast.PUBLISHED_AT)))
            self._fill_if_wanted()

    async def chat_frame(self, event: events.FrameEvent) -> None:
        if event.get("skipUserId") == self.principal.user_id and event.get("skipRole") == self.principal.role:
            return  # the person's own typing or presence, on another of their tabs
        if event.get("staffOnly") and not self.principal.is_admin:
            return  # about a note (a read receipt naming one)
        with tracing.delivering(event, self.trace):
            self._push(event["frame"])

    async def chat_catchup(self, event: dict[str, Any]) -> None:
        self.cursor.stored_up_to(event["upto"])
        self._fill_if_wanted()

    # -- what the gap sweep asks (realtime.registry.OpenSocket)

    def behind(self, last_seq: int) -> bool:
        return self._open_for_frames and self.cursor.delivered < last_seq

    # -- helpers

    async def _replay_changes(self, changed_since: str) -> None:
        """Edits, deletions and reactions since the client's change cursor, each message as it is now. Read
        while the connection is being set up, so no live change frame is handled before them: a live frame
        is as new as what was read, or newer."""
        if not frames.CHANGE_CURSOR.fullmatch(changed_since):
            self._push(_error("invalid_cursor", "changedSince is not a change cursor."))
            return
        after, more = int(changed_since), True
        while more and self._open_for_frames:
            found, after, more = await db(_changes_page)(self.conversation_id, after, self.principal)
            for frame in found:
                self._push(frame)

    def _fill_if_wanted(self) -> None:
        """Read what the cursor is missing, in one task per socket (it re-checks after every page)."""
        if not self._open_for_frames or self.cursor.wanted() is None:
            return
        if self.filling is None or self.filling.done():
            self.filling = asyncio.get_running_loop().create_task(self._fill())

    async def _fill(self) -> None:
        try:
            while (read := self.cursor.wanted()) is not None:
                count, items = await db(_replay_page)(self.conversation_id, read.after, read.upto)
                self._deliver(self.cursor.page(read, items, complete=count < REPLAY_BATCH))
        except Exception as exc:  # the database is away: the gap sweep asks again
            logger.warning("filling a gap failed: %s", exc, exc_info=True, extra=self._log_fields())

    def _deliver(self, deliveries: Deliveries) -> None:
        """Others' messages, as the cursor released them; those that came live carry their event's
        publish time (a fan-out latency sample), those read from the database None."""
        for payload, published_at in deliveries:
            if not payload_visible(payload, self.principal.role):
                continue  # a note: the cursor has moved past its number, the donor never sees it
            self._push(events.message_frame(payload, own_send=False))
            if published_at is not None:
                metrics.fanout_delivered(published_at)

    @property
    def _open_for_frames(self) -> bool:
        """Opened and not closing: once closing (too slow, say), nothing is read or rendered for it."""
        return bool(self._owed) and not self.outbox.closed

    def _push(self, frame: Any) -> None:
        if not self.outbox.closed:  # closing: not worth encoding
            self.outbox.push(json.dumps(frame, separators=(",", ":")))

    @property
    def _who(self) -> tuple[str, str]:
        return self.principal.role, self.principal.user_id

    def _query_param(self, name: str) -> str | None:
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[-1] if values else None

    def _log_fields(self) -> dict[str, Any]:
        """Who and where, for connection logs: ids only, never the token or anything a client wrote."""
        principal = getattr(self, "principal", None)
        return {
            "user_id": principal.user_id if principal else None,
            "conversation_id": getattr(self, "conversation_id", None),
        }
