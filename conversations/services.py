"""Writes of conversations and participants. Changes that people in the conversation should notice
(status, assignment) are also recorded as SYSTEM messages, in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from chatservice.authentication import Principal
from chatservice.db import atomic
from chatservice.errors import Conflict, NotFound, PermissionDenied
from conversations.models import Conversation, ConversationStatus, Participant, Role
from messaging.models import Message, MessageType
from messaging.services import message_append
from realtime.broadcast import publish_on_commit
from realtime.events import frame_event, read_receipt_frame

# Statuses a donor may set on their own conversation: they can end it, not reopen or archive it.
USER_SETTABLE_STATUSES = frozenset({ConversationStatus.CLOSED})
UNSET: Any = object()


def conversation_create(
    *, creator: Principal, subject: str | None = None, metadata: dict[str, Any] | None = None
) -> Conversation:
    """The creator joins as a participant with their own role (a donor as USER)."""
    now = timezone.now()
    with atomic():
        conversation = Conversation.objects.create(
            created_by=creator.user_id,
            subject=subject,
            metadata=metadata or {},
            admin_count=1 if creator.is_admin else 0,
            created_at=now,
            updated_at=now,
        )
        Participant.objects.create(conversation=conversation, user_id=creator.user_id, role=creator.role, joined_at=now)
    return conversation


def conversation_update(
    *,
    conversation: Conversation,
    actor: Principal,
    subject: str | None = UNSET,
    metadata: dict[str, Any] = UNSET,
    status: str = UNSET,
) -> Conversation:
    """Participants may change subject and metadata and close; support staff may also reopen and archive."""
    status_changed = status is not UNSET and status != conversation.status
    if status_changed and not actor.is_admin and status not in USER_SETTABLE_STATUSES:
        raise PermissionDenied("Only support staff may reopen or archive a conversation.", code="status_forbidden")
    now = timezone.now()
    changes: dict[str, Any] = {"updated_at": now}
    if subject is not UNSET:
        changes["subject"] = subject
    if metadata is not UNSET:
        changes["metadata"] = metadata
    if status_changed:
        changes["status"] = status
    with atomic():
        Conversation.objects.filter(pk=conversation.pk).update(**changes)
        for field, value in changes.items():
            setattr(conversation, field, value)
        if status_changed:
            message_append(
                conversation=conversation,
                sender_id=actor.user_id,
                sender_role=actor.role,
                content=f"Conversation {status.lower()} by {actor.user_id}",
                message_type=MessageType.SYSTEM,
                metadata={"event": "status_changed", "status": status},
                require_active=False,
            )
    return conversation


def conversation_assign(*, conversation: Conversation, actor: Principal, admin_id: str) -> tuple[Participant, bool]:
    """Add `admin_id` as an ADMIN participant; idempotent. Returns (participant, newly_assigned)."""
    if not actor.is_admin:
        raise PermissionDenied("Only support staff may assign conversations.", code="admin_only")
    with atomic():
        participant, created = Participant.objects.ensure(
            conversation_id=conversation.pk, user_id=admin_id, role=Role.ADMIN
        )
        if participant.role != Role.ADMIN:
            raise Conflict(
                f"{admin_id} already takes part in this conversation as a donor.", code="participant_is_user"
            )
        if created:
            message_append(
                conversation=conversation,
                sender_id=actor.user_id,
                sender_role=actor.role,
                content=(
                    f"{admin_id} joined the conversation"
                    if admin_id == actor.user_id
                    else f"{admin_id} was assigned by {actor.user_id}"
                ),
                message_type=MessageType.SYSTEM,
                metadata={"event": "assigned", "adminId": admin_id},
                require_active=False,
            )
    return participant, created


@dataclass(frozen=True)
class ReadState:
    conversation_id: str
    user_id: str
    last_read_at: datetime | None
    unread_count: int


def participant_join(*, conversation: Conversation, principal: Principal) -> tuple[Participant, bool]:
    """Support staff opening a conversation take part in it from then on (no SYSTEM message: opening
    a thread is not an announcement). Donors only take part in conversations they created."""
    if not principal.is_admin:
        raise PermissionDenied("Only support staff may join conversations.", code="admin_only")
    with atomic():
        return Participant.objects.ensure(conversation_id=conversation.pk, user_id=principal.user_id, role=Role.ADMIN)


def participant_mark_read(*, conversation: Conversation, reader: Principal, message_id: str | None = None) -> ReadState:
    """Advance the reader's watermark to `message_id` (default: the latest message). One write at most,
    however many messages it covers; it never moves back. When it moves, the conversation's sockets get
    a read_receipt. Admins who are not participants have no watermark and get their state unchanged."""
    if message_id:
        seq = (
            Message.objects.filter(conversation_id=conversation.pk, pk=message_id).values_list("seq", flat=True).first()
        )
        if seq is None:
            raise NotFound("No such message in this conversation.", code="message_not_found")
    else:
        seq = Conversation.objects.filter(pk=conversation.pk).values_list("last_seq", flat=True).get()
    now = timezone.now()
    moved = Participant.objects.advance_watermark(
        conversation_id=conversation.pk, user_id=reader.user_id, seq=seq, at=now
    )
    if moved:
        receipt_id = (
            message_id
            or Message.objects.filter(conversation_id=conversation.pk, seq=seq).values_list("id", flat=True).first()
        )
        if receipt_id:
            receipt = read_receipt_frame(message_id=receipt_id, user_id=reader.user_id, read_at=now)
            publish_on_commit([(conversation.pk, frame_event(receipt))])
    participant = Participant.objects.filter(conversation_id=conversation.pk, user_id=reader.user_id).first()
    last_seq = Conversation.objects.filter(pk=conversation.pk).values_list("last_seq", flat=True).get()
    if participant is None:
        return ReadState(conversation.pk, reader.user_id, None, last_seq)
    return ReadState(
        conversation.pk, reader.user_id, participant.last_read_at, max(last_seq - participant.last_read_seq, 0)
    )
