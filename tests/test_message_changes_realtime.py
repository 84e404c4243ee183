"""Edits, deletions and reactions live on the socket (`message_updated`, `message_deleted`,
`reaction_updated`), on resume (`changedSince`), replies over WebSocket, and notes never reaching donors."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from conversations import services as conversation_services
from conversations.models import Conversation
from messaging import edits
from messaging.models import Message
from tests.helpers import ADMIN, USER, send
from tests.test_realtime import connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

THUMBS = "\U0001f44d"


@pytest.fixture
def conversation(transactional_db) -> Conversation:
    conversation = conversation_services.conversation_create(creator=USER, subject="Refund")
    conversation_services.participant_join(conversation=conversation, principal=ADMIN)
    return conversation


def edit(conversation: Conversation, message: Message, content: str, who=USER) -> Message:
    return edits.message_edit(conversation=conversation, editor=who, message_id=message.pk, content=content)


def delete(conversation: Conversation, message: Message, who=USER) -> Message:
    return edits.message_delete(conversation=conversation, actor=who, message_id=message.pk)


def react(conversation: Conversation, message: Message, who=USER, on: bool = True) -> Message:
    return edits.reaction_set(conversation=conversation, actor=who, message_id=message.pk, emoji=THUMBS, on=on)


async def test_changes_are_announced_live_and_notes_only_to_staff(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    staff = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    words = await sync_to_async(send)(conversation, "helo")
    note = await sync_to_async(send)(conversation, "private", sender=ADMIN, message_type="NOTE")
    for socket in (donor, staff):
        assert (await socket.expect("message_received"))["messageId"] == words.pk
    assert (await staff.expect("message_received"))["messageId"] == note.pk

    await sync_to_async(edit)(conversation, words, "hello")
    for socket in (donor, staff):  # the editor's own tabs too: every tab shows the new text
        frame = await socket.expect("message_updated")
        assert frame["message"]["content"] == "hello" and frame["message"]["editedAt"]
        assert frame["changeCursor"] == "1"
    await sync_to_async(react)(conversation, words, ADMIN)
    for socket in (donor, staff):
        frame = await socket.expect("reaction_updated")
        assert frame == {
            "type": "reaction_updated",
            "conversationId": conversation.pk,
            "messageId": words.pk,
            "reactions": [{"emoji": THUMBS, "count": 1, "userIds": ["agent1"]}],
            "changeCursor": "2",
        }
    # Everything about the note: staff only.
    await sync_to_async(edit)(conversation, note, "still private", ADMIN)
    assert (await staff.expect("message_updated"))["message"]["content"] == "still private"
    await sync_to_async(react)(conversation, note, ADMIN)
    assert (await staff.expect("reaction_updated"))["messageId"] == note.pk
    await sync_to_async(delete)(conversation, note, ADMIN)
    deleted = await staff.expect("message_deleted")
    assert (deleted["messageId"], deleted["changeCursor"]) == (note.pk, "5") and deleted["deletedAt"]
    await donor.assert_alive_and_quiet()
    await sync_to_async(delete)(conversation, words, ADMIN)  # staff may delete a donor's message
    for socket in (donor, staff):
        frame = await socket.expect("message_deleted")
        assert set(frame) == {"type", "conversationId", "messageId", "deletedAt", "changeCursor"}
        assert frame["messageId"] == words.pk
    for socket in (donor, staff):
        await socket.assert_alive_and_quiet()
        await socket.close()


async def test_a_socket_resuming_with_changed_since_learns_what_changed_while_it_was_away(conversation, make_token):
    a, b, c = [await sync_to_async(send)(conversation, text) for text in ("a", "b", "c")]
    note = await sync_to_async(send)(conversation, "note", sender=ADMIN, message_type="NOTE")
    donor = await connect(conversation.pk, make_token("u1"))
    await donor.assert_alive_and_quiet()
    await sync_to_async(react)(conversation, c)
    cursor = (await donor.expect("reaction_updated"))["changeCursor"]
    await donor.close()

    # Away: an edit, a deletion, a reaction removed, and changes to a note.
    await sync_to_async(edit)(conversation, a, "a, edited")
    await sync_to_async(delete)(conversation, b)
    await sync_to_async(edit)(conversation, note, "note, edited", ADMIN)
    await sync_to_async(react)(conversation, c, USER, False)
    later = await sync_to_async(send)(conversation, "d")

    donor = await connect(conversation.pk, make_token("u1"), query=f"lastMessageId={c.pk}&changedSince={cursor}")
    frames = [await donor.receive() for _ in range(4)]
    changes = [f for f in frames if f["type"] != "message_received"]
    assert [(f["type"], f.get("messageId") or f["message"]["messageId"]) for f in changes] == [
        ("message_updated", a.pk),
        ("message_deleted", b.pk),
        ("message_updated", c.pk),
    ]
    assert changes[0]["message"]["content"] == "a, edited" and changes[2]["message"]["reactions"] == []
    assert [f["messageId"] for f in frames if f["type"] == "message_received"] == [later.pk]
    assert changes[-1]["changeCursor"] == "5"
    await donor.assert_alive_and_quiet()  # nothing about the note
    await donor.close()

    staff = await connect(conversation.pk, make_token("agent1", "ADMIN"), query=f"changedSince={cursor}")
    kinds = [(await staff.receive())["type"] for _ in range(4)]
    assert kinds == ["message_updated", "message_deleted", "message_updated", "message_updated"]
    await staff.assert_alive_and_quiet()
    await staff.close()


async def test_a_bad_change_cursor_gets_an_error_frame_and_the_socket_goes_on(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"), query="changedSince=soon")
    frame = await donor.expect("error")
    assert frame["code"] == "invalid_cursor"
    await donor.assert_alive_and_quiet()
    await donor.close()


async def test_replies_over_the_socket_are_checked_like_rest(conversation, make_token):
    question = await sync_to_async(send)(conversation, "Is my donation tax deductible?")
    note = await sync_to_async(send)(conversation, "check the campaign", sender=ADMIN, message_type="NOTE")
    donor = await connect(conversation.pk, make_token("u1"))
    staff = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    await staff.send({"type": "message", "content": "It is.", "replyTo": question.pk})
    sent = await staff.expect("message_sent")
    assert sent["replyTo"]["messageId"] == question.pk and sent["replyTo"]["preview"].startswith("Is my donation")
    received = await donor.expect("message_received")
    assert received["replyTo"] == sent["replyTo"]

    count = await sync_to_async(Message.objects.count)()
    await staff.send({"type": "message", "content": "quoting a note", "replyTo": note.pk})
    assert (await staff.expect("error"))["code"] == "invalid_reply_to"
    await donor.send({"type": "message", "content": "quoting a note", "replyTo": note.pk})
    assert (await donor.expect("error"))["code"] == "invalid_reply_to"
    await donor.send({"type": "message", "content": "bad id", "replyTo": "not an id"})
    assert (await donor.expect("error"))["code"] == "invalid"
    assert await sync_to_async(Message.objects.count)() == count
    for socket in (donor, staff):
        await socket.assert_alive_and_quiet()  # nothing was broadcast
        await socket.close()
