"""The conversation WebSocket: `WS /ws/conversations/<conversationId>?token=<jwt>[&lastMessageId=<id>]`.

The consumer parses and authorizes frames, then calls the same services as REST. Delivery rules:

* A message is announced only after it is stored (services publish on commit), and `message_sent`
  means "persisted".
* Every stored message has a per-conversation sequence number, visible strictly in order. Each socket
  remembers the highest number it has delivered without a hole (`delivered`): a live event at or below
  it is a duplicate and dropped; one beyond `delivered + 1` reveals a gap (a lost or reordered event),
  which is filled from the database before the event is delivered. A sweep per process does the same
  for sockets whose last event never came (see `GapSweeper`). So the channel layer may drop, reorder or
  lose events during a Redis restart, and each socket still sees every message once, in order.
* Resume: `lastMessageId` replays everything after it from the database before live traffic. The
  socket joins the group *before* reading, so nothing committed meanwhile falls between the two.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.http.request import split_domain_port, validate_host
from opentelemetry.trace import Span
from rest_framework import serializers

from chatservice import metrics
from chatservice.authentication import Principal, principal_for_staff
from chatservice.errors import ServiceError, first_error
from conversations import services as conversation_services
from conversations.models import Conversation, Participant
from conversations.serializers import ReadInput
from messaging import services as message_services
from messaging.models import Message
from messaging.serializers import MessageInput
from realtime import events, tracing
from realtime.broadcast import PUBLISHED_AT, conversation_group, publish, publish_all
from realtime.presence import PRESENCE_REFRESH_S, get_presence
from realtime.ratelimit import TokenBucket

logger = logging.getLogger(__name__)

# Close codes: the HTTP status a REST client would get, in the 4000 range WebSocket leaves to apps.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404

# Frames above this are not parsed: a chat frame with 10,000 characters of content is ~40 KiB at most.
MAX_FRAME_BYTES = 64 * 1024
# Replay and gap fills read this many messages per query: bounded memory however long the gap.
REPLAY_BATCH = 200
# Messages written in one transaction at most: bounds a batch's lock time and its event size.
MAX_SEND_BATCH = 200
# A typist who stops refreshing is shown as stopped after this long (clients refresh every few seconds).
TYPING_TIMEOUT_S = 10.0
_db_executor: ThreadPoolExecutor | None = None


def _keeping_connection(fn: Any) -> Any:
    """Pool threads keep their database connection between calls (a new connection per frame cost
    more than the frame's queries); one that fails is closed, and the next call reconnects."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (InterfaceError, OperationalError):
            for conn in connections.all(initialized_only=True):
                conn.close()
            raise

    return run


def close_db_pool() -> None:
    """Close every pool thread's database connection and stop the pool (tests tear the database down
    after this; a worker process simply exits)."""
    global _db_executor
    executor, _db_executor = _db_executor, None
    if executor is None:
        return
    threads = executor._max_workers
    barrier = threading.Barrier(threads)

    def close_this_threads_connections() -> None:
        barrier.wait(timeout=10)  # one task per thread: each waits until every thread holds one
        connections.close_all()

    for future in [executor.submit(close_this_threads_connections) for _ in range(threads)]:
        future.result(timeout=30)
    executor.shutdown(wait=True)


def db(fn: Any) -> Any:
    """Run ORM code on this worker's pool of CHAT_WS_DB_THREADS threads rather than asgiref's single
    shared thread (thread_sensitive=True), so one socket's slow query does not queue every other
    socket's database work behind it (measured in bench/ws_bench.py). Each pool thread holds one
    database connection."""
    global _db_executor
    threads = settings.CHAT["WS_DB_THREADS"]
    if threads == 0:
        return database_sync_to_async(fn)
    if _db_executor is None:
        _db_executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ws-db")
    return sync_to_async(_keeping_connection(fn), thread_sensitive=False, executor=_db_executor)


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# The REST serializers, instantiated once: validation of a frame is the same as of a REST body, without
# DRF deep-copying every field per frame (7 % of a worker under load). Used on the event loop only.
MESSAGE_INPUT = MessageInput()
READ_INPUT = ReadInput()


def _error(code: str, message: str) -> events.ErrorFrame:
    """Every `error` frame is built here, so each one is counted (chat_ws_error_frames_total)."""
    metrics.error_frame(code)
    return events.error_frame(code, message)


def _validated(serializer: serializers.Serializer, frame: dict[str, Any]) -> dict[str, Any]:
    try:
        return serializer.run_validation({k: v for k, v in frame.items() if k != "type"})
    except serializers.ValidationError as exc:
        message, code = first_error(exc.detail)  # the same wording and code as the REST answer
        raise FrameError(code, message) from None


# ---- database steps of a connection (sync; run through db()) -------------------------------------


def _authorize(principal: Principal, conversation_id: str) -> tuple[int | None, bool]:
    """Return (close code or None, admin_joined)."""
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return CLOSE_NOT_FOUND, False
    is_participant = Participant.objects.filter(conversation_id=conversation_id, user_id=principal.user_id).exists()
    if is_participant:
        return None, False
    if not principal.is_admin:
        return CLOSE_FORBIDDEN, False
    _, joined = conversation_services.participant_join(conversation=conversation, principal=principal)
    return None, joined


def _cursor(conversation_id: str, last_message_id: str | None) -> tuple[int, int | None]:
    """Return (the conversation's last_seq now, the seq of last_message_id or None if unknown)."""
    last_seq = Conversation.objects.filter(pk=conversation_id).values_list("last_seq", flat=True).get()
    if not last_message_id:
        return last_seq, None
    seq = (
        Message.objects.filter(conversation_id=conversation_id, pk=last_message_id)
        .values_list("seq", flat=True)
        .first()
    )
    return last_seq, seq


def _messages_between(conversation_id: str, after: int, upto: int) -> list[events.StoredMessage]:
    rows = Message.objects.filter(conversation_id=conversation_id, seq__gt=after, seq__lte=upto).order_by("seq")
    return [events.message_item(message) for message in rows[:REPLAY_BATCH]]


def _last_seqs(conversation_ids: list[str]) -> dict[str, int]:
    return dict(Conversation.objects.filter(pk__in=conversation_ids).values_list("id", "last_seq"))


# ---- per-process registry and sweeper --------------------------------------------------------------


class GapSweeper:
    """Once per CHAT_WS_GAP_SWEEP_S and process: one query for the last_seq of every conversation with
    an open socket here; a socket that is behind gets a `chat.catchup` on its own channel (handled in
    order with its other events). Also refreshes presence for every open socket."""

    def __init__(self) -> None:
        self.sockets: dict[str, weakref.WeakSet[ConversationConsumer]] = {}
        self.task: asyncio.Task[None] | None = None
        self.last_presence_refresh = 0.0

    def add(self, consumer: ConversationConsumer) -> None:
        self.sockets.setdefault(consumer.conversation_id, weakref.WeakSet()).add(consumer)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())

    def remove(self, consumer: ConversationConsumer) -> None:
        members = self.sockets.get(consumer.conversation_id)
        if members is not None:
            members.discard(consumer)
            if not members:
                del self.sockets[consumer.conversation_id]

    async def run(self) -> None:
        while self.sockets:
            await asyncio.sleep(settings.CHAT["WS_GAP_SWEEP_S"])
            try:
                await self.sweep()
            except Exception as exc:  # Redis or the database away: the next sweep catches up
                logger.warning("gap sweep failed (%s); retrying in the next interval", type(exc).__name__)

    async def sweep(self) -> None:
        conversation_ids = list(self.sockets)
        layer = get_channel_layer()
        for start in range(0, len(conversation_ids), 500):
            last_seqs = await db(_last_seqs)(conversation_ids[start : start + 500])
            for conversation_id, last_seq in last_seqs.items():
                for consumer in list(self.sockets.get(conversation_id, ())):
                    if consumer.delivered < last_seq:
                        await layer.send(consumer.channel_name, {"type": "chat.catchup", "upto": last_seq})
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self.last_presence_refresh >= PRESENCE_REFRESH_S:
            self.last_presence_refresh = loop_time
            presence = get_presence()
            for members in list(self.sockets.values()):
                for consumer in list(members):
                    await presence.refresh(consumer.conversation_id, consumer.principal.user_id, consumer.channel_name)
                    await layer.group_add(conversation_group(consumer.conversation_id), consumer.channel_name)


class SendBatcher:
    """Group commit for one worker: message frames that arrive while a batch is being written are
    stored together in the next one, one transaction for all of them (messages_store). Nothing waits on
    a timer, so a lone message is written at once; under load, batches grow and the cost per message
    falls. Senders are told their result (synchronously, in order) before the batch's events are
    published, so a socket always knows its own message before its event can arrive."""

    def __init__(self) -> None:
        self.queue: list[tuple[message_services.SendRequest, Callable[[Any], None], str, Span | None]] = []
        self.task: asyncio.Task[None] | None = None
        # Message id -> channel of the socket that sent it, from the moment it is stored (inside the
        # transaction) until its sender has been told: a socket filling a gap from the database in
        # between recognises its own message and does not deliver it back to itself.
        self.claimed: dict[str, str] = {}

    def submit(
        self,
        request: message_services.SendRequest,
        on_result: Callable[[Any], None],
        origin: str,
        span: Span | None = None,
    ) -> None:
        """Queue a send; `on_result` gets a Sent, a ServiceError or another exception. The batcher ends
        the frame's `span` once the message is stored and announced."""
        self.queue.append((request, on_result, origin, span))
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self.queue:
            batch, self.queue = self.queue[:MAX_SEND_BATCH], self.queue[MAX_SEND_BATCH:]
            claimed: list[str] = []

            def claim(index: int, message: Message, batch: list[Any] = batch, claimed: list[str] = claimed) -> None:
                self.claimed[message.id] = batch[index][2]  # runs on the pool thread; one dict write
                claimed.append(message.id)

            spans = [span for *_, span in batch]
            try:
                with tracing.storing(spans):
                    results, publications = await db(message_services.messages_store)(
                        [request for request, *_ in batch], on_stored=claim
                    )
            except Exception as exc:  # the database is away: every sender in the batch gets the error
                results, publications = [exc] * len(batch), []
            for (_, on_result, _, span), result in zip(batch, results, strict=True):
                if isinstance(result, ServiceError):
                    tracing.frame_refused(span, result.code)
                elif isinstance(result, BaseException):
                    tracing.frame_refused(span, "unavailable")
                try:
                    on_result(result)
                except Exception:
                    logger.exception("send result handler failed")
            for message_id in claimed:
                self.claimed.pop(message_id, None)
            # The fan-out belongs to the frame that opened the batch (the store span links the others).
            with tracing.active(next((span for span in spans if span is not None), None)):
                await publish_all(publications)
            for span in spans:
                tracing.end(span)


_batchers: dict[int, SendBatcher] = {}


def send_batcher() -> SendBatcher:
    loop = id(asyncio.get_running_loop())
    if loop not in _batchers:
        _batchers[loop] = SendBatcher()
    return _batchers[loop]


_sweepers: dict[int, GapSweeper] = {}


def sweeper() -> GapSweeper:
    loop = id(asyncio.get_running_loop())
    if loop not in _sweepers:
        _sweepers[loop] = GapSweeper()
    return _sweepers[loop]


# Per-user buckets are shared by all of a user's sockets in this process.
_user_buckets: dict[str, tuple[TokenBucket, int]] = {}


def _acquire_user_bucket(user_id: str) -> TokenBucket:
    conf = settings.CHAT
    bucket, users = _user_buckets.get(user_id, (None, 0))
    if bucket is None:
        bucket = TokenBucket(rate=conf["WS_USER_RATE"], burst=conf["WS_USER_BURST"])
    _user_buckets[user_id] = (bucket, users + 1)
    return bucket


def _release_user_bucket(user_id: str) -> None:
    bucket, users = _user_buckets.get(user_id, (None, 0))
    if bucket is None:
        return
    if users <= 1:
        del _user_buckets[user_id]
    else:
        _user_buckets[user_id] = (bucket, users - 1)


# ---- the consumer ----------------------------------------------------------------------------------


class ConversationConsumer(AsyncWebsocketConsumer):
    conversation_id: str
    principal: Principal
    delivered: int = 0

    async def connect(self) -> None:
        self.conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        # The scope's path only: the token has already left the query string (realtime.auth).
        self.trace = tracing.connection_started(self.scope["path"], self.conversation_id)
        self.frame_span: Span | None = None
        with tracing.active(self.trace):
            await self._connect()

    async def _connect(self) -> None:
        self.joined = False
        self.typing = False
        self.typing_timer: asyncio.TimerHandle | None = None
        principal = await self._principal()
        if principal is None:
            return await self._refuse(CLOSE_UNAUTHENTICATED)
        self.principal = principal
        tracing.connection_identified(self.trace, principal.user_id, principal.role)
        refusal, admin_joined = await db(_authorize)(principal, self.conversation_id)
        if refusal is not None:
            return await self._refuse(refusal)

        conf = settings.CHAT
        self.bucket = TokenBucket(rate=conf["WS_MESSAGE_RATE"], burst=conf["WS_MESSAGE_BURST"])
        self.typing_bucket = TokenBucket(rate=conf["WS_TYPING_RATE"], burst=conf["WS_TYPING_BURST"])
        self.user_bucket = _acquire_user_bucket(principal.user_id)
        self.acked: set[int] = set()
        # Join before reading the sequence: anything committed from here on arrives as an event. The
        # handshake completes only then, so "open" means "live from here" for the client.
        await self.channel_layer.group_add(conversation_group(self.conversation_id), self.channel_name)
        self.joined = True
        metrics.socket_opened()  # paired with socket_closed() in disconnect, which runs once joined
        sweeper().add(self)
        last_message_id = self._query_param("lastMessageId")
        last_seq, cursor = await db(_cursor)(self.conversation_id, last_message_id)
        await self.accept()
        logger.info("websocket opened", extra=self._log_fields())
        if last_message_id and cursor is None:
            await self._send_frame(_error("invalid_cursor", "lastMessageId is not a message of this conversation."))
        if cursor is None:
            self.delivered = last_seq
        else:
            self.delivered = cursor
            await self._deliver_upto(last_seq)

        first_socket = await get_presence().join(self.conversation_id, principal.user_id, self.channel_name)
        if first_socket or admin_joined:
            await publish(
                self.conversation_id,
                events.frame_event(
                    events.presence_frame(principal.user_id, principal.role, joined=True),
                    skip_user_id=principal.user_id,
                ),
            )

    async def disconnect(self, code: int) -> None:
        trace = getattr(self, "trace", None)
        with tracing.active(trace):
            await self._disconnect(code)
        tracing.connection_ended(trace, code)

    async def _disconnect(self, code: int) -> None:
        if not getattr(self, "joined", False):
            return
        self.joined = False
        metrics.socket_closed()
        logger.info("websocket closed", extra={**self._log_fields(), "close_code": code})
        sweeper().remove(self)
        _release_user_bucket(self.principal.user_id)
        await self.channel_layer.group_discard(conversation_group(self.conversation_id), self.channel_name)
        if self.typing:
            await self._set_typing(False)
        if await get_presence().leave(self.conversation_id, self.principal.user_id, self.channel_name):
            await publish(
                self.conversation_id,
                events.frame_event(
                    events.presence_frame(self.principal.user_id, self.principal.role, joined=False),
                    skip_user_id=self.principal.user_id,
                ),
            )

    # -- inbound frames

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Frames are handled one at a time per socket, so the frame's span can live on the consumer; a
        # message frame hands it to the send batcher, which ends it once stored and announced.
        self.frame_span = span = tracing.frame_started(self.trace)
        with tracing.active(span):
            try:
                await self._handle(text_data, bytes_data)
            except FrameError as exc:
                tracing.frame_refused(span, exc.code)
                await self._send_frame(_error(exc.code, exc.message))
            except ServiceError as exc:
                tracing.frame_refused(span, exc.code)
                await self._send_frame(_error(exc.code, exc.detail))
        tracing.end(self.frame_span)
        self.frame_span = None

    async def _handle(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if text_data is None:
            raise FrameError("invalid_frame", "Frames must be JSON text.")
        if len(text_data) > MAX_FRAME_BYTES or len(text_data.encode()) > MAX_FRAME_BYTES:
            raise FrameError("frame_too_large", f"Frames must be at most {MAX_FRAME_BYTES} bytes.")
        try:
            frame = json.loads(text_data)
        except ValueError:
            raise FrameError("invalid_json", "Frame is not valid JSON.") from None
        if not isinstance(frame, dict):
            raise FrameError("invalid_frame", "Frame must be a JSON object.")
        handler = {
            "message": self._on_message,
            "typing": self._on_typing,
            "read": self._on_read,
            "ping": self._on_ping,
        }.get(frame.get("type"))
        if handler is None:
            raise FrameError("unknown_type", "type must be one of message, typing, read, ping.")
        tracing.frame_typed(self.frame_span, frame["type"])
        await handler(frame)

    def _spend(self, bucket: TokenBucket, kind: metrics.RateLimitKind) -> None:
        if not bucket.take():
            metrics.rate_limited(kind)
            raise FrameError("rate_limited", f"Too many frames; retry in {bucket.retry_after():.1f} s.")

    async def _on_message(self, frame: dict[str, Any]) -> None:
        self._spend(self.bucket, "message")
        self._spend(self.user_bucket, "user")
        fields = _validated(MESSAGE_INPUT, frame)
        # Not awaited: the socket goes on delivering others' messages while its own is being stored.
        send_batcher().submit(
            message_services.SendRequest(
                conversation_id=self.conversation_id,
                sender=self.principal,
                content=fields["content"],
                message_type=fields["messageType"],
                metadata=fields["metadata"],
                client_message_id=fields.get("clientMessageId"),
            ),
            self._on_stored,
            self.channel_name,
            self.frame_span,
        )
        self.frame_span = None  # the batcher's now
        if self.typing:
            await self._set_typing(False)

    def _on_stored(self, result: Any) -> None:
        """The result of this socket's send, on the event loop, before the message's event goes out."""
        if isinstance(result, ServiceError):
            frame: Any = _error(result.code, result.detail)
        elif isinstance(result, BaseException):
            logger.error("storing a message failed: %s", type(result).__name__)
            frame = _error("unavailable", "The message could not be stored; retry.")
        else:
            message = result.message
            if message.seq > self.delivered:
                self.acked.add(message.seq)
            payload = getattr(message, "event_payload", None) or events.message_payload(message)
            frame = events.message_frame(payload, own_send=True)
        # Tasks run in creation order, so acknowledgements leave in the order the sends were stored.
        asyncio.get_running_loop().create_task(self._send_frame(frame))

    async def _on_typing(self, frame: dict[str, Any]) -> None:
        is_typing = frame.get("isTyping")
        if not isinstance(is_typing, bool):
            raise FrameError("invalid", "isTyping must be true or false.")
        self._spend(self.typing_bucket, "typing")
        if is_typing:
            if self.typing_timer is not None:
                self.typing_timer.cancel()
            loop = asyncio.get_running_loop()
            self.typing_timer = loop.call_later(TYPING_TIMEOUT_S, lambda: loop.create_task(self._typing_expired()))
        await self._set_typing(is_typing)

    async def _typing_expired(self) -> None:
        if self.joined and self.typing:
            await self._set_typing(False)

    async def _set_typing(self, typing: bool) -> None:
        if not typing and self.typing_timer is not None:
            self.typing_timer.cancel()
            self.typing_timer = None
        if typing == self.typing:
            return  # a refresh: nothing new to tell the others
        self.typing = typing
        await publish(
            self.conversation_id,
            events.frame_event(
                events.typing_frame(self.principal.user_id, typing), skip_user_id=self.principal.user_id
            ),
        )

    async def _on_read(self, frame: dict[str, Any]) -> None:
        self._spend(self.bucket, "read")
        fields = _validated(READ_INPUT, frame)
        await db(conversation_services.participant_mark_read)(
            conversation=Conversation(pk=self.conversation_id),
            reader=self.principal,
            message_id=fields.get("messageId"),
        )

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        await self._send_frame(events.PONG)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every handler, a hop to the sync thread
        # per frame and per event (6 % of a worker under load). This consumer never touches the
        # database on the event loop: its pool threads keep and check their own connections.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # -- events from the channel layer

    async def chat_messages(self, event: events.MessagesEvent) -> None:
        with tracing.delivering(event, self.trace):
            await self._deliver_event(event)

    async def _deliver_event(self, event: events.MessagesEvent) -> None:
        published_at = event.get(PUBLISHED_AT)  # set by realtime.broadcast.publish
        for item in event["messages"]:
            seq = item["seq"]
            if seq <= self.delivered:
                continue
            if seq > self.delivered + 1:
                await self._deliver_upto(seq - 1)
            if seq == self.delivered + 1 and self._advance(seq):
                await self._send_frame(events.message_frame(item["payload"], own_send=False))
                if published_at is not None:
                    metrics.fanout_delivered(published_at)

    async def chat_frame(self, event: events.FrameEvent) -> None:
        if event.get("skipUserId") and event["skipUserId"] == self.principal.user_id:
            return
        with tracing.delivering(event, self.trace):
            await self._send_frame(event["frame"])

    async def chat_catchup(self, event: dict[str, Any]) -> None:
        await self._deliver_upto(event["upto"])

    # -- helpers

    def _advance(self, seq: int) -> bool:
        """Count `seq` as delivered; False when this socket already acknowledged it as its own send."""
        self.delivered = seq
        if seq in self.acked:
            self.acked.discard(seq)
            return False
        return True

    async def _deliver_upto(self, upto: int) -> None:
        """Send every stored message after `delivered` up to `upto`, in order, from the database."""
        while self.delivered + 1 in self.acked and self.delivered < upto:
            self._advance(self.delivered + 1)  # this socket's own sends fill the gap without a query
        while self.delivered < upto:
            batch = await db(_messages_between)(self.conversation_id, self.delivered, upto)
            if not batch:
                # Numbers below last_seq always exist (they commit in order); nothing means a rollback.
                self.delivered = upto
                break
            claimed = send_batcher().claimed
            for event in batch:
                if event["seq"] <= self.delivered:
                    continue
                if claimed.get(event["payload"]["messageId"]) == self.channel_name:
                    self.delivered = event["seq"]  # this socket's own send, acknowledged separately
                    continue
                if self._advance(event["seq"]):
                    await self._send_frame(events.message_frame(event["payload"], own_send=False))

    async def _send_frame(self, frame: Any) -> None:
        await self.send(text_data=json.dumps(frame, separators=(",", ":")))

    def _query_param(self, name: str) -> str | None:
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[-1] if values else None

    async def _principal(self) -> Principal | None:
        principal = self.scope.get("principal")
        if principal is not None:
            return principal
        if self.scope.get("auth_error"):
            return None
        user = self.scope.get("user")
        if user is None:
            return None
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return None
        if not self._same_origin():
            return None  # a session cookie alone must not let another site open a socket (CSWSH)
        return principal_for_staff(user)

    def _same_origin(self) -> bool:
        origin = dict(self.scope.get("headers", [])).get(b"origin")
        if not origin:
            return False
        host = origin.decode("latin-1").split("://", 1)[-1]
        domain, _ = split_domain_port(host)
        return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)

    def _log_fields(self) -> dict[str, Any]:
        """Who and where, for connection logs: ids only, never the token or anything a client wrote."""
        principal = getattr(self, "principal", None)
        return {"user_id": principal.user_id if principal else None, "conversation_id": self.conversation_id}

    async def _refuse(self, code: int) -> None:
        logger.info("websocket refused", extra={**self._log_fields(), "close_code": code})
        # Accept then close: a close code reaches browsers only after the handshake succeeded.
        await self.accept()
        await self.close(code=code)
