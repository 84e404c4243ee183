"""Sending messages over REST: the seed's shape, every bad input refused with nothing stored,
closed conversations, SYSTEM/FILE rules, idempotent retries."""

from __future__ import annotations

import json

import pytest

from conversations.models import Conversation, Participant
from messaging.models import Message
from tests.helpers import snapshot

pytestmark = pytest.mark.django_db


def messages_url(conversation) -> str:
    return f"/api/conversations/{conversation.pk}/messages"


def test_send_returns_the_seed_shape(donor, conversation):
    response = donor.post(messages_url(conversation), {"content": "Where is my receipt?"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "messageId",
        "conversationId",
        "senderId",
        "senderRole",
        "senderName",
        "content",
        "messageType",
        "readBy",
        "metadata",
        "clientMessageId",
        "createdAt",
        "updatedAt",
        # issue 15
        "editedAt",
        "deletedAt",
        "reactions",
        "replyTo",
    }
    assert body["messageId"].startswith("msg_")
    assert (body["conversationId"], body["senderId"], body["senderRole"]) == (conversation.pk, "u1", "USER")
    assert (body["content"], body["messageType"], body["readBy"], body["metadata"]) == (
        "Where is my receipt?",
        "TEXT",
        [],
        {},
    )
    stored = Message.objects.get(pk=body["messageId"])
    assert stored.seq == 1
    fresh = Conversation.objects.get(pk=conversation.pk)
    assert fresh.last_seq == 1 and fresh.updated_at == stored.created_at


def test_file_message_with_url_and_name(donor, conversation):
    metadata = {"url": "https://files.example.org/receipt.pdf", "name": "receipt.pdf", "size": 1234}
    response = donor.post(
        messages_url(conversation), {"content": "receipt", "messageType": "FILE", "metadata": metadata}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["metadata"] == metadata


def test_control_characters_are_stripped_but_newlines_and_tabs_kept(donor, conversation):
    response = donor.post(messages_url(conversation), {"content": "a\x00b\x07c\r\n\td\x7f\x85e"}, format="json")
    assert response.json()["content"] == "abc\n\tde"


def test_content_limit_is_configurable(donor, conversation, settings):
    settings.CHAT = {**settings.CHAT, "MAX_MESSAGE_LENGTH": 5}
    assert donor.post(messages_url(conversation), {"content": "12345"}, format="json").status_code == 201
    response = donor.post(messages_url(conversation), {"content": "123456"}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "content_too_long")


FILE_URL = "https://files.example.org/a.pdf"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, "required"),
        ({"content": None}, "null"),
        ({"content": 42}, "not_a_string"),
        ({"content": ["hi"]}, "not_a_string"),
        ({"content": ""}, "blank"),
        ({"content": "  \n\t "}, "blank"),
        ({"content": "\x00\x01"}, "blank"),
        ({"content": "x" * 10_001}, "content_too_long"),
        ({"content": "hi", "messageType": "VIDEO"}, "invalid_choice"),
        ({"content": "hi", "messageType": "FILE"}, "file_metadata_required"),
        ({"content": "hi", "messageType": "FILE", "metadata": {"name": "a.pdf"}}, "file_metadata_required"),
        ({"content": "hi", "messageType": "FILE", "metadata": {"url": FILE_URL}}, "file_metadata_required"),
        (
            {"content": "hi", "messageType": "FILE", "metadata": {"url": FILE_URL, "name": " "}},
            "file_metadata_required",
        ),
        (
            {"content": "hi", "messageType": "FILE", "metadata": {"url": "javascript:alert(1)", "name": "a"}},
            "file_metadata_required",
        ),
        (
            {"content": "hi", "messageType": "FILE", "metadata": {"url": "ftp://x.org/a", "name": "a"}},
            "file_metadata_required",
        ),
        ({"content": "hi", "metadata": "x"}, "metadata_not_object"),
        ({"content": "hi", "metadata": [1, 2]}, "metadata_not_object"),
        ({"content": "hi", "metadata": {"k": "x" * 8192}}, "metadata_too_large"),
        # Numbers outside what browsers, msgpack and BSON all carry exactly: used to be stored.
        ({"content": "hi", "metadata": {"n": 1180591620717411303424}}, "metadata_number_out_of_range"),
        ({"content": "hi", "metadata": {"a": [1, {"n": -(2**63)}]}}, "metadata_number_out_of_range"),
        ({"content": "hi", "metadata": {"f": 1e300}}, "metadata_number_out_of_range"),
        ({"content": "hi", "clientMessageId": "x" * 65}, "max_length"),
        ({"content": "hi", "clientMessageId": 5}, "not_a_string"),
    ],
)
def test_bad_message_is_refused_and_nothing_is_stored(donor, conversation, payload, code):
    before = snapshot(conversation)
    response = donor.post(messages_url(conversation), payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code
    assert body["detail"]  # a sentence a person can read
    assert snapshot(conversation) == before


def test_numbers_up_to_2_to_the_53_are_stored_as_sent(donor, conversation):
    metadata = {"max": 2**53, "min": -(2**53), "pi": 3.25, "flag": True}
    response = donor.post(messages_url(conversation), {"content": "hi", "metadata": metadata}, format="json")
    assert (response.status_code, response.json()["metadata"]) == (201, metadata)


def test_invalid_json_and_wrong_content_type_are_refused(donor, conversation):
    before = snapshot(conversation)
    response = donor.post(messages_url(conversation), '{"content": "hi"', content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "parse_error")
    response = donor.post(messages_url(conversation), "[]", content_type="application/json")
    assert response.status_code == 400
    response = donor.post(messages_url(conversation), "content=hi", content_type="text/plain")
    assert (response.status_code, response.json()["code"]) == (415, "unsupported_media_type")
    assert snapshot(conversation) == before


def test_system_message_from_a_user_is_forbidden(donor, conversation):
    before = snapshot(conversation)
    response = donor.post(messages_url(conversation), {"content": "I am staff", "messageType": "SYSTEM"}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "system_message_forbidden")
    assert snapshot(conversation) == before


def test_admin_may_send_system_messages_and_joins_by_writing(agent, conversation):
    response = agent.post(messages_url(conversation), {"content": "Note", "messageType": "SYSTEM"}, format="json")
    assert response.status_code == 201
    assert Participant.objects.get(conversation=conversation, user_id="agent1").role == "ADMIN"


@pytest.mark.parametrize("status", ["CLOSED", "ARCHIVED"])
def test_sending_to_a_closed_conversation_is_409(donor, agent, conversation, status):
    """Staff cannot write in a closed or archived conversation; a donor can only in a CLOSED one, which
    their message reopens (tests/test_desk.py), never in an archived one."""
    agent.put(f"/api/conversations/{conversation.pk}", {"status": status}, format="json")
    before = snapshot(conversation)
    for client in (donor, agent) if status == "ARCHIVED" else (agent,):
        response = client.post(messages_url(conversation), {"content": "hello?"}, format="json")
        assert response.status_code == 409
        assert response.json() == {
            "detail": "The conversation is not active; messages can no longer be sent.",
            "code": "conversation_closed",
        }
    assert snapshot(conversation) == before


def test_retried_send_with_client_message_id_returns_the_original(donor, conversation):
    payload = {"content": "once", "clientMessageId": "c-123"}
    first = donor.post(messages_url(conversation), payload, format="json")
    again = donor.post(messages_url(conversation), payload, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["messageId"] == first.json()["messageId"]
    assert again.json()["clientMessageId"] == "c-123"
    assert Message.objects.filter(conversation=conversation).count() == 1
    assert Conversation.objects.get(pk=conversation.pk).last_seq == 1


def test_client_message_id_reused_for_another_message_is_409(donor, conversation):
    donor.post(messages_url(conversation), {"content": "first", "clientMessageId": "k"}, format="json")
    before = snapshot(conversation)
    response = donor.post(messages_url(conversation), {"content": "second", "clientMessageId": "k"}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "idempotency_key_reused")
    assert snapshot(conversation) == before


def test_client_message_id_is_scoped_to_the_sender(donor, agent, conversation):
    donor.post(messages_url(conversation), {"content": "a", "clientMessageId": "same"}, format="json")
    response = agent.post(messages_url(conversation), {"content": "b", "clientMessageId": "same"}, format="json")
    assert response.status_code == 201
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_unknown_conversation_is_404(donor):
    response = donor.post("/api/conversations/conv_nope/messages", {"content": "hi"}, format="json")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert Message.objects.count() == 0


def test_text_that_no_database_can_store_is_cleaned(donor, conversation):
    payload = {"content": "ok\ud800", "metadata": {"k\u0000": "v\u0000\ud800", "nested": [{"x": "\u0007y"}]}}
    # json.dumps escapes the lone surrogate (\\ud800) as a client would send it.
    response = donor.post(messages_url(conversation), json.dumps(payload), content_type="application/json")
    assert response.status_code == 201
    assert (response.json()["content"], response.json()["metadata"]) == ("ok", {"k": "v", "nested": [{"x": "y"}]})


def test_deeply_nested_input_is_refused(donor, conversation):
    before = snapshot(conversation)
    body = '{"content": "x", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = donor.post(messages_url(conversation), body, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "parse_error")
    nested: dict = {}
    for _ in range(20):
        nested = {"n": nested}
    response = donor.post(messages_url(conversation), {"content": "x", "metadata": nested}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "metadata_too_deep")
    assert snapshot(conversation) == before


def test_ids_that_cannot_exist_are_404_json(donor):
    for path in ("/api/conversations/a%00b", "/api/conversations/a%00b/messages", "/api/nothing"):
        response = donor.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found.", "code": "not_found"}
