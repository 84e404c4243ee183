"""Dependency probes shared by GET /health and `manage.py check_dependencies`, so the two cannot drift.

Each probe is a real round trip (an ORM read; a message sent to and received from a channel), not a
connection check: a dependency that accepts connections but does not answer is down for the chat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections

logger = logging.getLogger(__name__)

# A dependency slower than this is as good as down for a chat service; keeps probes from piling up.
HEALTH_CHECK_TIMEOUT_S = 2.0

OK, ERROR, TIMEOUT = "ok", "error", "timeout"


def _database_round_trip() -> None:
    from conversations.models import Conversation

    connection = connections["default"]
    try:
        Conversation.objects.exists()  # an ORM read, so the probe works on every backend
        # A MongoDB that answers but cannot run transactions (no replica set) refuses every write.
        if connection.vendor == "mongodb" and not connection.features._supports_transactions:
            raise RuntimeError("MongoDB is not a replica set: no transactions")
    finally:
        connections["default"].close()


async def check_database() -> None:
    await sync_to_async(_database_round_trip, thread_sensitive=False)()


# One probe channel per worker and event loop: the pub/sub layer subscribes to every new channel and
# unsubscribes only when a receive is cancelled, so a new channel per probe would leak subscriptions.
_probe_channels: dict[int, str] = {}


async def check_channel_layer() -> None:
    layer = get_channel_layer()
    loop = id(asyncio.get_running_loop())
    if loop not in _probe_channels:
        _probe_channels[loop] = await layer.new_channel("health.")
    channel = _probe_channels[loop]
    await layer.send(channel, {"type": "health.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "health.ping":
        raise RuntimeError("channel layer returned a different message")


# Names as /health reports them (camelCase, like the rest of the API).
CHECKS: dict[str, Callable[[], Awaitable[None]]] = {"database": check_database, "channelLayer": check_channel_layer}


async def _run(name: str, check: Callable[[], Awaitable[None]], timeout: float) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check(), timeout)
    except Exception as exc:
        logger.warning("health check %s failed: %s", name, type(exc).__name__)
        return name, TIMEOUT if isinstance(exc, TimeoutError) else ERROR
    return name, OK


async def run_checks(timeout: float = HEALTH_CHECK_TIMEOUT_S) -> dict[str, str]:
    """Every probe at once, each bounded by `timeout`: {name: "ok" | "error" | "timeout"}."""
    return dict(await asyncio.gather(*(_run(name, check, timeout) for name, check in CHECKS.items())))


def failing(results: dict[str, str]) -> list[str]:
    return [name for name, state in results.items() if state != OK]
