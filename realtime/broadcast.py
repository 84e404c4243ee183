"""Publishing to a conversation's sockets: every real-time event leaves through this module.

Two ways out, side by side: `publish_on_commit` for events about data (messages, receipts, status),
published once the transaction that wrote the data has committed, so a receiver that queries the
database finds it; and `publish_now` for events about people that nothing stores (typing, presence),
and for data events whose transaction has already committed (the send batcher's).

The channel layer is a doorbell, not a store: a failed publish is logged, never raised. Nothing is lost
by it: every socket checks the conversation's sequence for gaps and fetches what it missed from the
database.
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
from chatservice.authentication import Principal
from realtime import events, tracing

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


# What the layer raises for an event it cannot serialise (msgpack: a number it cannot encode, a type it
# does not know), as opposed to Redis being away: only these are worth retrying message by message.
SERIALIZATION_ERRORS = (TypeError, ValueError, OverflowError)


async def publish_now(group: str, event: Mapping[str, Any]) -> None:
    """Publish to a group (conversation_group(id), or an inbox group) at once, from async code. Never
    raises: see the module docstring."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {**event, PUBLISHED_AT: time.time()}
    with tracing.publishing(group, message):
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                async with _slots():
                    await layer.group_send(group, message)
                return
            except SERIALIZATION_ERRORS as exc:
                if _is_batch(event):
                    # One message the layer cannot carry must not hold back the others stored with it.
                    logger.warning(
                        "event for group %s not serialisable (%s); publishing its messages one by one",
                        group,
                        exc,
                        exc_info=True,
                    )
                    for item in event["messages"]:
                        await publish_now(group, events.messages_event([item]))
                    return
                metrics.layer_dropped("publish_failed")
                logger.warning("publish to group %s failed: %s", group, exc, exc_info=True)
                return
            except Exception as exc:  # the write already succeeded; receivers recover it from the database
                if attempt == PUBLISH_ATTEMPTS:
                    metrics.layer_dropped("publish_failed")
                    logger.warning("publish to group %s failed: %s", group, exc, exc_info=True)


def _is_batch(event: Mapping[str, Any]) -> bool:
    return event.get("type") == "chat.messages" and len(event.get("messages", ())) > 1


async def publish_all_now(pairs: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Publish (group, event) pairs concurrently, from async code. Never raises."""
    await asyncio.gather(*(publish_now(group, event) for group, event in pairs))


async def typing_changed(conversation_id: str, typist: Principal, typing: bool) -> None:
    """Tell the conversation's other users that `typist` started or stopped typing (never stored)."""
    frame = events.typing_frame(typist.user_id, typing)
    await publish_now(
        conversation_group(conversation_id),
        events.frame_event(frame, skip_user_id=typist.user_id, skip_role=typist.role),
    )


async def presence_changed(conversation_id: str, person: Principal, joined: bool) -> None:
    """Tell the conversation's other users that `person` came (first socket) or left (last socket)."""
    frame = events.presence_frame(person.user_id, person.role, joined=joined)
    await publish_now(
        conversation_group(conversation_id),
        events.frame_event(frame, skip_user_id=person.user_id, skip_role=person.role),
    )


def _publish_from_sync(pairs: list[tuple[str, Mapping[str, Any]]]) -> None:
    # One hop to the event loop for the whole transaction, not one per event.
    async_to_sync(publish_all_now)(pairs)


def publish_on_commit(pairs: list[tuple[str, Mapping[str, Any]]]) -> None:
    """Publish (group, event) pairs when the current transaction commits (at once outside
    one), from sync code."""
    transaction.on_commit(partial(_publish_from_sync, pairs))
