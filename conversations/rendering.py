"""The REST representation of conversations, built directly as dicts.

`ConversationSerializer` (conversations.serializers) describes the shape and is what the schema
publishes; rendering a page of 50 through it cost 0.8 ms per conversation in DRF's field machinery, most
of a list request. This builds the same dicts (tests/test_rendering.py holds the two equal) at a fraction
of that: the workspace's list is read on every inbox reconnect and every filter change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from chatservice.authentication import Principal
from conversations.models import Conversation, Participant, Role
from conversations.selectors import latest_previewable_of, unread_for
from messaging.models import Message
from realtime.events import iso

STAFF_FALLBACK_NAME = "Support"
# Fields only support staff see (triage is internal: a donor is not told they were labelled "angry").
STAFF_ONLY_FIELDS = ("labels", "priority", "snoozedUntil")


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def display_name(participant: Participant) -> str:
    """Staff: the name they took part under (never the username); donors: their id."""
    if participant.role == Role.ADMIN:
        return participant.display_name or STAFF_FALLBACK_NAME
    return participant.display_name or participant.user_id


def participant_json(participant: Participant) -> dict[str, Any]:
    return {
        "userId": participant.user_id,
        "role": participant.role,
        "displayName": display_name(participant),
        "assigned": participant.assigned,
        "joinedAt": iso(participant.joined_at),
        "lastReadAt": _when(participant.last_read_at),
    }


def last_message_json(message: Message | None) -> dict[str, Any] | None:
    if message is None:
        return None
    from realtime.inbox_events import preview_of

    return {
        "messageId": message.id,
        "senderId": message.sender_id,
        "senderRole": message.sender_role,
        "senderName": message.sender_name,
        "messageType": message.message_type,
        "preview": preview_of(message),
        "createdAt": iso(message.created_at),
    }


def purged_json(conversation: Conversation) -> dict[str, Any] | None:
    if conversation.purged_at is None:
        return None
    return {"purgedAt": iso(conversation.purged_at), **(conversation.purge_counts or {})}


def conversation_json(
    conversation: Conversation,
    *,
    viewer: Principal | None,
    role: str,
    last: Message | None,
    participants: Iterable[Participant] | None = None,
) -> dict[str, Any]:
    """One conversation's representation; `participants` when the caller holds them already (default:
    the prefetched `conversation.participants`)."""
    people = list(conversation.participants.all()) if participants is None else participants
    data: dict[str, Any] = {
        "conversationId": conversation.pk,
        "participants": [participant_json(p) for p in people],
        "createdBy": conversation.created_by,
        "status": conversation.status,
        "subject": conversation.subject,
        "metadata": conversation.metadata,
        "createdAt": iso(conversation.created_at),
        "updatedAt": iso(conversation.updated_at),
        "lastMessageAt": _when(conversation.last_message_at),
        "unreadCount": None if viewer is None else unread_for(conversation, viewer, people),
        "labels": list(conversation.labels or []),
        "priority": conversation.priority,
        "snoozedUntil": _when(conversation.snoozed_until),
        "firstResponseAt": _when(conversation.first_response_at),
        "waitingSince": _when(conversation.waiting_since),
        "lastMessage": last_message_json(last),
        "csat": conversation.csat,
        "purged": purged_json(conversation),
    }
    if role != Role.ADMIN:
        for name in STAFF_ONLY_FIELDS:
            del data[name]
    return data


def render_conversations(
    conversations: list[Conversation],
    *,
    viewer: Principal | None,
    role: str | None = None,
    participants: dict[str, list[Participant]] | None = None,
) -> list[dict[str, Any]]:
    """The REST representation of conversations for `viewer`, or for any viewer of `role` without their
    unreadCount (inbox events fill it in per socket). Participants from `participants` (by conversation
    id) or else prefetched. One query for the whole page's previews."""
    role = role or (viewer.role if viewer else Role.ADMIN)
    latest = latest_previewable_of(conversations, role=role)
    return [
        conversation_json(
            c,
            viewer=viewer,
            role=role,
            last=latest.get(c.pk),
            participants=None if participants is None else participants[c.pk],
        )
        for c in conversations
    ]
