"""Internal notes: stored and shown to staff like any message, never visible to a donor by any path
(REST history and cursors, live frames, resume, gap fill, read receipts, inbox previews, unread counts),
while the donor's delivery stays gap-free although notes take sequence numbers."""

from __future__ import annotations

from unittest import mock

import pytest
from asgiref.sync import sync_to_async

from conversations import services as conversation_services
from conversations.models import Conversation
from conversations.notices import status_metadata
from messaging.models import Message
from messaging.services import message_append
from realtime import consumers
from realtime.sweeper import GapSweeper
from tests.helpers import ADMIN, USER, send, snapshot
from tests.test_inbox import inbox
from tests.test_realtime import connect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def conversation(transactional_db) -> Conversation:
    return conversation_services.conversation_create(creator=USER, subject="Refund")


def note(conversation: Conversation, content: str = "donor seems upset") -> Message:
    return send(conversation, content, sender=ADMIN, message_type="NOTE")


def test_a_donor_cannot_write_a_note(donor, conversation):
    before = snapshot(conversation)
    response = donor.post(
        f"/api/conversations/{conversation.pk}/messages", {"content": "x", "messageType": "NOTE"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "note_forbidden"
    assert snapshot(conversation) == before


def test_rest_history_cursors_read_and_unread_hide_notes_from_donors(donor, agent, conversation):
    first = send(conversation, "question")
    hidden = note(conversation)
    answer = send(conversation, "answer", sender=ADMIN)
    staff_view = [m["content"] for m in agent.get(f"/api/conversations/{conversation.pk}/messages").json()["results"]]
    assert staff_view == ["question", "donor seems upset", "answer"]
    donor_view = donor.get(f"/api/conversations/{conversation.pk}/messages").json()["results"]
    assert [m["content"] for m in donor_view] == ["question", "answer"]
    # cursors: the note's id is no message to a donor; paging around it skips it
    base = f"/api/conversations/{conversation.pk}/messages"
    assert donor.get(f"{base}?after={hidden.pk}").status_code == 404
    assert [m["content"] for m in donor.get(f"{base}?after={first.pk}").json()["results"]] == ["answer"]
    assert [m["content"] for m in donor.get(f"{base}?before={answer.pk}&limit=1").json()["results"]] == ["question"]
    assert (
        donor.put(f"/api/conversations/{conversation.pk}/read", {"messageId": hidden.pk}, format="json").status_code
        == 404
    )
    # unread: the donor has one (the answer), not two
    assert donor.get(f"/api/conversations/{conversation.pk}").json()["unreadCount"] == 1
    assert donor.get("/api/conversations").json()["results"][0]["unreadCount"] == 1
    note(conversation, "another note")  # after the answer: still one unread for the donor
    assert donor.get(f"/api/conversations/{conversation.pk}").json()["unreadCount"] == 1
    read = donor.put(f"/api/conversations/{conversation.pk}/read", {}, format="json").json()
    assert read["unreadCount"] == 0
    # the list's preview never shows a note to a donor
    assert donor.get("/api/conversations").json()["results"][0]["lastMessage"]["preview"] == "answer"
    assert agent.get("/api/conversations").json()["results"][0]["lastMessage"]["preview"] == "another note"


@pytest.mark.asyncio
async def test_live_frames_resume_gap_fill_and_receipts_never_carry_a_note(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    staff = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    await staff.send({"type": "message", "content": "internal only", "messageType": "NOTE"})
    assert (await staff.expect("message_sent"))["messageType"] == "NOTE"
    await staff.send({"type": "message", "content": "public answer"})
    await staff.expect("message_sent")
    # the donor gets the answer, right after what it had: the note's number was passed over silently
    received = await donor.expect("message_received")
    assert received["content"] == "public answer"
    await donor.assert_alive_and_quiet()
    # a staff read receipt naming the note reaches staff, not the donor
    other_staff = await connect(conversation.pk, make_token("agent2", "ADMIN"))
    await donor.expect("user_joined")
    await sync_to_async(note)(conversation, "a later note")
    await other_staff.expect("message_received")
    await other_staff.send({"type": "read"})
    await donor.assert_alive_and_quiet()
    await donor.close()

    # resume from before the notes: only public messages are replayed
    first_public = received["messageId"]
    await sync_to_async(note)(conversation, "note while away")
    await sync_to_async(send)(conversation, "reply while away", sender=ADMIN)
    donor = await connect(conversation.pk, make_token("u1"), query=f"lastMessageId={first_public}")
    assert (await donor.expect("message_received"))["content"] == "reply while away"
    await donor.assert_alive_and_quiet()
    # a note's id is no resume point for a donor
    note_id = await sync_to_async(lambda: Message.objects.filter(message_type="NOTE").first().pk)()
    bad = await connect(conversation.pk, make_token("u1"), query=f"lastMessageId={note_id}")
    assert (await bad.expect("error"))["code"] == "invalid_cursor"
    await bad.close()

    # gap fill: a note and a reply whose events are lost are read back; the donor gets only the reply
    def store_without_events() -> None:
        with mock.patch("messaging.services.publish_on_commit"):
            message_append(
                conversation=conversation, sender_id="agent1", sender_role="ADMIN", content="n", message_type="NOTE"
            )
            message_append(conversation=conversation, sender_id="agent1", sender_role="ADMIN", content="filled")

    await sync_to_async(store_without_events)()
    await GapSweeper(consumers.open_sockets()).sweep()
    assert (await donor.expect("message_received"))["content"] == "filled"
    await donor.assert_alive_and_quiet()
    await donor.send({"type": "read"})
    for socket in (donor, staff, other_staff):
        await socket.close()


@pytest.mark.asyncio
async def test_a_donor_note_frame_is_refused_and_nothing_is_stored_or_sent(conversation, make_token):
    donor = await connect(conversation.pk, make_token("u1"))
    staff = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    await donor.send({"type": "message", "content": "let me in", "messageType": "NOTE"})
    assert (await donor.expect("error"))["code"] == "note_forbidden"
    await staff.assert_alive_and_quiet()  # nothing was broadcast
    assert await sync_to_async(Message.objects.count)() == 0
    await donor.close()
    await staff.close()


@pytest.mark.asyncio
async def test_inbox_previews_and_unread_counts_skip_notes_for_donors(conversation, make_token):
    donor_inbox = await inbox(make_token("u1"))
    staff_inbox = await inbox(make_token("agent1", "ADMIN"))
    await sync_to_async(note)(conversation, "secret")
    staff_frame = await staff_inbox.expect("inbox_message")
    assert (staff_frame["preview"], staff_frame["messageType"]) == ("secret", "NOTE")
    await sync_to_async(send)(conversation, "visible", sender=ADMIN)
    frame = await donor_inbox.expect("inbox_message")  # the first the donor gets: not the note
    assert (frame["preview"], frame["unreadCount"]) == ("visible", 1)
    # the first response moved the clock: the conversation as the donor sees it, previewing the reply
    updated = (await donor_inbox.expect("conversation_updated"))["conversation"]
    assert updated["firstResponseAt"] is not None and updated["lastMessage"]["preview"] == "visible"
    assert updated["unreadCount"] == 1 and "secret" not in str(updated)
    await donor_inbox.assert_alive_and_quiet()
    await donor_inbox.close()
    await staff_inbox.close()


def test_list_previews_are_kept_by_key_and_never_a_note_or_a_notice_for_donors(donor, agent, conversation):
    question = send(conversation, "question")
    answer = send(conversation, "answer", sender=ADMIN)
    hidden = note(conversation, "staff only")
    conversation_services.record_notice(
        conversation=conversation, actor=ADMIN, metadata=status_metadata(status="ACTIVE", actor_name="Maria")
    )
    conversation.refresh_from_db()
    assert (conversation.preview_message_id, conversation.public_preview_message_id) == (hidden.pk, answer.pk)
    assert donor.get("/api/conversations").json()["results"][0]["lastMessage"]["messageId"] == answer.pk
    assert agent.get("/api/conversations").json()["results"][0]["lastMessage"]["messageId"] == hidden.pk
    assert question.pk not in {conversation.preview_message_id, conversation.public_preview_message_id}


def test_a_conversation_without_kept_keys_is_searched_as_before(donor, agent, conversation):
    """Rows written before the keys existed (or by an import) still show their latest message."""
    send(conversation, "question")
    answer = send(conversation, "answer", sender=ADMIN)
    note(conversation, "staff only")
    Conversation.objects.filter(pk=conversation.pk).update(preview_message_id=None, public_preview_message_id=None)
    assert donor.get("/api/conversations").json()["results"][0]["lastMessage"]["messageId"] == answer.pk
    assert agent.get("/api/conversations").json()["results"][0]["lastMessage"]["preview"] == "staff only"


def test_the_migration_fills_the_keys_of_existing_conversations(conversation):
    from importlib import import_module

    from django.apps import apps

    send(conversation, "question")
    answer = send(conversation, "answer", sender=ADMIN)
    hidden = note(conversation, "staff only")
    empty = conversation_services.conversation_create(creator=USER, subject="no messages")
    Conversation.objects.update(preview_message_id=None, public_preview_message_id=None)
    migration = import_module("conversations.migrations.0003_list_previews")
    migration.previews_of_existing_conversations(apps, None)
    rows = {c.pk: (c.preview_message_id, c.public_preview_message_id) for c in Conversation.objects.all()}
    assert rows == {conversation.pk: (hidden.pk, answer.pk), empty.pk: (None, None)}
