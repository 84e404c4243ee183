"""Two real Daphne workers sharing a real redis-server (started here) and one database: cross-worker
delivery, REST to WebSocket, resume while the other worker keeps sending, a Redis restart and a killed
worker in the middle of a conversation."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatservice.devkeys import generate_rsa_keypair
from tests.servers import UNLIMITED_RATES, Server, create_conversation, daphne, mint, two_workers

pytestmark = pytest.mark.asyncio

# Long enough for a loaded 2-core machine; a passing test never waits this long for one frame.
FRAME_TIMEOUT_S = 15
# The workers look for messages whose event was lost every second here (10 s in production).
SWEEP_S = "1"
SOCKETS_PER_USER = 4


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_rsa_keypair()


@pytest.fixture(scope="module")
def cluster(keys, tmp_path_factory):
    """(redis, worker A, worker B, env)."""
    with two_workers(
        keys[1].decode(),
        tmp_path_factory.mktemp("db") / "chat.sqlite3",
        CHAT_WS_GAP_SWEEP_S=SWEEP_S,
        **UNLIMITED_RATES,
        # Small, so the tests below reach them: sockets per user across workers, presence grace.
        CHAT_WS_MAX_SOCKETS_PER_USER=str(SOCKETS_PER_USER),
        CHAT_WS_PRESENCE_GRACE_S="1",
    ) as cluster:
        yield cluster.redis, cluster.worker_a, cluster.worker_b, cluster.env


def token(keys, sub: str, role: str = "USER") -> str:
    return mint(keys[0], sub, role)


def rest(keys, server: Server, method: str, path: str, sub: str, role: str = "USER", **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token(keys, sub, role)}"}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=30, **kwargs)


class Client:
    """A WebSocket client that keeps every frame it did not ask for, in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pending: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def next(self, accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first frame, received earlier or now, that `accept` wants; the others stay pending."""
        for index, frame in enumerate(self.pending):
            if accept(frame):
                return self.pending.pop(index)
        deadline = time.monotonic() + FRAME_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=max(remaining, 0.01)))
            if accept(frame):
                return frame
            self.pending.append(frame)

    async def message(self, frame_type: str = "message_received") -> dict[str, Any]:
        return await self.next(lambda f: f["type"] == frame_type)

    async def messages(self, count: int) -> list[str]:
        return [(await self.message())["content"] for _ in range(count)]


async def open_client(keys, server: Server, conversation: str, sub: str, role: str = "USER", query: str = "") -> Client:
    url = f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation}?token={token(keys, sub, role)}"
    ws = await connect(url + (f"&{query}" if query else ""), open_timeout=FRAME_TIMEOUT_S)
    client = Client(ws)
    await client.send({"type": "ping"})  # once answered, the socket is live
    await client.message("pong")
    return client


def new_conversation(keys, server: Server, donor: str) -> str:
    return create_conversation(server, keys[0], donor, "multi-worker")


async def test_messages_cross_workers_both_ways(cluster, keys):
    _, worker_a, worker_b, _ = cluster
    conversation = new_conversation(keys, worker_a, "donor-x")
    donor = await open_client(keys, worker_a, conversation, "donor-x")
    agent = await open_client(keys, worker_b, conversation, "agent-x", "ADMIN")
    donor_tab = await open_client(keys, worker_b, conversation, "donor-x")

    await donor.send({"type": "message", "content": "from A"})
    assert (await donor.message("message_sent"))["content"] == "from A"
    assert (await agent.message())["content"] == "from A"
    assert (await donor_tab.message())["content"] == "from A"
    await agent.send({"type": "message", "content": "from B"})
    assert (await donor.message())["content"] == "from B"
    assert (await donor_tab.message())["content"] == "from B"

    await agent.send({"type": "typing", "isTyping": True})
    assert await donor.next(lambda f: f["type"].startswith("typing")) == {"type": "typing_start", "userId": "agent-x"}
    for client in (donor, agent, donor_tab):
        await client.ws.close()


async def test_rest_writes_on_one_worker_reach_sockets_on_the_other(cluster, keys):
    _, worker_a, worker_b, _ = cluster
    conversation = new_conversation(keys, worker_a, "donor-r")
    donor = await open_client(keys, worker_b, conversation, "donor-r")
    posted = rest(
        keys,
        worker_a,
        "POST",
        f"/api/conversations/{conversation}/messages",
        "agent-r",
        "ADMIN",
        json={"content": "via REST"},
    )
    assert posted.status_code == 201
    received = await donor.message()
    assert (received["messageId"], received["content"]) == (posted.json()["messageId"], "via REST")
    rest(keys, worker_a, "PUT", f"/api/conversations/{conversation}", "agent-r", "ADMIN", json={"status": "CLOSED"})
    closed = await donor.message("system")
    assert closed["metadata"] == {
        "event": "status_changed",
        "status": "CLOSED",
        "actorName": "Support",
        "kind": "csat_request",  # the donor is asked to rate it
    }
    await donor.ws.close()


async def test_resume_after_a_killed_socket_while_the_other_worker_keeps_sending(cluster, keys):
    _, worker_a, worker_b, _ = cluster
    conversation = new_conversation(keys, worker_a, "donor-k")
    donor = await open_client(keys, worker_a, conversation, "donor-k")
    agent = await open_client(keys, worker_b, conversation, "agent-k", "ADMIN")
    sent: list[str] = []

    async def agent_sends(count: int) -> None:
        for _ in range(count):
            content = f"m{len(sent)}"
            await agent.send({"type": "message", "content": content})
            await agent.message("message_sent")
            sent.append(content)

    await agent_sends(5)
    received = await donor.messages(5)
    # Kill the donor's socket without a close frame, as a dropped network does.
    donor.ws.transport.abort()
    sending = asyncio.create_task(agent_sends(30))
    await asyncio.sleep(0)  # let the agent start while the donor is away
    history = rest(keys, worker_a, "GET", f"/api/conversations/{conversation}/messages", "donor-k").json()["results"]
    last_id = next(m["messageId"] for m in history if m["content"] == received[-1])
    donor = await open_client(keys, worker_b, conversation, "donor-k", query=f"lastMessageId={last_id}")
    await sending
    received += await donor.messages(len(sent) - len(received))
    assert received == sent  # every message once, in order, across the drop and both workers
    await donor.send({"type": "ping"})
    assert (await donor.next(lambda f: f["type"] in {"pong", "message_received"}))["type"] == "pong"
    await donor.ws.close()
    await agent.ws.close()


async def test_redis_restart_mid_conversation(cluster, keys):
    redis, worker_a, worker_b, _ = cluster
    conversation = new_conversation(keys, worker_a, "donor-redis")
    donor = await open_client(keys, worker_a, conversation, "donor-redis")
    agent = await open_client(keys, worker_b, conversation, "agent-redis", "ADMIN")
    await agent.send({"type": "message", "content": "before"})
    await agent.message("message_sent")
    assert await donor.messages(1) == ["before"]

    redis.stop()
    # Written while Redis is down: stored and acknowledged; the event is lost.
    await agent.send({"type": "message", "content": "during the outage"})
    assert (await agent.message("message_sent"))["content"] == "during the outage"
    redis.start()

    # The lost event is recovered from the database, then live traffic flows both ways again.
    assert await donor.messages(1) == ["during the outage"]
    await agent.send({"type": "message", "content": "after"})
    assert await donor.messages(1) == ["after"]
    await donor.send({"type": "message", "content": "reply"})
    assert await agent.messages(1) == ["reply"]
    for client in (donor, agent):
        await client.ws.close()
    assert (await asyncio.to_thread(httpx.get, f"{worker_a.url}/health")).status_code == 200


async def test_killed_worker_loses_no_acknowledged_message(cluster, keys):
    _, worker_a, _, env = cluster
    with daphne(env) as worker_c:
        conversation = new_conversation(keys, worker_a, "donor-w")
        donor = await open_client(keys, worker_a, conversation, "donor-w")
        agent = await open_client(keys, worker_c, conversation, "agent-w", "ADMIN")
        await agent.send({"type": "message", "content": "hello"})
        last_id = (await agent.message("message_sent"))["messageId"]
        assert await donor.messages(1) == ["hello"]
        worker_c.process.send_signal(signal.SIGKILL)
        worker_c.process.wait(timeout=10)
        acked = []
        for i in range(10):  # the donor goes on writing while the agent's worker is gone
            await donor.send({"type": "message", "content": f"while down {i}"})
            acked.append((await donor.message("message_sent"))["content"])
        agent = await open_client(keys, worker_a, conversation, "agent-w", "ADMIN", query=f"lastMessageId={last_id}")
        assert await agent.messages(10) == acked
        await donor.ws.close()
        await agent.ws.close()


async def test_half_open_socket_is_dropped_and_its_user_leaves(cluster, keys):
    """A client that vanishes without closing (no FIN, no pong) is dropped by Daphne's heartbeat, and
    its presence ends: the others get user_left."""
    _, worker_a, _, env = cluster
    with daphne(env, flags=("--ping-interval", "1", "--ping-timeout", "1")) as worker_h:
        conversation = new_conversation(keys, worker_a, "donor-h")
        donor = await open_client(keys, worker_a, conversation, "donor-h")
        reader, writer = await asyncio.open_connection("127.0.0.1", worker_h.port)
        path = f"/ws/conversations/{conversation}?token={token(keys, 'agent-h', 'ADMIN')}"
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), FRAME_TIMEOUT_S)).startswith(b"HTTP/1.1 101")
        assert await donor.next(lambda f: f["type"] == "user_joined") == {
            "type": "user_joined",
            "userId": "agent-h",
            "role": "ADMIN",
        }
        # From here the "client" never reads or answers a ping again.
        assert await donor.next(lambda f: f["type"] == "user_left") == {
            "type": "user_left",
            "userId": "agent-h",
            "role": "ADMIN",
        }
        writer.close()
        await donor.ws.close()


async def test_presence_of_a_dead_worker_expires(cluster):
    """Sockets of a killed worker never leave; their presence entries expire instead."""
    import redis.asyncio as aioredis

    from chatservice.authentication import Principal
    from realtime.presence import RedisPresence

    redis, *_ = cluster
    presence = RedisPresence(redis.url)
    client = aioredis.Redis.from_url(redis.url)
    person = Principal("u1", "USER")
    assert await presence.join("conv_p", person, "sock-1") is True
    assert await presence.join("conv_p", person, "sock-2") is False
    assert await presence.leave("conv_p", person, "sock-1", 0) is None  # not the last socket
    # sock-2 belonged to a worker that was killed: its refreshes stopped, its entry is past its expiry.
    await client.zadd("chat:presence:conv_p:USER:u1", {"sock-2": time.time() - 1})
    assert await presence.join("conv_p", person, "sock-3") is True  # a fresh first socket: user_joined again
    token = await presence.leave("conv_p", person, "sock-3", 0)
    assert token is not None and await presence.confirm_leave("conv_p", person, token) is True
    await client.aclose()


async def test_tokens_never_reach_the_logs(cluster, keys):
    _, worker_a, _, _ = cluster
    conversation = new_conversation(keys, worker_a, "donor-log")
    secret = token(keys, "donor-log")
    ws = await connect(f"ws://127.0.0.1:{worker_a.port}/ws/conversations/{conversation}?token={secret}")
    await ws.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S)) == {"type": "pong"}
    await ws.close()
    refused = await connect(f"ws://127.0.0.1:{worker_a.port}/ws/conversations/conv_nope?token={secret}")
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(refused.recv(), FRAME_TIMEOUT_S)
    assert closed.value.rcvd.code == 4404
    log = worker_a.log()
    assert f"/ws/conversations/{conversation}" in log  # the access log is there…
    assert secret not in log  # …without the token


async def test_sockets_per_user_are_capped_across_workers(cluster, keys):
    """One donor token used to open any number of sockets: 500 were accepted in 2.5 s."""
    _, worker_a, worker_b, _ = cluster
    conversation = new_conversation(keys, worker_a, "donor-cap")
    tabs = [
        await open_client(keys, worker, conversation, "donor-cap")
        for worker in (worker_a, worker_b) * (SOCKETS_PER_USER // 2)
    ]
    for worker in (worker_a, worker_b):
        url = f"ws://127.0.0.1:{worker.port}/ws/conversations/{conversation}?token={token(keys, 'donor-cap')}"
        refused = await connect(url, open_timeout=FRAME_TIMEOUT_S)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(refused.recv(), FRAME_TIMEOUT_S)
        assert closed.value.rcvd.code == 4429
    await tabs[0].ws.close()  # a place is free again, whichever worker takes it
    await asyncio.wait_for(tabs[0].ws.wait_closed(), FRAME_TIMEOUT_S)
    again = await open_client(keys, worker_b, conversation, "donor-cap")
    for client in (*tabs[1:], again):
        await client.ws.close()


async def test_a_reconnect_to_the_other_worker_within_the_grace_announces_nothing(cluster, keys):
    """300 connect/disconnect cycles used to send the other side 293 user_joined and 293 user_left."""
    _, worker_a, worker_b, _ = cluster
    conversation = new_conversation(keys, worker_a, "donor-g")
    donor = await open_client(keys, worker_a, conversation, "donor-g")
    agent = await open_client(keys, worker_a, conversation, "agent-g", "ADMIN")
    for worker in (worker_b, worker_a, worker_b):  # the network blips; the page reconnects at once
        agent.ws.transport.abort()
        agent = await open_client(keys, worker, conversation, "agent-g", "ADMIN")
    await agent.ws.close()
    left = await donor.next(lambda f: f["type"] == "user_left")
    assert left == {"type": "user_left", "userId": "agent-g", "role": "ADMIN"}
    await donor.send({"type": "ping"})
    await donor.message("pong")
    presence = [f for f in donor.pending if f["type"] in {"user_joined", "user_left"}]
    assert presence == [{"type": "user_joined", "userId": "agent-g", "role": "ADMIN"}]  # once, then only left
    await donor.ws.close()
