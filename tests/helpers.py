"""Helpers for tests (importable, unlike conftest)."""

from __future__ import annotations

from typing import Any

from chatservice.authentication import Principal
from conversations.models import Conversation, Role
from messaging import services as message_services
from messaging.models import Message

USER = Principal("u1", Role.USER)
ADMIN = Principal("agent1", Role.ADMIN)


def send(conversation: Conversation, content: str = "hello", sender: Principal = USER, **kwargs: Any) -> Message:
    message, _ = message_services.message_send(conversation=conversation, sender=sender, content=content, **kwargs)
    return message


def snapshot(conversation: Conversation) -> tuple[int, int, Any]:
    """What must not change when a request is refused: message count, sequence, activity time."""
    fresh = Conversation.objects.get(pk=conversation.pk)
    return Message.objects.count(), fresh.last_seq, fresh.updated_at
