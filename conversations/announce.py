"""Announcing a changed conversation to both audiences with one call from a service: inbox sockets once
committed (realtime.inbox_events), and webhook endpoints by delivery jobs recorded now, in the change's
transaction (webhooks.services), so neither can be announced without the other."""

from __future__ import annotations

from realtime import inbox_events
from webhooks.models import EventType
from webhooks.services import events_record


def conversation_updated(conversation_id: str) -> None:
    inbox_events.conversation_updated_on_commit(conversation_id)
    events_record(EventType.CONVERSATION_UPDATED, conversation_id)


def conversation_created(conversation_id: str) -> None:
    inbox_events.conversation_created_on_commit(conversation_id)
    events_record(EventType.CONVERSATION_CREATED, conversation_id)
