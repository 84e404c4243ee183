"""Baseline for bench/ws_bench.py: the cheapest possible chat relay, built on the `websockets` library.

It serves ``ws://127.0.0.1:PORT/<room>``. For every JSON text frame ``{"type": "message", "content",
"clientMessageId"}`` it answers the sender with ``message_sent`` and sends ``message_received`` (the
same fields) to every other socket of the room; ``{"type": "ping"}`` gets ``{"type": "pong"}``. There is
no authentication, no persistence, no ordering or gap recovery and no second process: what is left is
the cost of WebSocket framing plus JSON in one asyncio event loop, which is the ceiling any chat server
written in Python on this machine can hope to approach. The frames mirror the service's (same keys,
similar sizes), so the benchmark drives both with the same client code.

Run: ``.venv/bin/python bench/relay.py --port P`` (binds 127.0.0.1 only; stops on SIGTERM/SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import signal
import sys
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

HOST = "127.0.0.1"  # loopback only, like the service under test
MAX_FRAME_BYTES = 64 * 1024  # the service's own frame limit (realtime.consumers.MAX_FRAME_BYTES)

rooms: dict[str, set[ServerConnection]] = {}
message_ids = itertools.count(1)


def payload(room: str, frame: dict[str, Any], message_id: str | None = None) -> dict[str, Any]:
    """The fields of the service's message frames, so every server the benchmark drives sends frames of
    similar size (bench/channels_floor.py uses it too)."""
    return {
        "messageId": message_id or f"msg_{next(message_ids):026d}",
        "conversationId": room,
        "senderId": "anonymous",
        "senderRole": "USER",
        "content": frame.get("content", ""),
        "messageType": "TEXT",
        "metadata": {},
        "clientMessageId": frame.get("clientMessageId"),
        "createdAt": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
    }


async def handle(connection: ServerConnection) -> None:
    """One socket: join the room named by the path, relay its frames until it closes."""
    room = connection.request.path.lstrip("/") if connection.request else ""
    members = rooms.setdefault(room, set())
    members.add(connection)
    try:
        async for raw in connection:  # ends when the socket closes
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(frame, dict):
                continue
            kind = frame.get("type")
            if kind == "ping":
                await connection.send('{"type":"pong"}')
            elif kind == "message":
                body = payload(room, frame)
                others = [member for member in members if member is not connection]
                broadcast(others, json.dumps({"type": "message_received", **body}, separators=(",", ":")))
                await connection.send(json.dumps({"type": "message_sent", **body}, separators=(",", ":")))
    except ConnectionClosed:
        pass
    finally:
        members.discard(connection)
        if not members:
            rooms.pop(room, None)


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    # compression=None: the service (Daphne/autobahn) does not negotiate permessage-deflate either.
    async with serve(handle, HOST, port, compression=None, max_size=MAX_FRAME_BYTES, ping_interval=None):
        print(f"relay listening on ws://{HOST}:{port}", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
    sys.exit(0)
