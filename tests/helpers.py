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


def use_celery(settings: Any, redis_url: str) -> None:
    """Hand this process's jobs to Celery through the redis-server at `redis_url`."""
    from chatservice.celery import app

    settings.CELERY_BROKER_URL = redis_url
    settings.CHAT = {**settings.CHAT, "JOBS_RUNNER": "celery"}
    # Its pooled connections and producers still lead to an earlier test's (stopped) broker; Celery has
    # no public way to drop them without deregistering the app.
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = redis_url
