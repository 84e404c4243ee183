"""Service-level endpoints: health."""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)

# A dependency slower than this is as good as down for a chat service; keeps probes from piling up.
HEALTH_CHECK_TIMEOUT_S = 2.0


def _database_round_trip() -> None:
    from conversations.models import Conversation

    try:
        Conversation.objects.exists()  # an ORM read, so the probe works on every backend
    finally:
        connections["default"].close()


async def _check_database() -> None:
    await sync_to_async(_database_round_trip, thread_sensitive=False)()


# One probe channel per worker and event loop: the pub/sub layer subscribes to every new channel and
# unsubscribes only when a receive is cancelled, so a new channel per probe would leak subscriptions.
_probe_channels: dict[int, str] = {}


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    loop = id(asyncio.get_running_loop())
    if loop not in _probe_channels:
        _probe_channels[loop] = await layer.new_channel("health.")
    channel = _probe_channels[loop]
    await layer.send(channel, {"type": "health.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "health.ping":
        raise RuntimeError("channel layer returned a different message")


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)


CHECKS = {"database": _check_database, "channelLayer": _check_channel_layer}


async def health(request: HttpRequest) -> JsonResponse:
    """200 when every dependency answers a round trip in time; 503 naming those that do not."""

    async def run(name: str, check) -> tuple[str, str]:
        try:
            await asyncio.wait_for(check(), HEALTH_CHECK_TIMEOUT_S)
        except Exception as exc:
            logger.warning("health check %s failed: %s", name, type(exc).__name__)
            return name, "timeout" if isinstance(exc, TimeoutError) else "error"
        return name, "ok"

    results = dict(await asyncio.gather(*(run(name, check) for name, check in CHECKS.items())))
    failing = [name for name, state in results.items() if state != "ok"]
    body = {"status": "ok" if not failing else "error", "checks": results}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)
