"""Framework floor for bench/ws_bench.py: the cheapest correct Channels chat relay, served by Daphne.

Scenario (c) of the WebSocket benchmark runs this application exactly like the service: the same
``daphne`` binary, two workers, and the same channel layer (``channels_redis.pubsub.RedisPubSubChannelLayer``
on the bench's Redis, ``REDIS_URL``). What it leaves out is everything that is ours: no database, no
authentication, no rate limits, no presence, no ordering or gap recovery, no metrics, logs or tracing.
So its cost per message is what Daphne + Channels + channels-redis cost on this machine, and the
service's cost divided by it is the overhead of our own work.

It serves ``ws://127.0.0.1:PORT/ws/conversations/<conversation_id>`` (any query string, e.g. the
service's ``?token=``, is ignored) and ``GET /health`` (200, for the bench's readiness probe). A socket
joins the conversation's group (``conv.<id>``, the service's name) on connect. For a JSON text frame
``{"type": "message", "content", "clientMessageId"}`` it answers the sender with ``message_sent`` and
``group_send``s one event carrying the sender's channel name; every other socket of the group turns
that event into ``message_received`` (the sender skips its own). Both frames have the fields of the
service's message frames. ``{"type": "ping"}`` gets ``{"type": "pong"}``.

Run: ``cd bench && REDIS_URL=redis://127.0.0.1:6379/0 ../.venv/bin/daphne -b 127.0.0.1 -p PORT
channels_floor:application``. ``DJANGO_SETTINGS_MODULE`` is deliberately ignored: the service's
settings would load the whole app, so the floor configures Django itself (no database, no apps).
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import django
from django.conf import settings

REDIS_URL = os.environ.get("REDIS_URL", "")
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise SystemExit("channels_floor: set REDIS_URL to the Redis the benchmark's channel layer uses")

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="channels-floor",  # noqa: S106 - nothing is signed; Django only insists on one
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
        # The service's layer and host options (chatservice/settings.py), nothing else.
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [{"address": REDIS_URL, "max_connections": 1000}]},
            }
        },
        # Plain "time LEVEL logger message" lines on stderr: what the benchmark's log scan looks for.
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
            "root": {"handlers": ["stderr"], "level": "WARNING"},
        },
    )
django.setup()

from channels.consumer import get_handler_name  # noqa: E402 - needs the settings above
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402
from relay import payload as relay_payload  # noqa: E402 - bench/, Daphne's cwd for this app

# Unique across the two workers (the pid), like the service's ids; the client matches by clientMessageId.
message_ids = itertools.count(1)
ID_PREFIX = f"msg_{os.getpid():08d}"


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


def payload(conversation_id: str, frame: dict[str, Any]) -> dict[str, Any]:
    return relay_payload(conversation_id, frame, f"{ID_PREFIX}{next(message_ids):018d}")


class FloorConsumer(AsyncWebsocketConsumer):
    """One socket of one conversation: join its group, relay its messages through the channel layer."""

    group = ""
    conversation_id = ""

    async def connect(self) -> None:
        self.conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        self.group = f"conv.{self.conversation_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = json.loads(text_data or "")
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        if kind == "ping":
            await self.send('{"type":"pong"}')
        elif kind == "message":
            body = payload(self.conversation_id, frame)
            # Acknowledge first, then publish: like the service, the sender knows its message before
            # anyone else can.
            await self.send(dumps({"type": "message_sent", **body}))
            await self.channel_layer.group_send(
                self.group, {"type": "chat.message", "payload": body, "sender": self.channel_name}
            )

    async def chat_message(self, event: dict[str, Any]) -> None:
        if event["sender"] == self.channel_name:
            return  # the sender already has its message_sent
        await self.send(dumps({"type": "message_received", **event["payload"]}))

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' default closes stale database connections before every handler: a hop to a thread
        # per frame and per event. There is no database here, and the service skips that hop too
        # (realtime.consumers), so the floor does not pay a cost the service does not.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


async def health(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP: 200 on /health (the bench's readiness probe), 404 elsewhere."""
    found = scope["path"] == "/health"
    await send(
        {
            "type": "http.response.start",
            "status": 200 if found else 404,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok" if found else b"not found"})


application = ProtocolTypeRouter(
    {
        "http": health,
        "websocket": URLRouter([path("ws/conversations/<str:conversation_id>", FloorConsumer.as_asgi())]),
    }
)
