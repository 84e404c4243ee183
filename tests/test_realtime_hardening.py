"""The WebSocket path against a hostile or broken client, through the full ASGI application (Channels'
WebsocketCommunicator, in-memory channel layer): exact Origin checks for staff sessions, the per-user
socket cap, debounced presence, the per-socket outbound bound, and handlers that fail without taking the
connection's cleanup with them. Each test names the defect it reproduces."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.test import Client
from prometheus_client import REGISTRY

from conversations import services as conversation_services
from conversations.models import Conversation
from realtime import consumers
from tests.helpers import ADMIN, USER, send
from tests.test_realtime import RECEIVE_TIMEOUT_S, Socket, close_code, connect, count_messages, open_socket

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def conversation(transactional_db) -> Conversation:
    return conversation_services.conversation_create(creator=USER, subject="Refund")


def open_sockets_gauge() -> float:
    return REGISTRY.get_sample_value("chat_ws_connections") or 0.0


# ---- the staff session's Origin: scheme, host and port --------------------------------------------


@pytest.fixture
def staff_cookie(transactional_db) -> bytes:
    user = User.objects.create_user("maria", password="pw-123456", is_staff=True)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def staff_headers(cookie: bytes, origin: str, host: str = "localhost:3006", **extra: str) -> list:
    headers = [(b"cookie", cookie), (b"origin", origin.encode()), (b"host", host.encode())]
    return headers + [(name.encode(), value.encode()) for name, value in extra.items()]


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:8666",  # another port of an allowed host: any local service could read and write
        "https://localhost:9443",
        "https://localhost:3006",  # another scheme, same port
        "http://localhost",  # port 80 is not 3006
        "http://127.0.0.1:3006.evil.example",
        "null",
    ],
)
async def test_staff_session_from_another_scheme_or_port_is_refused(conversation, staff_cookie, origin):
    assert await close_code(conversation.pk, None, headers=staff_headers(staff_cookie, origin)) == 4401


@pytest.mark.parametrize("origin", ["http://localhost:3006", "http://127.0.0.1:3006", "HTTP://LOCALHOST:3006"])
async def test_staff_session_from_the_services_own_origin_connects(conversation, staff_cookie, origin):
    socket = await connect(conversation.pk, None, headers=staff_headers(staff_cookie, origin))
    await socket.assert_alive_and_quiet()
    await socket.close()


async def test_behind_a_tls_proxy_the_forwarded_scheme_counts(conversation, staff_cookie):
    proxied = staff_headers(staff_cookie, "https://localhost:3006", **{"x-forwarded-proto": "https"})
    socket = await connect(conversation.pk, None, headers=proxied)
    await socket.close()
    assert (
        await close_code(conversation.pk, None, headers=staff_headers(staff_cookie, "https://localhost:3006")) == 4401
    )


async def test_configured_trusted_origins_are_the_only_ones(conversation, staff_cookie, settings):
    settings.CHAT = {**settings.CHAT, "STAFF_TRUSTED_ORIGINS": ("https://desk.example.org",)}
    desk = staff_headers(staff_cookie, "https://desk.example.org", host="chat-worker:8000")
    socket = await connect(conversation.pk, None, headers=desk)
    await socket.close()
    for origin in ("http://desk.example.org", "https://desk.example.org:8443", "http://localhost:3006"):
        assert await close_code(conversation.pk, None, headers=staff_headers(staff_cookie, origin)) == 4401


async def test_token_sockets_accept_any_origin(conversation, make_token):
    portal = [(b"origin", b"https://donate.example.org"), (b"host", b"chat.example.org")]
    socket = await connect(conversation.pk, make_token("u1"), headers=portal)
    await socket.assert_alive_and_quiet()
    await socket.close()


# ---- sockets per user --------------------------------------------------------------------------------


async def test_sockets_per_user_are_capped_and_the_excess_gets_4429(conversation, make_token, settings):
    """One donor token used to open any number of sockets (500 in 2.5 s)."""
    settings.CHAT = {**settings.CHAT, "WS_MAX_SOCKETS_PER_USER": 3}
    token = make_token("u1")
    sockets = [await connect(conversation.pk, token) for _ in range(3)]
    gauge = open_sockets_gauge()
    assert await close_code(conversation.pk, token) == 4429
    assert open_sockets_gauge() == gauge  # the refused one was never counted
    # Identity is id and role: staff with the same id have their own count.
    staff = await connect(conversation.pk, make_token("u1", "ADMIN"))
    await sockets[0].close()
    again = await connect(conversation.pk, token)  # a place is free again
    await again.assert_alive_and_quiet()
    for socket in [*sockets[1:], again, staff]:
        await socket.close()


# ---- presence with a grace period --------------------------------------------------------------------


async def presence_frames(socket: Socket) -> list[dict[str, Any]]:
    """Every frame up to the answer to a ping, presence ones only."""
    await socket.send({"type": "ping"})
    frames = []
    while (frame := await socket.receive())["type"] != "pong":
        frames.append(frame)
    return [frame for frame in frames if frame["type"] in {"user_joined", "user_left"}]


async def test_reconnecting_within_the_grace_period_announces_nothing(conversation, make_token, settings):
    """300 connect/disconnect cycles used to send the other participant 293 user_joined and 293 user_left."""
    settings.CHAT = {**settings.CHAT, "WS_PRESENCE_GRACE_S": 60.0}  # nothing below may depend on timing
    donor = await connect(conversation.pk, make_token("u1"))
    agent_token = make_token("agent1", "ADMIN")
    agent = await connect(conversation.pk, agent_token)
    for _ in range(30):
        await agent.close()
        agent = await connect(conversation.pk, agent_token)
    assert await presence_frames(donor) == [{"type": "user_joined", "userId": "agent1", "role": "ADMIN"}]
    await agent.close()
    await donor.close()


async def test_the_last_socket_closing_is_announced_once_after_the_grace(conversation, make_token, settings):
    settings.CHAT = {**settings.CHAT, "WS_PRESENCE_GRACE_S": 0.2}
    donor = await connect(conversation.pk, make_token("u1"))
    agent_token = make_token("agent1", "ADMIN")
    tabs = [await connect(conversation.pk, agent_token) for _ in range(2)]
    assert (await donor.expect("user_joined"))["userId"] == "agent1"
    await tabs[0].close()
    await tabs[1].close()
    assert await donor.receive() == {"type": "user_left", "userId": "agent1", "role": "ADMIN"}
    assert await presence_frames(donor) == []  # once
    await donor.close()


# ---- the outbound bound ----------------------------------------------------------------------------


async def test_a_socket_over_its_outbound_bound_is_closed_with_4008_and_resumes_losing_nothing(
    conversation, make_token, settings
):
    """Frames for a client that does not take them used to pile up in the worker without limit. Here a
    replay of 60 messages is pushed in one go at a socket allowed 10 unsent frames."""
    first = await sync_to_async(send)(conversation, "before the gap", sender=ADMIN)
    for i in range(60):
        await sync_to_async(send)(conversation, f"missed {i}", sender=ADMIN)
    settings.CHAT = {**settings.CHAT, "WS_MAX_BUFFERED_FRAMES": 10}
    communicator, _ = await open_socket(conversation.pk, make_token("u1"), query=f"lastMessageId={first.pk}")
    received, closed = [], None
    while closed is None:
        output = await communicator.receive_output(timeout=RECEIVE_TIMEOUT_S)
        if output["type"] == "websocket.close":
            closed = output["code"]
        else:
            received.append(json.loads(output["text"])["content"])
    assert closed == 4008
    assert len(received) <= 10
    # Closing may take the client a while; the socket stops taking the conversation's events at once.
    layer = get_channel_layer()

    async def group_left() -> None:
        while layer.groups.get(f"conv.{conversation.pk}"):
            await asyncio.sleep(0.01)  # the close task's group_discard, a step or two away

    await asyncio.wait_for(group_left(), RECEIVE_TIMEOUT_S)
    await communicator.wait()

    settings.CHAT = {**settings.CHAT, "WS_MAX_BUFFERED_FRAMES": 1000}
    last = (await sync_to_async(message_id_of)(conversation, received[-1])) if received else first.pk
    resumed = await connect(conversation.pk, make_token("u1"), query=f"lastMessageId={last}")
    rest = [(await resumed.expect("message_received"))["content"] for _ in range(60 - len(received))]
    assert received + rest == [f"missed {i}" for i in range(60)]
    await resumed.assert_alive_and_quiet()
    await resumed.close()


def message_id_of(conversation: Conversation, content: str) -> str:
    return conversation.messages.get(content=content).pk


# ---- failures inside the consumer ------------------------------------------------------------------


async def test_a_failing_handler_answers_internal_error_and_the_socket_stays_open(
    conversation, make_token, monkeypatch
):
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("the read service is broken")

    monkeypatch.setattr(conversation_services, "participant_mark_read", broken)
    donor = await connect(conversation.pk, make_token("u1"))
    await donor.send({"type": "read"})
    error = await donor.expect("error")
    assert error["code"] == "internal_error"
    assert "broken" not in error["message"]  # nothing internal reaches the client
    await donor.assert_alive_and_quiet()
    await donor.close()


async def test_cleanup_runs_even_when_the_connection_task_dies(conversation, make_token):
    """A crash used to skip cleanup: the gauge stayed up for good, the others never got user_left, the
    presence entry lingered. Here the consumer's task is cancelled outright, as Daphne does to an
    application that does not finish."""
    baseline = open_sockets_gauge()
    donor = await connect(conversation.pk, make_token("u1"))
    agent_communicator, _ = await open_socket(conversation.pk, make_token("agent1", "ADMIN"))
    assert (await donor.expect("user_joined"))["userId"] == "agent1"
    assert open_sockets_gauge() == baseline + 2
    agent_communicator.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await agent_communicator.future
    assert await donor.receive() == {"type": "user_left", "userId": "agent1", "role": "ADMIN"}
    assert open_sockets_gauge() == baseline + 1
    await donor.close()
    assert open_sockets_gauge() == baseline


async def test_a_failing_cleanup_step_does_not_stop_the_others(conversation, make_token, monkeypatch):
    from realtime import presence

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("presence store away")

    baseline = open_sockets_gauge()
    donor = await connect(conversation.pk, make_token("u1"))
    monkeypatch.setattr(presence, "socket_left", broken)
    await donor.close()
    assert open_sockets_gauge() == baseline
    assert not consumers.open_sockets()  # out of the registry, so the sweeper forgets it


async def test_refused_frames_store_and_broadcast_nothing_with_the_socket_left_open(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    for raw in ('{"type":["message"]}', "[" * 10_000, '{"type":{"a":1}}'):
        await donor.send(raw)
        assert (await donor.expect("error"))["code"] in {"unknown_type", "invalid_frame"}
    await agent.assert_alive_and_quiet()
    assert await count_messages(conversation) == 0
    await donor.close()
    await agent.close()


async def test_a_connection_that_fails_half_way_is_closed_with_1011_and_undone(
    conversation, make_token, monkeypatch, settings
):
    """Here presence is away when the socket is already accepted and counted: the socket is closed (1011,
    try again later), and what opening took is given back (the gauge, the user's only socket place)."""
    from realtime import presence

    async def away(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("presence store away")

    settings.CHAT = {**settings.CHAT, "WS_MAX_SOCKETS_PER_USER": 1}
    baseline = open_sockets_gauge()
    monkeypatch.setattr(presence, "socket_joined", away)
    communicator, _ = await open_socket(conversation.pk, make_token("u1"))
    assert (await communicator.receive_output(timeout=RECEIVE_TIMEOUT_S))["code"] == 1011
    await communicator.disconnect()
    assert open_sockets_gauge() == baseline
    monkeypatch.undo()
    socket = await connect(conversation.pk, make_token("u1"))  # its place was given back
    await socket.assert_alive_and_quiet()
    await socket.close()
