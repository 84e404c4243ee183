"""Publishing to a conversation's sockets, always after the data is durable.

The channel layer is a doorbell, not a store: events are published only once the transaction that
wrote the data has committed (so a receiver that queries the database finds it), and a failed publish
is logged, never raised. Nothing is lost by a failed publish: every socket checks the conversation's
sequence for gaps and fetches what it missed from the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chatservice import metrics
from realtime import tracing

logger = logging.getLogger(__name__)


def conversation_group(conversation_id: str) -> str:
    return f"conv.{conversation_id}"


# After a Redis restart the first command on a pooled connection fails on the dead socket; one retry
# on a fresh connection keeps live delivery live instead of leaving it to the gap sweep.
PUBLISH_ATTEMPTS = 2
# Publishes in flight per worker: thousands of sockets connecting at once each announce themselves,
# and every publish holds a Redis connection until answered.
MAX_CONCURRENT_PUBLISHES = 64
_publish_slots: dict[int, asyncio.Semaphore] = {}
# Every published event carries the publisher's wall-clock time under this key: receivers measure the
# fan-out latency from it (chat_fanout_latency_seconds).
PUBLISHED_AT = "publishedAt"


def _slots() -> asyncio.Semaphore:
    loop = id(asyncio.get_running_loop())
    if loop not in _publish_slots:
        _publish_slots[loop] = asyncio.Semaphore(MAX_CONCURRENT_PUBLISHES)
    return _publish_slots[loop]


async def publish(conversation_id: str, event: Mapping[str, Any]) -> None:
    """Publish now, from async code. Never raises: see the module docstring."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {**event, PUBLISHED_AT: time.time()}
    group = conversation_group(conversation_id)
    with tracing.publishing(group, message):
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                async with _slots():
                    await layer.group_send(group, message)
                return
            except Exception as exc:  # the write already succeeded; receivers recover it from the database
                if attempt == PUBLISH_ATTEMPTS:
                    metrics.layer_dropped("publish_failed")
                    logger.warning("publish to conversation %s failed: %s", conversation_id, type(exc).__name__)


async def publish_all(events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Publish (conversation id, event) pairs concurrently, from async code. Never raises."""
    await asyncio.gather(*(publish(conversation_id, event) for conversation_id, event in events))


def _publish_from_sync(events: list[tuple[str, Mapping[str, Any]]]) -> None:
    # One hop to the event loop for the whole transaction, not one per event.
    async_to_sync(publish_all)(events)


def publish_on_commit(events: list[tuple[str, Mapping[str, Any]]]) -> None:
    """Publish (conversation id, event) pairs when the current transaction commits (at once outside
    one)."""
    transaction.on_commit(partial(_publish_from_sync, events))
