"""Who may see which messages: internal notes are for support staff only.

Every read of messages that can reach a donor goes through here: REST history and its cursors, the
socket's resume cursor and deliveries (live, gap fill, replay), inbox previews, and unread counts
(conversations.selectors.unread_count). Notes keep their sequence numbers, so a donor's socket still
advances over them (realtime.delivery sees every number) and only the frame is withheld.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from chatservice.authentication import Principal
from messaging.models import Message, MessageType

STAFF_ONLY_TYPES = frozenset({MessageType.NOTE})


def sees_notes(role: str) -> bool:
    return role == "ADMIN"


def visible_messages(qs: QuerySet[Message], viewer: Principal) -> QuerySet[Message]:
    return qs if sees_notes(viewer.role) else qs.exclude(message_type__in=STAFF_ONLY_TYPES)


def payload_visible(payload: dict[str, Any], role: str) -> bool:
    return sees_notes(role) or payload.get("messageType") not in STAFF_ONLY_TYPES


def unpreviewable_types(role: str) -> frozenset[str]:
    """What a conversation list never shows as the latest message to `role`: service notices, and notes
    unless they are staff (Conversation.preview_message_id / public_preview_message_id keep the result)."""
    return _UNPREVIEWABLE_STAFF if sees_notes(role) else _UNPREVIEWABLE_DONOR


def previewable(message_type: str, role: str) -> bool:
    return message_type not in unpreviewable_types(role)


_UNPREVIEWABLE_STAFF = frozenset({MessageType.SYSTEM})
_UNPREVIEWABLE_DONOR = _UNPREVIEWABLE_STAFF | STAFF_ONLY_TYPES
