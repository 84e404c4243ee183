"""The inbox socket (`/ws/inbox`): staff get every conversation's events, donors their own only; the
conversation in an event is the REST representation with the viewer's unread count; limits as for
conversation sockets."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from chatservice.asgi import application
from conversations import services as conversation_services
from tests.helpers import ADMIN, USER, send
from tests.test_realtime import RECEIVE_TIMEOUT_S, Socket

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def inbox(token: str | None) -> Socket:
    communicator = WebsocketCommunicator(application, "/ws/inbox" + (f"?token={token}" if token else ""))
    connected, _ = await communicator.connect(timeout=RECEIVE_TIMEOUT_S)
    assert connected
    return Socket(communicator)


async def close_code(token: str | None) -> int:
    socket = await inbox(token)
    output = await socket.communicator.receive_output(timeout=RECEIVE_TIMEOUT_S)
    assert output["type"] == "websocket.close", output
    return output["code"]


def rest(make_token, user_id: str, role: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user_id, role)}")
    return client


async def test_refusals_and_the_socket_cap(settings, make_token):
    assert await close_code(None) == 4401
    assert await close_code("garbage") == 4401
    settings.CHAT = {**settings.CHAT, "WS_MAX_SOCKETS_PER_USER": 1}
    first = await inbox(make_token("agent1", "ADMIN"))
    assert await close_code(make_token("agent1", "ADMIN")) == 4429
    await first.close()


async def test_only_ping_is_taken_and_bad_frames_get_errors(make_token):
    socket = await inbox(make_token("u1"))
    await socket.send({"type": "message", "content": "x"})
    assert (await socket.expect("error"))["code"] == "unknown_type"
    await socket.send("not json")
    assert (await socket.expect("error"))["code"] == "invalid_json"
    await socket.send("x" * 70_000)
    assert (await socket.expect("error"))["code"] == "frame_too_large"
    await socket.assert_alive_and_quiet()
    await socket.close()


async def test_pings_are_rate_limited(settings, make_token):
    settings.CHAT = {**settings.CHAT, "WS_MESSAGE_RATE": 0.001, "WS_MESSAGE_BURST": 2}
    socket = await inbox(make_token("u1"))
    for _ in range(2):
        await socket.send({"type": "ping"})
        await socket.expect("pong")
    await socket.send({"type": "ping"})
    assert (await socket.expect("error"))["code"] == "rate_limited"
    await socket.close()


async def test_staff_see_every_conversation_donors_only_their_own(make_token):
    staff = await inbox(make_token("agent1", "ADMIN"))
    mine = await inbox(make_token("u1"))
    other = await inbox(make_token("u2"))
    created = await sync_to_async(rest(make_token, "u1", "USER").post)(
        "/api/conversations", {"subject": "Receipt"}, format="json"
    )
    conversation_id = created.json()["conversationId"]
    for socket in (staff, mine):
        frame = await socket.expect("conversation_created")
        assert frame["conversation"]["conversationId"] == conversation_id
    staff_view = (
        await sync_to_async(rest(make_token, "agent1", "ADMIN").get)(f"/api/conversations/{conversation_id}")
    ).json()
    assert frame["conversation"].keys() == created.json().keys()  # the donor's: the REST shape, no triage
    # a donor message: inbox_message with the viewer's unread count
    await sync_to_async(rest(make_token, "u1", "USER").post)(
        f"/api/conversations/{conversation_id}/messages", {"content": "where is my receipt?"}, format="json"
    )
    staff_message = await staff.expect("inbox_message")
    assert staff_message | {"createdAt": None} == {
        "type": "inbox_message",
        "conversationId": conversation_id,
        "messageId": staff_message["messageId"],
        "senderId": "u1",
        "senderRole": "USER",
        "senderName": "u1",
        "preview": "where is my receipt?",
        "createdAt": None,
        "messageType": "TEXT",
        "unreadCount": None,  # agent1 does not take part
    }
    assert (await mine.expect("inbox_message"))["unreadCount"] == 0  # their own message
    # waitingSince started: conversation_updated, exactly the REST representation for staff
    updated = await staff.expect("conversation_updated")
    assert updated["conversation"]["waitingSince"] is not None
    assert updated["conversation"].keys() == staff_view.keys()
    await mine.expect("conversation_updated")
    await other.assert_alive_and_quiet()  # nothing about someone else's conversation
    for socket in (staff, mine, other):
        await socket.close()


async def test_a_donors_read_reaches_their_own_inbox_only(make_token):
    created = await sync_to_async(rest(make_token, "u1", "USER").post)(
        "/api/conversations", {"subject": "Receipt"}, format="json"
    )
    conversation_id = created.json()["conversationId"]
    agent = rest(make_token, "agent1", "ADMIN")
    for text in ("first", "second"):
        await sync_to_async(agent.post)(
            f"/api/conversations/{conversation_id}/messages", {"content": text}, format="json"
        )
    staff = await inbox(make_token("agent1", "ADMIN"))
    mine = await inbox(make_token("u1"))
    other = await inbox(make_token("u2"))
    donor = rest(make_token, "u1", "USER")
    page = (await sync_to_async(donor.get)(f"/api/conversations/{conversation_id}/messages")).json()["results"]
    first = next(m for m in page if m["content"] == "first")
    await sync_to_async(donor.put)(
        f"/api/conversations/{conversation_id}/read", {"messageId": first["messageId"]}, format="json"
    )
    read = await mine.expect("conversation_read")
    assert read == {"type": "conversation_read", "conversationId": conversation_id, "unreadCount": 1}
    await sync_to_async(donor.put)(f"/api/conversations/{conversation_id}/read", {}, format="json")
    assert (await mine.expect("conversation_read"))["unreadCount"] == 0
    # Reading again moves nothing and says nothing; staff and other donors hear nothing of a donor's reads.
    await sync_to_async(donor.put)(f"/api/conversations/{conversation_id}/read", {}, format="json")
    for socket in (mine, staff, other):
        await socket.assert_alive_and_quiet()
    for socket in (staff, mine, other):
        await socket.close()


async def test_labels_priority_snooze_and_assignment_are_announced(make_token):
    conversation = await sync_to_async(conversation_services.conversation_create)(creator=USER, subject="x")
    staff = await inbox(make_token("agent1", "ADMIN"))
    agent = rest(make_token, "agent1", "ADMIN")
    await sync_to_async(agent.put)(
        f"/api/conversations/{conversation.pk}", {"labels": ["vip"], "priority": "HIGH"}, format="json"
    )
    frame = await staff.expect("conversation_updated")
    assert (frame["conversation"]["labels"], frame["conversation"]["priority"]) == (["vip"], "HIGH")
    await sync_to_async(agent.post)(f"/api/conversations/{conversation.pk}/assign", {}, format="json")
    frame = await staff.expect("conversation_updated")
    assert [(p["userId"], p["assigned"]) for p in frame["conversation"]["participants"]][-1] == ("agent1", True)
    assert frame["conversation"]["unreadCount"] == 0  # now a participant
    await sync_to_async(send)(conversation, "hello", sender=USER)
    message = await staff.expect("inbox_message")
    assert message["unreadCount"] == 1
    await staff.close()


async def test_a_refused_write_announces_nothing(make_token):
    conversation = await sync_to_async(conversation_services.conversation_create)(creator=USER, subject="x")
    staff = await inbox(make_token("agent1", "ADMIN"))
    donor = rest(make_token, "u1", "USER")
    response = await sync_to_async(donor.put)(
        f"/api/conversations/{conversation.pk}", {"priority": "HIGH"}, format="json"
    )
    assert response.status_code == 403
    response = await sync_to_async(donor.post)(
        f"/api/conversations/{conversation.pk}/messages", {"content": "n", "messageType": "NOTE"}, format="json"
    )
    assert response.status_code == 403
    await staff.assert_alive_and_quiet()
    await sync_to_async(send)(conversation, "ok", sender=ADMIN)
    assert (await staff.expect("inbox_message"))["preview"] == "ok"
    await staff.close()


async def test_staff_sockets_share_one_subscription_and_each_gets_its_own_count_once(make_token):
    from realtime.inbox import InboxRefresher, inbox_sockets
    from realtime.inbox_hub import staff_hub

    conversation = await sync_to_async(conversation_services.conversation_create)(creator=USER, subject="x")
    await sync_to_async(conversation_services.conversation_assign)(
        conversation=conversation, actor=ADMIN, admin_id="agent1"
    )
    taking_part, watching = await inbox(make_token("agent1", "ADMIN")), await inbox(make_token("agent2", "ADMIN"))
    await InboxRefresher(inbox_sockets()).refresh()  # renewing the subscription must not add a second one
    await sync_to_async(send)(conversation, "hello", sender=USER)
    assert (await taking_part.expect("inbox_message"))["unreadCount"] == 1
    assert (await watching.expect("inbox_message"))["unreadCount"] is None  # agent2 takes no part
    for socket in (taking_part, watching):
        await socket.expect("conversation_updated")  # the donor now waits: its clock started
        await socket.assert_alive_and_quiet()  # exactly one frame of each
    await taking_part.close()
    await watching.close()
    assert staff_hub().task is None and not staff_hub().sockets  # the last socket ended the subscription
