"""Dependency probes shared by GET /health and `manage.py check_dependencies`, so the two cannot drift.

Each probe is a real round trip (an ORM read; a message sent to and received from a channel), not a
connection check: a dependency that accepts connections but does not answer is down for the chat.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections

logger = logging.getLogger(__name__)

# A dependency slower than this is as good as down for a chat service; keeps probes from piling up.
HEALTH_CHECK_TIMEOUT_S = 2.0

OK, ERROR, TIMEOUT = "ok", "error", "timeout"
# The job queue answers but its oldest due job waits longer than CHAT_JOB_LATE_AFTER_S: reported, and not a
# reason to take this worker out of service (its chat works; the job runner is what needs looking at).
LATE = "late"


class JobsLate(Exception):
    pass


def _database_round_trip() -> None:
    from conversations.models import Conversation

    connection = connections["default"]
    try:
        Conversation.objects.exists()  # an ORM read, so the probe works on every backend
        # A MongoDB that answers but cannot run transactions (no replica set) refuses every write.
        if connection.vendor == "mongodb" and not connection.features._supports_transactions:
            raise RuntimeError("MongoDB is not a replica set: no transactions")
    finally:
        connection.close()


async def check_database() -> None:
    await sync_to_async(_database_round_trip, thread_sensitive=False)()


# A probe channel's reader whose receive failed (Redis away) tries again after this; probes time out
# and report the outage meanwhile.
PROBE_READ_RETRY_S = 0.5


class _ProbeChannel:
    """One probe channel per worker, event loop and layer, read by one long-lived task.

    A timed-out probe must not cancel the layer's receive(): the pub/sub layer unsubscribes a channel
    whose receive is cancelled, and the next probe's ping, published before its receive() subscribes
    again, is lost. After one Redis outage every later probe timed out, and /health stayed 503 with Redis
    back (tests/test_observability_ops.py). So probes only wait for their own ping, by id; the reader
    keeps the subscription, which redis-py renews on reconnecting. One channel for the worker's life:
    the pub/sub layer subscribes to every new channel, so a channel per probe would leak subscriptions.
    """

    def __init__(self, layer: Any, channel: str) -> None:
        self.layer = layer
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.reader = self.loop.create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except Exception:
                await asyncio.sleep(PROBE_READ_RETRY_S)
                continue
            waiter = self.waiting.pop(message.get("id"), None)  # a late ping of a timed-out probe: dropped
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def ping(self) -> None:
        ping_id = uuid.uuid4().hex
        self.waiting[ping_id] = arrived = self.loop.create_future()
        try:
            await self.layer.send(self.channel, {"type": "health.ping", "id": ping_id})
            await arrived
        finally:
            self.waiting.pop(ping_id, None)


_probe_channels: dict[int, _ProbeChannel] = {}


async def check_channel_layer() -> None:
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    probe = _probe_channels.get(id(loop))
    # A loop's id can be reused once it is closed, and tests swap layers: check both, and the reader.
    if probe is None or probe.loop is not loop or probe.layer is not layer or probe.reader.done():
        probe = _probe_channels[id(loop)] = _ProbeChannel(layer, await layer.new_channel("health."))
    await probe.ping()


def _job_queue_lateness() -> float:
    from jobs.selectors import queue_lateness_s

    try:
        return queue_lateness_s()
    finally:
        connections["default"].close()


async def check_jobs() -> None:
    from django.conf import settings

    if await sync_to_async(_job_queue_lateness, thread_sensitive=False)() > settings.CHAT["JOB_LATE_AFTER_S"]:
        raise JobsLate


# Names as /health reports them (camelCase, like the rest of the API).
CHECKS: dict[str, Callable[[], Awaitable[None]]] = {
    "database": check_database,
    "channelLayer": check_channel_layer,
    "jobs": check_jobs,
}


async def _run(name: str, check: Callable[[], Awaitable[None]], timeout: float) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check(), timeout)
    except JobsLate:
        logger.warning("health check %s: the job queue is late", name)
        return name, LATE
    except Exception as exc:
        logger.warning("health check %s failed: %s", name, type(exc).__name__)
        return name, TIMEOUT if isinstance(exc, TimeoutError) else ERROR
    return name, OK


async def run_checks(timeout: float = HEALTH_CHECK_TIMEOUT_S) -> dict[str, str]:
    """Every probe at once, each bounded by `timeout`: {name: "ok" | "error" | "timeout"}."""
    return dict(await asyncio.gather(*(_run(name, check, timeout) for name, check in CHECKS.items())))


def failing(results: dict[str, str]) -> list[str]:
    return [name for name, state in results.items() if state not in (OK, LATE)]


def late(results: dict[str, str]) -> list[str]:
    return [name for name, state in results.items() if state == LATE]
