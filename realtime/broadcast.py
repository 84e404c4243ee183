"""Publishing to a conversation's sockets, always after the data is durable.

The channel layer is a doorbell, not a store: events are published only once the transaction that
wrote the data has committed (so a receiver that queries the database finds it), and a failed publish
is logged, never raised. Nothing is lost by a failed publish: every socket checks the conversation's
sequence for gaps and fetches what it missed from the database.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def conversation_group(conversation_id: str) -> str:
    return f"conv.{conversation_id}"


def _publish(conversation_id: str, event: Mapping[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(conversation_group(conversation_id), dict(event))
    except Exception as exc:  # the write already succeeded; receivers recover it from the database
        logger.warning("publish to conversation %s failed: %s", conversation_id, type(exc).__name__)


def publish_on_commit(conversation_id: str, event: Mapping[str, Any]) -> None:
    """Publish `event` to the conversation when the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(_publish, conversation_id, event))


async def publish(conversation_id: str, event: Mapping[str, Any]) -> None:
    """Publish an ephemeral event (typing, presence) from async code; nothing to wait for."""
    layer = get_channel_layer()
    try:
        await layer.group_send(conversation_group(conversation_id), dict(event))
    except Exception as exc:
        logger.warning("publish to conversation %s failed: %s", conversation_id, type(exc).__name__)
