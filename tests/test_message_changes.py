"""Edits, deletions (tombstones), reactions and replies over REST: the rules, bad input (a clear 4xx and
nothing stored), notes staying invisible to donors, and the change cursor (`changedSince`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from attachments.models import Attachment
from conversations import services as conversation_services
from conversations.models import Conversation
from messaging.models import Message, MessageVersion
from tests.helpers import ADMIN, USER, send

pytestmark = pytest.mark.django_db

THUMBS, HEART = "\U0001f44d", "\u2764\ufe0f"


def url(conversation: Conversation, message: Message | str | None = None, tail: str = "") -> str:
    base = f"/api/conversations/{conversation.pk}/messages"
    if message is None:
        return base + tail
    return f"{base}/{message if isinstance(message, str) else message.pk}{tail}"


def state(conversation: Conversation) -> tuple[Any, ...]:
    """What a refused change must leave as it was: every message's stored fields, versions, the cursor."""
    rows = tuple(
        Message.objects.filter(conversation_id=conversation.pk)
        .order_by("seq")
        .values_list("content", "metadata", "edited_at", "deleted_at", "reactions", "change_seq")
    )
    cursor = Conversation.objects.get(pk=conversation.pk).last_change_seq
    return rows, MessageVersion.objects.count(), cursor


@pytest.fixture
def staff_in(conversation) -> Conversation:
    conversation_services.participant_join(conversation=conversation, principal=ADMIN)
    return conversation


# ---- edit ---------------------------------------------------------------------------------------------


def test_the_sender_edits_within_the_window_and_staff_see_what_it_said(donor, agent, conversation):
    message = send(conversation, "Wher is my receipt?")
    response = donor.patch(url(conversation, message), {"content": "Where is my receipt?"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["content"] == "Where is my receipt?" and body["editedAt"] is not None and body["deletedAt"] is None
    assert (
        body["messageId"] == message.pk
        and body["createdAt"] == donor.get(url(conversation)).json()["results"][0]["createdAt"]
    )
    versions = agent.get(url(conversation, message, "/versions")).json()["results"]
    assert [(v["content"], v["replacedById"], v["replacedByRole"]) for v in versions] == [
        ("Wher is my receipt?", "u1", "USER")
    ]
    # Donors (the sender included) do not get the history: 404, as for a message that does not exist.
    assert donor.get(url(conversation, message, "/versions")).json()["code"] == "message_not_found"
    # A second edit keeps both earlier texts, newest first; the same text again records nothing.
    donor.patch(url(conversation, message), {"content": "Where is my tax receipt?"}, format="json")
    donor.patch(url(conversation, message), {"content": "Where is my tax receipt?"}, format="json")
    versions = agent.get(url(conversation, message, "/versions")).json()["results"]
    assert [v["content"] for v in versions] == ["Where is my receipt?", "Wher is my receipt?"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "required"),
        ({"content": ""}, "blank"),
        ({"content": "   "}, "blank"),
        ({"content": 5}, "not_a_string"),
        ({"content": "x" * 10_001}, "content_too_long"),
    ],
)
def test_an_edit_is_validated_like_a_send(donor, conversation, body, code):
    message = send(conversation, "original")
    before = state(conversation)
    response = donor.patch(url(conversation, message), body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, code)
    assert state(conversation) == before


def test_who_may_edit_what(donor, agent, stranger, staff_in, client_for):
    conversation = staff_in
    mine = send(conversation, "donor's words")
    staff_reply = send(conversation, "staff words", sender=ADMIN)
    note = send(conversation, "a note", sender=ADMIN, message_type="NOTE")
    notice = send(conversation, "Agent joined", sender=ADMIN, message_type="SYSTEM")
    before = state(conversation)
    cases = [
        (agent, mine, 403, "edit_forbidden"),  # staff may not edit a donor's message
        (donor, staff_reply, 403, "edit_forbidden"),
        (agent, notice, 403, "edit_forbidden"),  # notices are the service's
        (donor, note, 404, "message_not_found"),  # a note does not exist for a donor
        (donor, "msg_NOPE", 404, "message_not_found"),
        (stranger, mine, 404, "not_found"),  # another donor's conversation
    ]
    for client, message, status, code in cases:
        response = client.patch(url(conversation, message), {"content": "changed"}, format="json")
        assert (response.status_code, response.json()["code"]) == (status, code), message
    assert state(conversation) == before
    # The same id with another role is another person: a donor "agent1" cannot edit staff agent1's reply.
    response = client_for("agent1", "USER").patch(url(conversation, staff_reply), {"content": "x"}, format="json")
    assert response.status_code in (403, 404) and state(conversation) == before
    assert agent.patch(url(conversation, note), {"content": "a better note"}, format="json").status_code == 200


def test_the_window_closes_and_edits_are_redacted(donor, conversation, settings):
    message = send(conversation, "hello")
    response = donor.patch(url(conversation, message), {"content": "card 4111 1111 1111 1111"}, format="json")
    assert response.json()["content"] == "card **** **** **** 1111"
    assert response.json()["metadata"] == {"redacted": ["card"]}
    old = send(conversation, "old words")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(seconds=901))
    before = state(conversation)
    response = donor.patch(url(conversation, old), {"content": "new words"}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "edit_window_passed")
    assert state(conversation) == before


# ---- delete ---------------------------------------------------------------------------------------------


def test_a_deleted_message_is_a_tombstone_that_keeps_its_place(donor, agent, staff_in):
    conversation = staff_in
    first = send(conversation, "first")
    secret = send(conversation, "my password is hunter2", metadata={"x": "y"})
    last = send(conversation, "last")
    donor.patch(url(conversation, secret), {"content": "my password is hunter3"}, format="json")
    donor.put(url(conversation, secret, f"/reactions/{THUMBS}"))
    assert donor.delete(url(conversation, secret)).status_code == 204
    stored = Message.objects.get(pk=secret.pk)
    assert (stored.content, stored.metadata, stored.reactions, stored.seq) == ("", {}, [], secret.seq)
    assert not MessageVersion.objects.filter(message_id=secret.pk).exists()  # the edited text went too
    page = donor.get(url(conversation)).json()["results"]
    assert [(m["messageId"], m["content"], m["deletedAt"] is not None) for m in page] == [
        (first.pk, "first", False),
        (secret.pk, "", True),
        (last.pk, "last", False),
    ]
    # Deleting again changes nothing; editing or reacting to a tombstone is a conflict.
    before = state(conversation)
    assert donor.delete(url(conversation, secret)).status_code == 204
    for response in (
        donor.patch(url(conversation, secret), {"content": "back"}, format="json"),
        donor.put(url(conversation, secret, f"/reactions/{THUMBS}")),
    ):
        assert (response.status_code, response.json()["code"]) == (409, "message_deleted")
    assert state(conversation) == before


def test_donors_delete_their_own_and_staff_delete_anything(donor, agent, stranger, staff_in):
    conversation = staff_in
    reply = send(conversation, "staff reply", sender=ADMIN)
    mine = send(conversation, "donor words")
    before = state(conversation)
    response = donor.delete(url(conversation, reply))
    assert (response.status_code, response.json()["code"]) == (403, "delete_forbidden")
    assert stranger.delete(url(conversation, mine)).status_code == 404
    assert state(conversation) == before
    assert agent.delete(url(conversation, mine)).status_code == 204
    assert Message.objects.get(pk=mine.pk).deleted_at is not None


def test_deleting_a_file_message_deletes_its_attachment(donor, conversation, settings):
    from tests.test_attachments import png, stored_files, upload

    for path in stored_files():
        path.unlink()
    uploaded = upload(donor, conversation.pk, png(), "receipt.png", "image/png").json()
    message = send(conversation, "receipt", message_type="FILE", metadata={"attachmentId": uploaded["attachmentId"]})
    assert stored_files()
    assert donor.delete(url(conversation, message)).status_code == 204
    assert not Attachment.objects.exists() and stored_files() == []
    assert donor.get(f"/api/attachments/{uploaded['attachmentId']}").status_code == 404


# ---- reactions ----------------------------------------------------------------------------------------------


def test_reactions_are_idempotent_per_person(donor, agent, staff_in, client_for):
    conversation = staff_in
    message = send(conversation, "Thanks!", sender=ADMIN)
    first = donor.put(url(conversation, message, f"/reactions/{THUMBS}"))
    assert first.status_code == 200
    assert first.json()["reactions"] == [{"emoji": THUMBS, "count": 1, "userIds": ["u1"]}]
    cursor = Conversation.objects.get(pk=conversation.pk).last_change_seq
    assert donor.put(url(conversation, message, f"/reactions/{THUMBS}")).json() == first.json()
    assert Conversation.objects.get(pk=conversation.pk).last_change_seq == cursor  # nothing changed
    agent.put(url(conversation, message, f"/reactions/{THUMBS}"))
    # A heart without its variation selector is the configured heart.
    hearts = donor.put(url(conversation, message, "/reactions/\u2764")).json()["reactions"]
    assert hearts == [
        {"emoji": THUMBS, "count": 2, "userIds": ["u1", "agent1"]},
        {"emoji": HEART, "count": 1, "userIds": ["u1"]},
    ]
    donor.delete(url(conversation, message, f"/reactions/{THUMBS}"))
    gone = donor.delete(url(conversation, message, f"/reactions/{THUMBS}"))
    assert gone.status_code == 200
    assert gone.json()["reactions"] == [
        {"emoji": THUMBS, "count": 1, "userIds": ["agent1"]},
        {"emoji": HEART, "count": 1, "userIds": ["u1"]},
    ]
    # A donor with staff agent1's id is another person, who cannot even see this conversation.
    assert client_for("agent1", "USER").delete(url(conversation, message, f"/reactions/{THUMBS}")).status_code == 404
    assert Message.objects.get(pk=message.pk).reactions[0]["users"] == [["ADMIN", "agent1"]]


@pytest.mark.parametrize("emoji", ["%F0%9F%92%A9", "x", "%F0%9F%91%8D%F0%9F%91%8D", "%E2%9D%A4%EF%B8%8F%EF%B8%8F"])
def test_only_configured_reactions_are_taken(donor, conversation, emoji):
    message = send(conversation, "hi")
    before = state(conversation)
    response = donor.put(url(conversation, message, f"/reactions/{emoji}"))
    assert (response.status_code, response.json()["code"]) == (400, "reaction_not_allowed")
    assert state(conversation) == before


def test_the_reaction_set_is_configurable(donor, conversation, settings):
    settings.CHAT = {**settings.CHAT, "REACTIONS": ("\u2705",)}
    message = send(conversation, "done?")
    assert donor.put(url(conversation, message, f"/reactions/{THUMBS}")).json()["code"] == "reaction_not_allowed"
    assert donor.put(url(conversation, message, "/reactions/\u2705")).json()["reactions"][0]["emoji"] == "\u2705"


# ---- replies ----------------------------------------------------------------------------------------------------


def test_a_reply_quotes_its_message_as_it_is_now(donor, agent, staff_in):
    conversation = staff_in
    question = send(conversation, "Where is my receipt for the March donation?")
    response = agent.post(url(conversation), {"content": "Sent it again", "replyTo": question.pk}, format="json")
    assert response.status_code == 201
    reply = response.json()
    assert reply["replyTo"] == {
        "messageId": question.pk,
        "senderName": question.sender_name,
        "senderRole": "USER",
        "preview": "Where is my receipt for the March donation?",
        "deletedAt": None,
    }
    donor.patch(url(conversation, question), {"content": "Where is my receipt?"}, format="json")
    donor.delete(url(conversation, question))
    page = donor.get(url(conversation)).json()["results"]
    quoted = next(m for m in page if m["messageId"] == reply["messageId"])["replyTo"]
    assert quoted["preview"] == "" and quoted["deletedAt"] is not None  # the tombstone, not the old text


def test_replies_may_not_cross_conversations_or_reveal_notes(donor, agent, staff_in):
    conversation = staff_in
    other = conversation_services.conversation_create(creator=USER, subject="Other")
    elsewhere = send(other, "in another conversation")
    note = send(conversation, "donor seems upset", sender=ADMIN, message_type="NOTE")
    before = state(conversation)
    cases = [
        (donor, {"content": "re", "replyTo": elsewhere.pk}),
        (donor, {"content": "re", "replyTo": "msg_NOPE"}),
        (donor, {"content": "re", "replyTo": note.pk}),  # a note does not exist for donors
        (agent, {"content": "re", "replyTo": note.pk}),  # the donor would see the note quoted
        (agent, {"content": "re", "replyTo": elsewhere.pk}),
    ]
    for client, body in cases:
        response = client.post(url(conversation), body, format="json")
        assert (response.status_code, response.json()["code"]) == (400, "invalid_reply_to"), body
    assert state(conversation) == before
    bad = donor.post(url(conversation), {"content": "re", "replyTo": "has spaces"}, format="json")
    assert bad.status_code == 400 and state(conversation) == before
    # A note may quote a note.
    response = agent.post(
        url(conversation), {"content": "agreed", "replyTo": note.pk, "messageType": "NOTE"}, format="json"
    )
    assert response.status_code == 201 and response.json()["replyTo"]["preview"] == "donor seems upset"


# ---- notes stay staff-only, the change cursor ------------------------------------------------------------------------


def test_changes_since_a_cursor_are_the_messages_as_they_are_now_without_notes_for_donors(donor, agent, staff_in):
    conversation = staff_in
    cursor = donor.get(url(conversation)).json()["changeCursor"]
    assert cursor == "0"
    a = send(conversation, "a")
    b = send(conversation, "b")
    note = send(conversation, "note", sender=ADMIN, message_type="NOTE")
    c = send(conversation, "c")
    donor.patch(url(conversation, a), {"content": "a2"}, format="json")
    agent.patch(url(conversation, note), {"content": "note2"}, format="json")
    agent.put(url(conversation, note, f"/reactions/{THUMBS}"))
    donor.delete(url(conversation, b))
    donor.put(url(conversation, c, f"/reactions/{THUMBS}"))
    donor.patch(url(conversation, a), {"content": "a3"}, format="json")

    page = donor.get(url(conversation, tail=f"?changedSince={cursor}")).json()
    # Change order, each message once, as it is now: b (deleted), c (reacted), a (edited twice).
    assert [(m["messageId"], m["content"]) for m in page["results"]] == [(b.pk, ""), (c.pk, "c"), (a.pk, "a3")]
    assert page["next"] is None and page["changeCursor"] == "6"
    staff_page = agent.get(url(conversation, tail=f"?changedSince={cursor}")).json()
    assert [m["messageId"] for m in staff_page["results"]] == [note.pk, b.pk, c.pk, a.pk]
    # Pages follow the change order; the last one hands back the conversation's cursor.
    first = donor.get(url(conversation, tail=f"?changedSince={cursor}&limit=2")).json()
    assert [m["messageId"] for m in first["results"]] == [b.pk, c.pk] and first["next"]
    second = donor.get(first["next"]).json()
    assert [m["messageId"] for m in second["results"]] == [a.pk] and second["next"] is None
    assert second["changeCursor"] == "6"
    assert donor.get(url(conversation, tail="?changedSince=6")).json()["results"] == []
    # Donors never learn of the note, even from a cursor just before its changes.
    assert [m["messageId"] for m in donor.get(url(conversation, tail="?changedSince=1")).json()["results"]] == [
        b.pk,
        c.pk,
        a.pk,
    ]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?changedSince=-1", "invalid"),
        ("?changedSince=abc", "invalid"),
        ("?changedSince=1&after=msg_x", "invalid_cursor"),
    ],
)
def test_bad_change_cursors_are_refused(donor, conversation, query, code):
    response = donor.get(url(conversation, tail=query))
    assert (response.status_code, response.json()["code"]) == (400, code)


def test_a_staff_deletion_is_audited_and_a_donors_own_is_not(donor, agent, staff_in):
    from audit.models import AuditRecord

    conversation = staff_in
    mine = send(conversation, "donor words")
    theirs = send(conversation, "another")
    assert donor.delete(url(conversation, mine)).status_code == 204
    assert not AuditRecord.objects.filter(action="message.delete").exists()
    assert agent.delete(url(conversation, theirs)).status_code == 204
    (record,) = AuditRecord.objects.filter(action="message.delete")
    assert (record.actor_id, record.actor_role, record.target_type, record.target_id) == (
        "agent1",
        "ADMIN",
        "message",
        theirs.pk,
    )
    assert record.details == {
        "conversationId": conversation.pk,
        "senderId": "u1",
        "senderRole": "USER",
        "messageType": "TEXT",
    }
    assert "another" not in str(record.details)
