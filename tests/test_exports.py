"""Data portability (GET /api/me/export, manage.py export_user) and staff transcripts: what is in them,
what never is (notes, other people's conversations), and the audit records they leave."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from audit.models import AuditRecord
from chatservice.authentication import Principal
from conversations import services as conversation_services
from conversations.models import Conversation
from csat.services import csat_submit
from tests.helpers import ADMIN, USER, send

pytestmark = pytest.mark.django_db


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def history(conversation) -> Conversation:
    """A conversation with a reply, a note, an edit, a deletion and a rating."""
    conversation_services.participant_join(conversation=conversation, principal=ADMIN)
    send(conversation, "Where is my receipt?")
    send(conversation, "Here it is", sender=ADMIN)
    send(conversation, "internal: donor is a VIP", sender=ADMIN, message_type="NOTE")
    gone = send(conversation, "oops, wrong chat")
    from messaging.edits import message_delete

    message_delete(conversation=conversation, actor=USER, message_id=gone.pk)
    conversation_services.conversation_update(conversation=conversation, actor=USER, status="CLOSED")
    csat_submit(conversation=Conversation.objects.get(pk=conversation.pk), donor=USER, rating=5, comment="quick")
    return conversation


def test_a_donor_exports_their_conversations_without_notes(donor, history):
    someone = Principal("u2", "USER")
    other = conversation_services.conversation_create(creator=someone, subject="not mine")
    send(other, "someone else's words", sender=someone)
    response = donor.get("/api/me/export")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"] and response["Cache-Control"] == "no-store"
    raw = body(response).decode()
    export = json.loads(raw)
    assert export["user"] == {"userId": "u1", "role": "USER"} and export["format"] == 1
    (conversation,) = export["conversations"]
    assert conversation["conversationId"] == history.pk and conversation["status"] == "CLOSED"
    texts = [m["content"] for m in conversation["messages"]]
    assert "Where is my receipt?" in texts and "Here it is" in texts
    assert "internal: donor is a VIP" not in raw and "NOTE" not in raw  # never notes
    assert "someone else's words" not in raw and "oops, wrong chat" not in raw  # tombstones stay empty
    assert [r["rating"] for r in conversation["ratings"]] == [5]
    assert conversation["readState"]["unreadCount"] == 0 and conversation["readState"]["lastReadAt"]
    assert not AuditRecord.objects.filter(action="user.export").exists()  # a donor's own export


def test_staff_export_is_recorded_and_leaves_notes_out(agent, history):
    raw = body(agent.get("/api/me/export")).decode()
    (conversation,) = json.loads(raw)["conversations"]
    assert "internal: donor is a VIP" not in raw and len(conversation["messages"]) == 4  # incl. SYSTEM, tombstone
    (record,) = AuditRecord.objects.filter(action="user.export")
    assert (record.actor_id, record.target_id) == ("agent1", "ADMIN:agent1")


def test_attachments_come_as_signed_links_that_work_without_a_token(donor, history, client):
    from tests.test_attachments import png, upload

    history.status = "ACTIVE"
    Conversation.objects.filter(pk=history.pk).update(status="ACTIVE")
    uploaded = upload(donor, history.pk, png(), "receipt.png", "image/png").json()
    send(history, "receipt", message_type="FILE", metadata={"attachmentId": uploaded["attachmentId"]})
    (conversation,) = json.loads(body(donor.get("/api/me/export")).decode())["conversations"]
    (attachment,) = conversation["attachments"]
    assert attachment["attachmentId"] == uploaded["attachmentId"] and "sig=" in attachment["url"]
    response = client.get(attachment["url"].replace("http://testserver", ""))
    assert response.status_code == 200


def test_the_command_writes_the_same_document_and_is_audited(history, tmp_path):
    out = tmp_path / "export.json"
    call_command("export_user", "--user", "u1", "--role", "USER", "--output", str(out), stderr=StringIO())
    export = json.loads(out.read_text())
    assert [c["conversationId"] for c in export["conversations"]] == [history.pk]
    assert "internal: donor is a VIP" not in out.read_text()
    (record,) = AuditRecord.objects.filter(action="user.export")
    assert record.actor_role == "OPERATOR" and record.details["operator"]["command"] == "export_user"
    stdout = StringIO()
    call_command("export_user", "--user", "nobody", stdout=stdout)
    assert json.loads(stdout.getvalue())["conversations"] == []


def test_staff_download_transcripts_with_notes_only_when_asked(agent, donor, history):
    url = f"/api/conversations/{history.pk}/transcript"
    text = agent.get(url)
    assert text.status_code == 200 and text["Content-Type"].startswith("text/plain")
    assert f'filename="{history.pk}.txt"' in text["Content-Disposition"]
    lines = body(text).decode()
    assert "u1 (donor): Where is my receipt?" in lines
    assert "(support): Here it is" in lines and "agent1" not in lines.split("\n\n", 1)[1].replace("(support)", "")
    assert "(message deleted)" in lines and "oops" not in lines and "VIP" not in lines
    with_notes = body(agent.get(url + "?notes=true")).decode()
    assert "[internal note]: internal: donor is a VIP" in with_notes and "do not forward" in with_notes
    as_json = json.loads(body(agent.get(url + "?type=json")).decode())
    assert as_json["conversation"]["conversationId"] == history.pk and as_json["includesNotes"] is False
    assert all(m["messageType"] != "NOTE" for m in as_json["messages"])
    records = AuditRecord.objects.filter(action="conversation.export").order_by("seq")
    assert [(r.target_id, r.details) for r in records] == [
        (history.pk, {"format": "text", "notes": False}),
        (history.pk, {"format": "text", "notes": True}),
        (history.pk, {"format": "json", "notes": False}),
    ]


@pytest.mark.parametrize(
    ("who", "query", "status", "code"),
    [
        ("donor", "", 403, "admin_only"),
        ("agent", "?type=pdf", 400, "invalid_choice"),
        ("agent", "?notes=maybe", 400, "invalid"),
    ],
)
def test_bad_transcript_requests_are_refused_and_not_recorded(request, history, who, query, status, code):
    client = request.getfixturevalue(who)
    response = client.get(f"/api/conversations/{history.pk}/transcript{query}")
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert not AuditRecord.objects.filter(action="conversation.export").exists()


def test_a_transcript_of_an_unknown_conversation_is_404(agent):
    response = agent.get("/api/conversations/conv_NOPE/transcript")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
