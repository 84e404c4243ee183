"""The WebSocket protocol through the full ASGI application (middleware, routing, consumer), with the
in-memory channel layer: every frame type, error code and close code, idempotency, resume, gap fill."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from chatservice.asgi import application
from conversations import services as conversation_services
from conversations.models import Conversation, Participant
from messaging.models import Message
from realtime import consumers
from realtime.auth import QueryTokenAuthMiddleware, strip_token
from realtime.sweeper import GapSweeper
from tests.helpers import ADMIN, USER, send

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

# Generous: a loaded 2-core CI machine; a passing test never waits this long.
RECEIVE_TIMEOUT_S = 5


@pytest.fixture
def conversation(transactional_db) -> Conversation:
    return conversation_services.conversation_create(creator=USER, subject="Refund")


class Socket:
    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    async def send(self, frame: Any) -> None:
        await self.communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def receive(self) -> dict[str, Any]:
        return json.loads(await self.communicator.receive_from(timeout=RECEIVE_TIMEOUT_S))

    async def expect(self, frame_type: str) -> dict[str, Any]:
        frame = await self.receive()
        assert frame["type"] == frame_type, frame
        return frame

    async def assert_alive_and_quiet(self) -> None:
        """Nothing was queued for this socket before a pong, and it still answers."""
        await self.send({"type": "ping"})
        assert await self.receive() == {"type": "pong"}

    async def close(self) -> None:
        await self.communicator.disconnect()


async def open_socket(
    conversation_id: str, token: str | None, *, query: str = "", headers: list | None = None
) -> tuple[WebsocketCommunicator, dict[str, Any] | None]:
    params = [f"token={token}"] if token else []
    if query:
        params.append(query)
    path = f"/ws/conversations/{conversation_id}" + ("?" + "&".join(params) if params else "")
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=RECEIVE_TIMEOUT_S)
    assert connected
    return communicator, None


async def connect(conversation_id: str, token: str, **kwargs: Any) -> Socket:
    communicator, _ = await open_socket(conversation_id, token, **kwargs)
    return Socket(communicator)


async def close_code(conversation_id: str, token: str | None, **kwargs: Any) -> int:
    communicator, _ = await open_socket(conversation_id, token, **kwargs)
    output = await communicator.receive_output(timeout=RECEIVE_TIMEOUT_S)
    assert output["type"] == "websocket.close", output
    return output["code"]


@sync_to_async
def count_messages(conversation: Conversation) -> int:
    return Message.objects.filter(conversation=conversation).count()


@sync_to_async
def call(fn: Any, **kwargs: Any) -> Any:
    return fn(**kwargs)


# ---- connection ------------------------------------------------------------------------------------


async def test_refusals_have_close_codes(conversation, make_token, other_keypair):
    assert await close_code(conversation.pk, None) == 4401
    assert await close_code(conversation.pk, "garbage") == 4401
    assert await close_code(conversation.pk, make_token("u1", ttl=-120)) == 4401
    assert await close_code(conversation.pk, make_token("u1", key=other_keypair[0])) == 4401
    assert await close_code(conversation.pk, make_token("u2")) == 4403
    assert await close_code("conv_missing", make_token("u1")) == 4404
    assert await close_code("conv_missing", make_token("agent1", "ADMIN")) == 4404


async def test_token_is_removed_from_the_scope_before_the_app_sees_it(make_token):
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    token = make_token("u1")
    await QueryTokenAuthMiddleware(token_app=app, session_app=None)(
        {"type": "websocket", "query_string": f"token={token}&lastMessageId=msg_1".encode()}, None, None
    )
    assert seen["query_string"] == b"lastMessageId=msg_1"
    assert seen["principal"].user_id == "u1"
    assert token not in repr(seen)
    assert strip_token(b"a=1&token=x&token=y") == ("y", b"a=1")


async def test_admin_who_is_not_a_participant_joins_once_and_is_announced(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    assert await donor.expect("user_joined") == {"type": "user_joined", "userId": "agent1", "role": "ADMIN"}
    second_tab = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.assert_alive_and_quiet()  # the second tab announces nothing
    participants = await sync_to_async(list)(
        Participant.objects.filter(conversation=conversation).values_list("user_id", "role")
    )
    assert participants == [("u1", "USER"), ("agent1", "ADMIN")]
    await second_tab.close()
    await donor.assert_alive_and_quiet()
    await agent.close()
    assert await donor.expect("user_left") == {"type": "user_left", "userId": "agent1", "role": "ADMIN"}
    await donor.close()


async def test_staff_session_connects_from_the_same_origin_only(conversation):
    user = await sync_to_async(User.objects.create_user)("maria", password="pw-123456", is_staff=True)
    from django.test import Client

    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    same_origin = [(b"cookie", cookie), (b"origin", b"http://localhost:3006"), (b"host", b"localhost:3006")]
    socket = await connect(conversation.pk, None, headers=same_origin)
    await socket.send({"type": "message", "content": "from the console"})
    sent = await socket.expect("message_sent")
    assert (sent["senderId"], sent["senderRole"]) == ("staff:maria", "ADMIN")
    await socket.close()
    cross_site = [(b"cookie", cookie), (b"origin", b"https://evil.example"), (b"host", b"localhost:3006")]
    assert await close_code(conversation.pk, None, headers=cross_site) == 4401
    assert await close_code(conversation.pk, None, headers=[(b"cookie", cookie)]) == 4401


# ---- messages --------------------------------------------------------------------------------------


async def test_message_is_acknowledged_to_the_sender_and_received_by_every_other_socket(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    donor_tab = await connect(conversation.pk, make_token("u1"))
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    await donor_tab.expect("user_joined")

    await donor.send({"type": "message", "content": "Hello, I need help!", "clientMessageId": "c1"})
    sent = await donor.expect("message_sent")
    stored = await sync_to_async(Message.objects.get)(pk=sent["messageId"])
    assert (stored.content, stored.sender_id) == ("Hello, I need help!", "u1")
    assert sent == {
        "type": "message_sent",
        "messageId": stored.pk,
        "conversationId": conversation.pk,
        "senderId": "u1",
        "senderRole": "USER",
        "content": "Hello, I need help!",
        "messageType": "TEXT",
        "metadata": {},
        "clientMessageId": "c1",
        "createdAt": sent["createdAt"],
        "senderName": "u1",
        "editedAt": None,
        "deletedAt": None,
        "reactions": [],
        "replyTo": None,
    }
    for other in (agent, donor_tab):
        assert await other.receive() == {**sent, "type": "message_received"}
    await donor.assert_alive_and_quiet()  # no echo of its own message
    for socket in (donor, donor_tab, agent):
        await socket.close()


async def test_repeated_client_message_id_yields_the_same_message_once(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    frame = {"type": "message", "content": "once", "clientMessageId": "retry-1"}
    await donor.send(frame)
    first = await donor.expect("message_sent")
    await donor.send(frame)
    again = await donor.expect("message_sent")
    assert again["messageId"] == first["messageId"]
    assert await count_messages(conversation) == 1
    assert (await agent.expect("message_received"))["messageId"] == first["messageId"]
    await agent.assert_alive_and_quiet()  # received once
    await donor.close()
    await agent.close()


async def test_rest_writes_reach_sockets(conversation, make_token, client_for):
    donor = await connect(conversation.pk, make_token("u1"))
    # The donor's inbox socket: its last event is the test's last write's last step (see the end).
    inbox = Socket(WebsocketCommunicator(application, f"/ws/inbox?token={make_token('u1')}"))
    assert (await inbox.communicator.connect(timeout=RECEIVE_TIMEOUT_S))[0]
    agent_api = client_for("agent1", "ADMIN")
    base = f"/api/conversations/{conversation.pk}"

    assigned = await sync_to_async(agent_api.post)(f"{base}/assign", {}, format="json")
    assert assigned.status_code == 200, assigned.content
    joined = await donor.expect("system")
    assert joined["message"] == "Support joined the conversation"  # the display name, never the username
    assert joined["metadata"] == {
        "event": "assigned",
        "adminId": "agent1",
        "adminName": "Support",
        "actorName": "Support",
        "how": "self",
    }

    response = await sync_to_async(agent_api.post)(f"{base}/messages", {"content": "How can I help?"}, format="json")
    received = await donor.expect("message_received")
    assert received["messageId"] == response.json()["messageId"]

    donor_api = client_for("u1", "USER")
    question = await sync_to_async(donor_api.post)(f"{base}/messages", {"content": "Refund?"}, format="json")
    assert (await donor.expect("message_received"))["messageId"] == question.json()["messageId"]  # other tab
    await sync_to_async(agent_api.put)(f"{base}/read", {}, format="json")
    receipt = await donor.expect("read_receipt")
    assert (receipt["userId"], receipt["messageId"]) == ("agent1", question.json()["messageId"])

    await sync_to_async(agent_api.put)(base, {"status": "CLOSED"}, format="json")
    closed = await donor.expect("system")
    assert closed["metadata"] == {
        "event": "status_changed",
        "status": "CLOSED",
        "actorName": "Support",
        "kind": "csat_request",  # the donor is asked to rate it
    }
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    await agent.send({"type": "message", "content": "one more thing"})
    assert (await agent.expect("error"))["code"] == "conversation_closed"  # staff must reopen first
    await donor.send({"type": "message", "content": "still there?"})  # a donor's message reopens it
    frames = [await donor.receive() for _ in range(2)]
    assert sorted(f["type"] for f in frames) == ["message_sent", "system"]
    # agent1 is not ONLINE: the reopened conversation is released to the queue (desk.assignment). Waited
    # for, so that write is over before the test's database is flushed.
    released = await donor.expect("system")
    assert released["metadata"]["event"] == "unassigned"
    # The release's inbox event is published after its system frame, by a database thread that holds
    # the process's SQLite writer lock meanwhile: waited for too, or that thread outlives this test's
    # event loop and the next test waits on the lock forever.
    while True:
        event = await inbox.receive()
        view = event.get("conversation", {})
        released = view.get("status") == "ACTIVE" and not any(p.get("assigned") for p in view["participants"])
        if event["type"] == "conversation_updated" and released:
            break
    await inbox.close()
    await agent.close()
    await donor.close()


async def test_read_frame_moves_the_watermark_and_notifies(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    await agent.send({"type": "message", "content": "one"})
    first = (await donor.expect("message_received"))["messageId"]
    await agent.expect("message_sent")
    await donor.send({"type": "read", "messageId": first})
    receipt = await agent.expect("read_receipt")
    assert (receipt["messageId"], receipt["userId"]) == (first, "u1")
    participant = await sync_to_async(Participant.objects.get)(conversation=conversation, user_id="u1")
    assert participant.last_read_seq == 1
    await donor.send({"type": "read"})  # already read up to the latest: no new receipt
    await agent.assert_alive_and_quiet()
    await donor.close()
    await agent.close()


async def test_typing_goes_to_other_users_and_stops_by_itself(conversation, make_token, monkeypatch):
    monkeypatch.setattr(consumers, "TYPING_TIMEOUT_S", 0.2)
    donor = await connect(conversation.pk, make_token("u1"))
    donor_tab = await connect(conversation.pk, make_token("u1"))
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    await donor_tab.expect("user_joined")
    await donor.send({"type": "typing", "isTyping": True})
    assert await agent.receive() == {"type": "typing_start", "userId": "u1"}
    await donor.send({"type": "typing", "isTyping": True})  # a refresh announces nothing new
    await donor.send({"type": "typing", "isTyping": False})
    assert await agent.receive() == {"type": "typing_stop", "userId": "u1"}
    await donor.send({"type": "typing", "isTyping": True})
    assert await agent.receive() == {"type": "typing_start", "userId": "u1"}
    assert await agent.receive() == {"type": "typing_stop", "userId": "u1"}  # expired without refresh
    await donor_tab.assert_alive_and_quiet()  # the typist's own tabs are not told
    assert await count_messages(conversation) == 0  # typing is never stored
    for socket in (donor, donor_tab, agent):
        await socket.close()


async def test_ping_pong(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    await donor.send({"type": "ping"})
    assert await donor.receive() == {"type": "pong"}
    await donor.close()


# ---- bad frames ------------------------------------------------------------------------------------

FILE_URL = "https://files.example.org/a.pdf"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ('"text"', "invalid_frame"),
        ({"content": "no type"}, "unknown_type"),
        ({"type": "shout", "content": "x"}, "unknown_type"),
        ({"type": "message"}, "required"),
        ({"type": "message", "content": 7}, "not_a_string"),
        ({"type": "message", "content": "   "}, "blank"),
        ({"type": "message", "content": "x" * 10_001}, "content_too_long"),
        ({"type": "message", "content": "x", "messageType": "VIDEO"}, "invalid_choice"),
        (
            {"type": "message", "content": "x", "messageType": "FILE", "metadata": {"name": "a"}},
            "file_metadata_required",
        ),
        ({"type": "message", "content": "x", "metadata": [1]}, "metadata_not_object"),
        ({"type": "message", "content": "x", "messageType": "SYSTEM"}, "system_message_forbidden"),
        ({"type": "typing", "isTyping": "yes"}, "invalid"),
        ({"type": "read", "messageId": "msg_unknown"}, "message_not_found"),
        ("x" * (64 * 1024 + 1), "frame_too_large"),
        # Frames that crashed the socket before (an unhashable type, the decoder's recursion limit).
        ('{"type": ["message"]}', "unknown_type"),
        ('{"type": {"a": 1}}', "unknown_type"),
        ("[" * 10_000, "invalid_frame"),
        ('{"type": "message", "content": "x", "metadata": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}", "invalid_frame"),
        ('{"type": "message", "content": "x", "metadata": {"n": NaN}}', "invalid_json"),
        # A number no event (msgpack) or BSON document can carry, which used to be stored.
        ({"type": "message", "content": "x", "metadata": {"n": 2**70}}, "metadata_number_out_of_range"),
        ({"type": "message", "content": "x", "metadata": {"n": -(2**53) - 1}}, "metadata_number_out_of_range"),
        (json.dumps({"type": "message", "content": "é" * 40_000}), "frame_too_large"),
    ],
)
async def test_bad_frame_gets_an_error_and_changes_nothing(conversation, make_token, frame, code):
    donor = await connect(conversation.pk, make_token("u1"))
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    await donor.send(frame)
    error = await donor.expect("error")
    assert error["code"] == code
    assert error["message"]
    await donor.assert_alive_and_quiet()  # the socket stays open
    assert await count_messages(conversation) == 0  # nothing stored
    await donor.send({"type": "message", "content": "after"})
    await donor.expect("message_sent")
    assert (await agent.receive())["content"] == "after"  # and nothing was broadcast before it
    await donor.close()
    await agent.close()


async def test_message_to_a_closed_conversation(conversation, make_token):
    await call(conversation_services.conversation_update, conversation=conversation, actor=ADMIN, status="ARCHIVED")
    donor = await connect(conversation.pk, make_token("u1"))
    await donor.send({"type": "message", "content": "hello?"})
    assert (await donor.expect("error"))["code"] == "conversation_closed"
    assert await count_messages(conversation) == 1  # only the SYSTEM message of the status change
    await donor.assert_alive_and_quiet()
    await donor.close()


async def test_rate_limit(conversation, make_token, settings):
    settings.CHAT = {**settings.CHAT, "WS_MESSAGE_RATE": 1, "WS_MESSAGE_BURST": 3}
    donor = await connect(conversation.pk, make_token("u1"))
    codes = []
    for i in range(5):
        await donor.send({"type": "message", "content": f"m{i}"})
        codes.append((await donor.receive())["type"])
    assert codes[:3] == ["message_sent"] * 3
    assert codes[3:] == ["error", "error"]
    assert await count_messages(conversation) == 3
    await donor.close()


async def test_rate_limit_is_per_user_across_sockets(conversation, make_token, settings):
    settings.CHAT = {**settings.CHAT, "WS_USER_RATE": 1, "WS_USER_BURST": 2}
    first = await connect(conversation.pk, make_token("u1"))
    second = await connect(conversation.pk, make_token("u1"))
    await first.send({"type": "message", "content": "a"})
    await first.expect("message_sent")
    await second.expect("message_received")
    await second.send({"type": "message", "content": "b"})
    await second.expect("message_sent")
    await first.expect("message_received")
    await second.send({"type": "message", "content": "c"})
    error = await second.expect("error")
    assert error["code"] == "rate_limited" and "retry in" in error["message"]
    assert await count_messages(conversation) == 2
    await first.close()
    await second.close()


# ---- resume and gaps --------------------------------------------------------------------------------


async def test_resume_replays_what_was_missed_then_goes_live(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    await donor.send({"type": "message", "content": "before the drop"})
    last_seen = (await donor.expect("message_sent"))["messageId"]
    await donor.close()

    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))

    @sync_to_async
    def others_write_while_away() -> None:
        for i in range(250):  # more than one replay batch
            send(conversation, f"missed {i}", sender=ADMIN)

    await others_write_while_away()

    donor = await connect(conversation.pk, make_token("u1"), query=f"lastMessageId={last_seen}")
    replayed = [(await donor.expect("message_received"))["content"] for _ in range(250)]
    assert replayed == [f"missed {i}" for i in range(250)]
    await agent.send({"type": "message", "content": "live"})
    assert (await donor.expect("message_received"))["content"] == "live"
    await donor.assert_alive_and_quiet()
    await donor.close()
    await agent.close()


async def test_resume_with_an_unknown_message_id(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"), query="lastMessageId=msg_nope")
    assert (await donor.expect("error"))["code"] == "invalid_cursor"
    await donor.assert_alive_and_quiet()
    await donor.close()


def _store_without_event(conversation: Conversation, content: str) -> Message:
    """A message whose channel-layer event is lost (as in a Redis restart)."""
    from unittest import mock

    from messaging.services import message_append

    with mock.patch("messaging.services.publish_on_commit"):
        return message_append(conversation=conversation, sender_id="agent1", sender_role="ADMIN", content=content)


async def test_lost_event_is_filled_from_the_database_before_the_next_one(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    await sync_to_async(_store_without_event)(conversation, "lost in transit")
    await agent.send({"type": "message", "content": "next"})
    assert (await donor.expect("message_received"))["content"] == "lost in transit"
    assert (await donor.expect("message_received"))["content"] == "next"
    await donor.close()
    await agent.close()


async def test_sweep_delivers_a_lost_last_event(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    await sync_to_async(_store_without_event)(conversation, "nobody rang the bell")
    await GapSweeper(consumers.open_sockets()).sweep()
    assert (await donor.expect("message_received"))["content"] == "nobody rang the bell"
    await donor.close()


async def test_binary_frames_are_refused(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    await donor.communicator.send_to(bytes_data=b'{"type": "ping"}')
    assert (await donor.expect("error"))["code"] == "invalid_frame"
    await donor.assert_alive_and_quiet()
    await donor.close()


async def test_client_message_id_reused_for_another_message(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    await donor.send({"type": "message", "content": "first", "clientMessageId": "k"})
    await donor.expect("message_sent")
    await donor.send({"type": "message", "content": "second", "clientMessageId": "k"})
    assert (await donor.expect("error"))["code"] == "idempotency_key_reused"
    assert await count_messages(conversation) == 1
    await donor.close()
