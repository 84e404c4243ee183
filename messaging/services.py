"""Writes of messages. Every message, whatever the transport, is stored by `_append`.

Messages are stored in batches (one transaction, one UPDATE per conversation, one bulk INSERT): the
WebSocket workers collect the frames that arrive while the previous batch is being written and store
them together (group commit), so the per-message cost falls as load rises. A single REST send is a
batch of one; every rule below applies per message either way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from attachments import references as attachment_references
from attachments.services import mark_shared
from audit.services import notes_created
from chatservice import metrics
from chatservice.authentication import Principal
from chatservice.db import atomic, retry_transient
from chatservice.errors import Conflict, ConversationClosed, PermissionDenied, ServiceError
from chatservice.validation import json_is_safe
from conversations.models import Conversation, ConversationStatus, Participant, Role
from messaging.models import IDEMPOTENCY_KEY_FLOOR, RESPONSE_TYPES, Message, MessageType, new_message_id
from messaging.redaction import redact_message
from messaging.replies import quoted_messages, reply_refusals
from messaging.visibility import STAFF_ONLY_TYPES, previewable
from notifications import services as notifications
from realtime import inbox_events
from realtime.broadcast import conversation_group, publish_on_commit
from realtime.events import (
    MessagePayload,
    StoredMessage,
    message_item,
    message_payload,
    messages_event,
)
from search import services as search_index
from webhooks import services as webhook_events
from webhooks.models import EventType

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendRequest:
    """A message to store, as a transport validated it."""

    conversation_id: str
    sender: Principal
    content: str
    message_type: str = MessageType.TEXT
    metadata: dict[str, Any] = field(default_factory=dict)
    client_message_id: str | None = None
    reply_to: str | None = None  # a message id, checked by messaging.replies


@dataclass(frozen=True)
class Sent:
    message: Message
    created: bool  # False: a retry, answered with the message stored the first time
    # The message as every frame carries it, built once: the sender's acknowledgement and the event that
    # announces the message to the other sockets share it.
    payload: MessagePayload


Publication = tuple[str, Any]  # (channel-layer group, event) to publish once committed


def _reservations(by_conversation: dict[str, list[int]]) -> list[tuple[list[str], int]]:
    """The UPDATEs that reserve sequence numbers, as (conversation ids, how many each).

    SQLite writers hold the whole database from BEGIN IMMEDIATE, so one UPDATE per batch size (usually
    one or two) is safe. Databases with row locks get one UPDATE per conversation in id order: two
    workers' batches then always lock shared conversations in the same order and cannot deadlock.
    """
    if connection.vendor == "sqlite":
        by_size: dict[int, list[str]] = defaultdict(list)
        for conversation_id, indexes in by_conversation.items():
            by_size[len(indexes)].append(conversation_id)
        return [(ids, size) for size, ids in by_size.items()]
    return [([c], len(by_conversation[c])) for c in sorted(by_conversation)]


@dataclass(frozen=True)
class Appended:
    results: list[Message | ServiceError]  # per item
    payloads: dict[str, MessagePayload]  # by message id, for every message stored
    publications: list[Publication]  # the events announcing them, for the caller to publish after commit
    closed: frozenset[str] = frozenset()  # conversations found CLOSED (their items were refused)
    queued: frozenset[str] = frozenset()  # ACTIVE, nobody assigned, a donor wrote: for auto-assignment
    clock_changed: frozenset[str] = frozenset()  # waitingSince, firstResponseAt or snooze moved
    reopened: frozenset[str] = frozenset()  # CLOSED, reopened by a donor's message in this batch
    # The conversations written to, as they stand in the transaction after this append (clocks included):
    # the inbox events are built from them without reading the rows again.
    conversations: dict[str, Conversation] = dataclasses.field(default_factory=dict)


def _clock_changes(conversation: Conversation, messages: list[Message]) -> dict[str, Any]:
    """The conversation fields a batch of its messages moves, in sequence order: a donor message starts
    the waiting clock (and wakes a snoozed conversation); a staff reply stops it and may be the first
    response; a note records its number (donors' unread counts skip notes)."""
    waiting, first, snoozed = conversation.waiting_since, conversation.first_response_at, conversation.snoozed_until
    changes: dict[str, Any] = {}
    for message in messages:
        if message.message_type == MessageType.NOTE:
            changes["last_note_seq"] = message.seq
        elif message.sender_role == Role.USER and message.message_type != MessageType.SYSTEM:
            if waiting is None:
                waiting = changes["waiting_since"] = message.created_at
            if snoozed is not None:
                snoozed = changes["snoozed_until"] = None
        elif message.sender_role == Role.ADMIN and message.message_type in RESPONSE_TYPES:
            if waiting is not None:
                waiting = changes["waiting_since"] = None
            if first is None:
                first = changes["first_response_at"] = message.created_at
    return changes


def _preview_changes(messages: list[Message]) -> dict[str, str]:
    """The list-preview keys a batch of a conversation's messages moves (Conversation.preview_message_id)."""
    changes: dict[str, str] = {}
    for message in messages:
        if previewable(message.message_type, Role.ADMIN):
            changes["preview_message_id"] = message.id
        if previewable(message.message_type, Role.USER):
            changes["public_preview_message_id"] = message.id
    return changes


def _append(items: Sequence[SendRequest], *, require_active: bool = True) -> Appended:
    """Store `items` as the next messages of their conversations, in order. Must run in a transaction.

    Per conversation, one conditional UPDATE checks the status, reserves the next sequence numbers and
    takes the row's write lock until commit: concurrent writers to one conversation are numbered
    strictly in commit order (readers always see a gap-free prefix), and nothing lands in a conversation
    closed a moment before. The time written is never earlier than the conversation's last message, so
    createdAt follows the sequence even when clocks of two workers disagree.
    """
    results: list[Message | ServiceError] = [ConversationClosed()] * len(items)
    by_conversation: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        by_conversation[item.conversation_id].append(index)
    now = timezone.now()
    for conversation_ids, size in _reservations(by_conversation):
        rows = Conversation.objects.filter(pk__in=conversation_ids)
        if require_active:
            rows = rows.filter(status=ConversationStatus.ACTIVE)
        rows.update(
            last_seq=F("last_seq") + size,
            last_message_at=Greatest(Coalesce(F("last_message_at"), Value(now)), Value(now)),
            updated_at=now,
        )
    state = Conversation.objects.filter(pk__in=list(by_conversation))
    messages: list[Message] = []
    watermarks: dict[tuple[str, str, str], tuple[int, Any]] = {}
    states: dict[str, Conversation] = {}
    closed: set[str] = set()
    names = _sender_names(items)
    for row in state:
        conversation_id, status, last_seq, at = row.pk, row.status, row.last_seq, row.last_message_at
        if require_active and status != ConversationStatus.ACTIVE:
            if status == ConversationStatus.CLOSED:
                closed.add(conversation_id)
            continue  # not advanced (if it was reopened just now, the unique seq index refuses the batch)
        states[conversation_id] = row
        indexes = by_conversation[conversation_id]
        for seq, index in enumerate(indexes, start=last_seq - len(indexes) + 1):
            item = items[index]
            message = Message(
                id=new_message_id(),
                conversation_id=conversation_id,
                seq=seq,
                sender_id=item.sender.user_id,
                sender_role=item.sender.role,
                sender_name=names[item.sender.user_id, item.sender.role],
                content=item.content,
                message_type=item.message_type,
                metadata=item.metadata or {},
                client_message_id=item.client_message_id,
                reply_to_id=item.reply_to,
                created_at=at,
                updated_at=at,
            )
            messages.append(message)
            results[index] = message
            # Whoever writes has read everything before: their own message never counts as unread.
            watermarks[conversation_id, item.sender.user_id, item.sender.role] = (seq, at)
    if not messages:
        return Appended(results, {}, [], frozenset(closed))
    Message.objects.bulk_create(messages)
    notes_created(messages)  # internal notes are audit records too, in this transaction
    # In this transaction: a search never finds a message that did not commit, nor misses one that did.
    search_index.messages_indexed(messages=messages)
    Participant.objects.advance_watermarks(watermarks)
    webhook_events.events_record_many(
        (EventType.MESSAGE_CREATED, m.conversation_id, {"messageId": m.id}, m.message_type in STAFF_ONLY_TYPES)
        for m in messages
    )
    by_conv: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        by_conv[message.conversation_id].append(message)
    notifications.replies_recorded(
        (c, states[c].created_by)
        for c, written in by_conv.items()
        if any(m.sender_role == Role.ADMIN and m.message_type in RESPONSE_TYPES for m in written)
    )
    clock_changed: set[str] = set()
    queued: set[str] = set()
    clocks: dict[str, dict[str, Any]] = {}
    first_responses: list[float] = []
    for conversation_id, written in by_conv.items():
        row = states[conversation_id]
        changes = _clock_changes(row, written)
        if "first_response_at" in changes:  # set once: only while null, under the row's write lock
            first_responses.append((changes["first_response_at"] - row.created_at).total_seconds())
        if changes.keys() - {"last_note_seq"}:
            clock_changed.add(conversation_id)
        changes.update(_preview_changes(written))
        if changes:
            clocks[conversation_id] = changes
        if (
            row.admin_count == 0
            and row.status == ConversationStatus.ACTIVE
            and any(m.sender_role == Role.USER and m.message_type != MessageType.SYSTEM for m in written)
        ):
            queued.add(conversation_id)
    if clocks:
        Conversation.objects.set_fields(clocks)
        for conversation_id, changes in clocks.items():
            for name, value in changes.items():
                setattr(states[conversation_id], name, value)
    # Counted when durable: a rolled-back (or retried) transaction discards this with its other work.
    transaction.on_commit(partial(metrics.messages_persisted, len(messages)))
    if first_responses:
        transaction.on_commit(partial(metrics.first_responses, first_responses))
    stored: dict[str, list[StoredMessage]] = defaultdict(list)
    payloads: dict[str, MessagePayload] = {}
    quoted = quoted_messages(messages)
    for message in messages:  # already in sequence order within each conversation
        item = message_item(message, quoted.get(message.reply_to_id or ""))
        payloads[message.id] = item["payload"]
        stored[message.conversation_id].append(item)
    publications: list[Publication] = [(conversation_group(c), messages_event(items)) for c, items in stored.items()]
    return Appended(
        results,
        payloads,
        publications,
        frozenset(closed),
        frozenset(queued),
        frozenset(clock_changed),
        conversations=states,
    )


def _sender_names(items: Sequence[SendRequest]) -> dict[tuple[str, str], str]:
    from desk.names import names_of  # desk imports this module

    return names_of((item.sender.user_id, item.sender.role) for item in items)


def message_append(
    *,
    conversation: Conversation,
    sender_id: str,
    sender_role: str,
    content: str,
    message_type: str = MessageType.TEXT,
    metadata: dict[str, Any] | None = None,
    require_active: bool = True,
) -> Message:
    """Store one message (services recording SYSTEM messages use this). Must run in a transaction."""
    item = SendRequest(conversation.pk, Principal(sender_id, sender_role), content, message_type, metadata or {})
    appended = _append([item], require_active=require_active)
    (result,) = appended.results
    if isinstance(result, ServiceError):
        raise result
    publish_on_commit(appended.publications)
    conversation.last_seq, conversation.last_message_at = result.seq, result.created_at
    return result


def _same_send(existing: Message, request: SendRequest) -> Sent | Conflict:
    """A retry must repeat the original; reusing a key for a different message is a client bug. Once the
    original was edited or deleted, there is nothing left to compare with: the retry gets it as it is now."""
    changed = existing.edited_at is not None or existing.deleted_at is not None
    if not changed and (existing.content, existing.message_type, existing.metadata) != (
        request.content,
        request.message_type,
        request.metadata or {},
    ):
        return Conflict("clientMessageId was already used for a different message.", code="idempotency_key_reused")
    quoted = quoted_messages([existing]).get(existing.reply_to_id or "")
    return Sent(existing, created=False, payload=message_payload(existing, quoted))


def _previous_sends(requests: Sequence[SendRequest]) -> dict[tuple[str, str, str, str], Message]:
    keyed = [r for r in requests if r.client_message_id]
    if not keyed:
        return {}
    # One probe per key on the (partial) idempotency index, which starts with the key; conversation and
    # sender are matched below. (Constraining all three columns with IN lists made SQLite probe their
    # cross product.)
    rows = Message.objects.filter(
        # The index's own condition, repeated: SQLite uses a partial index only for queries that state it.
        client_message_id__in={r.client_message_id for r in keyed},
        client_message_id__gt=IDEMPOTENCY_KEY_FLOOR,
    )
    return {(m.conversation_id, m.sender_id, m.sender_role, m.client_message_id): m for m in rows}


@dataclass(frozen=True)
class Routing:
    """What follows a committed batch once its events are out: conversations reopened by a donor are
    routed again, waiting ones go to an available agent (desk.assignment). Never fails the sends."""

    reopened: frozenset[str] = frozenset()
    queued: frozenset[str] = frozenset()

    def run(self) -> None:
        if not (self.reopened or self.queued):
            return
        from desk import assignment

        try:
            for conversation_id in sorted(self.reopened):
                assignment.after_reopen(conversation_id)
            waiting = sorted(self.queued - self.reopened)
            if waiting and assignment.anyone_online():  # one read per batch when nobody is on duty
                for conversation_id in waiting:
                    assignment.route_if_unassigned(conversation_id)
        except Exception as exc:
            logger.warning("routing after storing messages failed: %s", exc, exc_info=True)


NO_ROUTING = Routing()


def messages_store(
    requests: Sequence[SendRequest],
) -> tuple[list[Sent | ServiceError], list[Publication], Routing]:
    """Store messages in one transaction; each result is what `message_send` would return or raise for
    that request, and one request's refusal never affects the others. Returns the events to publish
    once the caller has acted on the results (the WebSocket batcher acknowledges its senders first),
    then the routing to run once they are published. Most callers want `messages_send`.

    Idempotent per (conversation, sender, clientMessageId): a retry returns the stored original, even
    if the conversation was closed since. Support staff who are not yet participants join the
    conversation by writing in it.
    """
    results: list[Sent | ServiceError | None] = [None] * len(requests)
    requests = _redacted(requests)
    requests, refused = _with_attachments(requests)
    refused = {**reply_refusals(requests), **refused}
    previous = _previous_sends(requests)
    pending: list[int] = []
    for index, request in enumerate(requests):
        if request.message_type == MessageType.SYSTEM and not request.sender.is_admin:
            results[index] = PermissionDenied(
                "Only support staff may send SYSTEM messages.", code="system_message_forbidden"
            )
            continue
        if request.message_type == MessageType.NOTE and not request.sender.is_admin:
            results[index] = PermissionDenied("Only support staff may write internal notes.", code="note_forbidden")
            continue
        if index in refused:
            results[index] = refused[index]
            continue
        if request.metadata and not json_is_safe(request.metadata):
            # Transports validate this already (chatservice.validation); a caller that skipped it must not
            # store a number that no event or BSON document can carry.
            results[index] = ServiceError(
                "metadata numbers must be finite and between -2^53 and 2^53.", code="metadata_number_out_of_range"
            )
            continue
        sender = request.sender
        original = previous.get((request.conversation_id, sender.user_id, sender.role, request.client_message_id or ""))
        if original is not None:
            results[index] = _same_send(original, request)
            continue
        pending.append(index)
    if not pending:
        return results, [], NO_ROUTING  # type: ignore[return-value]

    @retry_transient
    def store_pending() -> Appended:
        with atomic():
            _join_staff([requests[i] for i in pending])
            appended = _append([requests[i] for i in pending])
            reopened = _reopen_for_donors([requests[i] for i in pending], appended)
            if reopened:
                appended = _merge_retry(appended, [requests[i] for i in pending], reopened)
            mark_shared(
                {
                    ref
                    for m in appended.results
                    if isinstance(m, Message)
                    and (ref := attachment_references.reference_of(m.message_type, m.metadata))
                }
            )
            inbox = inbox_events.message_publications(
                [r for r in appended.results if isinstance(r, Message)],
                appended.clock_changed - reopened,
                conversations=appended.conversations,
            )
            return dataclasses.replace(
                appended, publications=appended.publications + inbox, reopened=frozenset(reopened)
            )

    try:
        appended = store_pending()
    except IntegrityError:
        if len(pending) == 1:
            raise
        # A key sent twice in this batch, or by another worker at the same moment: one by one, the
        # unique index decides and the retries find the original.
        events = []
        reopened: set[str] = set()
        queued: set[str] = set()
        for index in pending:
            (results[index],), more, routing = messages_store([requests[index]])
            events += more
            reopened |= routing.reopened
            queued |= routing.queued
        return results, events, Routing(frozenset(reopened), frozenset(queued))  # type: ignore[return-value]
    for index, result in zip(pending, appended.results, strict=True):
        results[index] = (
            result if isinstance(result, ServiceError) else Sent(result, True, appended.payloads[result.id])
        )
    return results, appended.publications, Routing(appended.reopened, appended.queued)  # type: ignore[return-value]


def _redacted(requests: Sequence[SendRequest]) -> Sequence[SendRequest]:
    """Card numbers and IBANs masked before anything else sees the message (messaging.redaction): a retry
    is compared with the stored original as masked, and nothing downstream ever holds the original."""
    kinds = settings.CHAT["REDACT"]
    if not kinds:
        return requests
    out = []
    for request in requests:
        content, metadata = redact_message(request.content, request.metadata or {}, kinds)
        if content is request.content and metadata == (request.metadata or {}):
            out.append(request)
        else:
            out.append(dataclasses.replace(request, content=content, metadata=metadata))
    return out


def _with_attachments(requests: Sequence[SendRequest]) -> tuple[Sequence[SendRequest], dict[int, ServiceError]]:
    """FILE messages referencing an upload get the upload's description as metadata (attachments.references);
    those referencing one the sender cannot use are refused, by index."""
    indexes = [i for i, r in enumerate(requests) if attachment_references.reference_of(r.message_type, r.metadata)]
    if not indexes:
        return requests, {}
    resolved = attachment_references.resolve(
        [(requests[i].conversation_id, requests[i].sender, requests[i].metadata) for i in indexes]
    )
    described = list(requests)
    refused: dict[int, ServiceError] = {}
    for index, result in zip(indexes, resolved, strict=True):
        if isinstance(result, ServiceError):
            refused[index] = result
        elif result is not None:
            described[index] = dataclasses.replace(requests[index], metadata=result)
    return described, refused


def _reopen_for_donors(requests: Sequence[SendRequest], appended: Appended) -> set[str]:
    """A donor writing in a CLOSED conversation reopens it (an ARCHIVED one stays read-only): the change is
    recorded like any status change, before their message. Runs in the storing transaction."""
    from conversations.services import reopen_by_donor

    wanted = {
        r.conversation_id
        for r, result in zip(requests, appended.results, strict=True)
        if isinstance(result, ConversationClosed) and r.conversation_id in appended.closed and not r.sender.is_admin
    }
    reopened = set()
    for conversation_id in sorted(wanted):
        donor = next(r.sender for r in requests if r.conversation_id == conversation_id and not r.sender.is_admin)
        if reopen_by_donor(conversation_id=conversation_id, donor=donor):
            reopened.add(conversation_id)
    return reopened


def _merge_retry(first: Appended, requests: Sequence[SendRequest], reopened: set[str]) -> Appended:
    """Store again the items refused because their conversation was closed, now that it is open."""
    indexes = [
        i
        for i, (r, result) in enumerate(zip(requests, first.results, strict=True))
        if r.conversation_id in reopened and isinstance(result, ConversationClosed)
    ]
    second = _append([requests[i] for i in indexes])
    results = list(first.results)
    for index, result in zip(indexes, second.results, strict=True):
        results[index] = result
    return Appended(
        results,
        {**first.payloads, **second.payloads},
        first.publications + second.publications,
        first.closed - reopened,
        first.queued | second.queued,
        first.clock_changed | second.clock_changed,
        conversations={**first.conversations, **second.conversations},
    )


def messages_send(requests: Sequence[SendRequest]) -> list[Sent | ServiceError]:
    """Store messages (see `messages_store`) and announce them to the conversations' sockets."""
    results, events, routing = messages_store(requests)
    publish_on_commit(events)
    routing.run()
    return results


def _join_staff(requests: Sequence[SendRequest]) -> None:
    staff = {(r.conversation_id, r.sender.user_id) for r in requests if r.sender.is_admin}
    if not staff:
        return
    # Any row for the id counts as present: one participation per id and conversation, and a donor's
    # row is never turned into staff's (the access rule compares roles, so it grants staff nothing).
    present = set(
        Participant.objects.filter(
            conversation_id__in={c for c, _ in staff}, user_id__in={u for _, u in staff}
        ).values_list("conversation_id", "user_id")
    )
    for conversation_id, user_id in staff - present:
        Participant.objects.ensure(conversation_id=conversation_id, user_id=user_id, role=Role.ADMIN)


def message_send(
    *,
    conversation: Conversation,
    sender: Principal,
    content: str,
    message_type: str = MessageType.TEXT,
    metadata: dict[str, Any] | None = None,
    client_message_id: str | None = None,
    reply_to: str | None = None,
) -> tuple[Message, bool]:
    """Send one message as `sender`; returns (message, created). See `messages_send`."""
    request = SendRequest(
        conversation.pk, sender, content, message_type, metadata or {}, client_message_id, reply_to=reply_to
    )
    result = messages_send([request])[0]
    if isinstance(result, ServiceError):
        raise result
    return result.message, result.created
