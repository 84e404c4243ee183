"""Writes of messages. Every message, whatever the transport, is stored by `message_append`."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError
from django.db.models import F
from django.utils import timezone

from chatservice.authentication import Principal
from chatservice.db import atomic
from chatservice.errors import Conflict, ConversationClosed, PermissionDenied
from conversations.models import Conversation, ConversationStatus, Participant, Role
from messaging.models import Message, MessageType
from realtime.broadcast import publish_on_commit
from realtime.events import message_event


def message_append(
    *,
    conversation: Conversation,
    sender_id: str,
    sender_role: str,
    content: str,
    message_type: str = MessageType.TEXT,
    metadata: dict[str, Any] | None = None,
    client_message_id: str | None = None,
    require_active: bool = True,
) -> Message:
    """Store one message as the next of its conversation. Must run inside a transaction.

    The conditional UPDATE both checks the status and takes the conversation row's write lock, which is
    held until commit: concurrent senders to one conversation are numbered strictly in commit order, and
    a message can never land in a conversation that was closed a moment before.
    """
    rows = Conversation.objects.filter(pk=conversation.pk)
    if require_active:
        rows = rows.filter(status=ConversationStatus.ACTIVE)
    if not rows.update(last_seq=F("last_seq") + 1):
        raise ConversationClosed()
    # The clock is read only now, under the lock, so createdAt never goes backwards within a conversation.
    now = timezone.now()
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=now, updated_at=now)
    seq = Conversation.objects.filter(pk=conversation.pk).values_list("last_seq", flat=True).get()
    message = Message.objects.create(
        conversation_id=conversation.pk,
        seq=seq,
        sender_id=sender_id,
        sender_role=sender_role,
        content=content,
        message_type=message_type,
        metadata=metadata or {},
        client_message_id=client_message_id,
        created_at=now,
        updated_at=now,
    )
    # Whoever writes has read everything before: the sender's own message never counts as unread.
    Participant.objects.advance_watermark(conversation_id=conversation.pk, user_id=sender_id, seq=seq, at=now)
    conversation.last_seq, conversation.last_message_at, conversation.updated_at = seq, now, now
    publish_on_commit(conversation.pk, message_event(message))
    return message


def _existing_send(*, conversation: Conversation, sender_id: str, client_message_id: str | None) -> Message | None:
    if not client_message_id:
        return None
    return Message.objects.filter(
        conversation_id=conversation.pk, sender_id=sender_id, client_message_id=client_message_id
    ).first()


def message_send(
    *,
    conversation: Conversation,
    sender: Principal,
    content: str,
    message_type: str = MessageType.TEXT,
    metadata: dict[str, Any] | None = None,
    client_message_id: str | None = None,
) -> tuple[Message, bool]:
    """Send a message as `sender`; returns (message, created).

    Idempotent per (conversation, sender, client_message_id): a retry returns the stored original with
    created=False, even if the conversation was closed since. An admin who is not yet a participant
    joins the conversation by writing in it.
    """
    if message_type == MessageType.SYSTEM and not sender.is_admin:
        raise PermissionDenied("Only support staff may send SYSTEM messages.", code="system_message_forbidden")
    request = (content, message_type, metadata or {})
    existing = _existing_send(conversation=conversation, sender_id=sender.user_id, client_message_id=client_message_id)
    if existing is not None:
        return _same_send(existing, request), False
    try:
        with atomic():
            if sender.is_admin:
                Participant.objects.ensure(conversation_id=conversation.pk, user_id=sender.user_id, role=Role.ADMIN)
            message = message_append(
                conversation=conversation,
                sender_id=sender.user_id,
                sender_role=sender.role,
                content=content,
                message_type=message_type,
                metadata=metadata,
                client_message_id=client_message_id,
            )
    except IntegrityError:
        # Two concurrent sends with one idempotency key: the unique index let one through.
        existing = _existing_send(
            conversation=conversation, sender_id=sender.user_id, client_message_id=client_message_id
        )
        if existing is None:
            raise
        return _same_send(existing, request), False
    return message, True


def _same_send(existing: Message, request: tuple[str, str, dict[str, Any]]) -> Message:
    """A retry must repeat the original; reusing a key for a different message is a client bug."""
    if (existing.content, existing.message_type, existing.metadata) != request:
        raise Conflict("clientMessageId was already used for a different message.", code="idempotency_key_reused")
    return existing
