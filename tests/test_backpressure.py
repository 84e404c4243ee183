"""Slow readers against real Daphne workers, with a real redis-server between them.

The defect: Daphne's `websocket.send` never pushes back, so frames for a client that does not read piled
up in the worker. 20 such sockets, in a conversation where staff send 100 frames/s of 9 KB, took a worker
from 158 to 462 MiB in 20 s, and it stayed there after they closed. This runs that flood for 20 s against
a worker that holds the 20 sockets, and measures the worker's real RSS.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatservice.devkeys import generate_rsa_keypair
from tests.servers import UNLIMITED_RATES, Server, create_conversation, daphne, mint, two_workers

pytestmark = pytest.mark.asyncio

FLOOD_S = 20
FLOOD_RATE = 100  # frames per second, paced by the sender
FLOOD_CONTENT = "x" * 9_000  # a 9 KB message
SLOW_SOCKETS = 20  # one user's cap (CHAT_WS_MAX_SOCKETS_PER_USER)
RSS_GROWTH_LIMIT_MIB = 64
CLOSE_TOO_SLOW = 4008
# Generous for a loaded 2-core machine; a passing run needs a fraction of it.
DRAIN_TIMEOUT_S = 60
METRICS_TOKEN = "metrics-token-for-the-backpressure-test"


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_rsa_keypair()


@pytest.fixture(scope="module")
def workers(keys, tmp_path_factory):
    """(worker A: the readers, worker B: the sender, their environment)."""
    with two_workers(
        keys[1].decode(),
        tmp_path_factory.mktemp("db") / "chat.sqlite3",
        METRICS_TOKEN=METRICS_TOKEN,
        **UNLIMITED_RATES,
        # The slow clients read only after the flood; they must still find the close frame then.
        CHAT_WS_SLOW_CLOSE_GRACE_S="120",
    ) as cluster:
        yield cluster.worker_a, cluster.worker_b, cluster.env


def rss_mib(server: Server) -> float:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def socket_url(keys, server: Server, conversation: str, sub: str, role: str = "USER") -> str:
    return f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation}?token={mint(keys[0], sub, role)}"


async def next_of(ws: ClientConnection, frame_type: str) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), DRAIN_TIMEOUT_S))
        if frame["type"] == frame_type:
            return frame


async def test_slow_readers_are_closed_with_4008_and_cost_a_bounded_amount_of_memory(workers, keys):
    worker_a, worker_b, _ = workers
    conversation = create_conversation(worker_a, keys[0], "donor-f", "flood")
    reader = await connect(socket_url(keys, worker_a, conversation, "donor-f"), max_size=2**20)
    sender = await connect(socket_url(keys, worker_b, conversation, "agent-f", "ADMIN"), max_size=2**20)
    # Never read while the flood lasts: the library stops reading the socket once one message waits.
    slow = [
        await connect(socket_url(keys, worker_a, conversation, "lurker", "ADMIN"), max_queue=1, max_size=2**20)
        for _ in range(SLOW_SOCKETS)
    ]
    received: list[str] = []

    async def read_all() -> None:
        while True:
            frame = json.loads(await reader.recv())
            if frame["type"] == "message_received":
                received.append(frame["content"])

    async def read_acks() -> None:  # the sender reads, so it is not a slow reader itself
        while True:
            await sender.recv()

    reading = asyncio.create_task(read_all())
    acks = asyncio.create_task(read_acks())
    await sender.send(json.dumps({"type": "message", "content": "warm-up"}))
    while not received:
        await asyncio.sleep(0.05)  # until the reader's first frame; there is no event to await across tasks
    before = rss_mib(worker_a)

    peak = before
    total = FLOOD_S * FLOOD_RATE
    start = time.monotonic()
    for i in range(total):
        await sender.send(json.dumps({"type": "message", "content": f"{i} {FLOOD_CONTENT}"}))
        if i % FLOOD_RATE == 0:
            peak = max(peak, rss_mib(worker_a))
        # An open-loop schedule: 100 frames a second, whatever the server does.
        await asyncio.sleep(max(0.0, start + (i + 1) / FLOOD_RATE - time.monotonic()))
    peak = max(peak, rss_mib(worker_a))

    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while len(received) < total + 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # the reader task appends; poll its progress with a bound
    reading.cancel()
    acks.cancel()
    # The normal participant received every message, once, in order.
    assert [content.split(" ", 1)[0] for content in received] == ["warm-up", *map(str, range(total))]
    growth = peak - before
    print(f"worker A RSS {before:.1f} MiB before, peak {peak:.1f} MiB (+{growth:.1f}), after {rss_mib(worker_a):.1f}")
    assert growth <= RSS_GROWTH_LIMIT_MIB, f"worker RSS grew by {growth:.0f} MiB (from {before:.0f})"

    # Every slow socket was closed as too slow; each finds the close frame once it reads again.
    codes = []
    for ws in slow:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), DRAIN_TIMEOUT_S)
        codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
    assert codes == [CLOSE_TOO_SLOW] * SLOW_SOCKETS
    metrics = httpx.get(
        f"{worker_a.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    ).text
    assert f"chat_ws_slow_closed_total {SLOW_SOCKETS}.0" in metrics
    for ws in (reader, sender):
        await ws.close()


CLOSE_RACES = 40  # clients that close while frames are on their way to them


async def test_clients_that_close_while_frames_flow_log_nothing_above_debug(workers, keys):
    """A normal close race used to log ERROR tracebacks ("Attempt to send on a closed protocol"): once the
    client's close frame arrives, autobahn takes no more frames, but Daphne tells the application only when
    the TCP connection is gone, a moment later. Frames sent in between raised. Here 40 clients close while
    a flood of small messages keeps frames on their way to them."""
    worker_a, worker_b, _ = workers
    conversation = create_conversation(worker_a, keys[0], "donor-r", "race")
    log_start = len(worker_a.log())
    sender = await connect(socket_url(keys, worker_b, conversation, "agent-r", "ADMIN"))
    flooding = True

    async def flood() -> None:
        sent = 0
        while flooding:
            await sender.send(json.dumps({"type": "message", "content": f"flood {sent}"}))
            sent += 1
            if sent % 8 == 0:  # at most 8 unacknowledged: fast, but the sender is no slow reader
                for _ in range(8):
                    await next_of(sender, "message_sent")

    task = asyncio.create_task(flood())
    for _ in range(CLOSE_RACES):
        ws = await connect(socket_url(keys, worker_a, conversation, "donor-r"))
        await next_of(ws, "message_received")  # frames are flowing to it
        await ws.close()
    flooding = False
    await asyncio.wait_for(task, DRAIN_TIMEOUT_S)
    log = worker_a.log()[log_start:]
    noisy = [line for line in log.splitlines() if '"level": "ERROR"' in line or "Traceback" in line]
    assert not noisy, noisy[:3]
    await sender.close()


async def test_a_server_side_close_while_frames_flow_logs_nothing_above_debug(workers, keys):
    """The server closes this socket (Daphne's --websocket_timeout) and then waits up to a second for the
    client's close reply, which never comes: the client reads nothing. Frames that keep coming for it in
    that second used to raise "Attempt to send on a closed protocol", an ERROR traceback each time."""
    worker_a, worker_b, env = workers
    with daphne(env, flags=("--websocket_timeout", "2")) as worker_t:
        conversation = create_conversation(worker_a, keys[0], "donor-t", "timeout")
        sender = await connect(socket_url(keys, worker_b, conversation, "agent-t", "ADMIN"))
        silent = await connect(socket_url(keys, worker_t, conversation, "donor-t"), max_queue=1)
        watcher = await connect(socket_url(keys, worker_a, conversation, "donor-t"))
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        count = 0
        # Until worker T has let the socket go: the timeout's close, then a second of waiting for a reply.
        while '"message": "websocket closed"' not in worker_t.log() and time.monotonic() < deadline:
            await sender.send(json.dumps({"type": "message", "content": f"{count}"}))
            await next_of(sender, "message_sent")
            await next_of(watcher, "message_received")
            count += 1
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(silent.recv(), DRAIN_TIMEOUT_S)
        log = worker_t.log()
        noisy = [line for line in log.splitlines() if '"level": "ERROR"' in line or "Traceback" in line]
        assert not noisy, noisy[:3]
        for ws in (sender, watcher):
            await ws.close()
