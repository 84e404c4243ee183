"""Django admin for support staff: the list triages, actions go through the services."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from conversations.models import Conversation, Participant
from messaging.models import Message
from tests.helpers import send

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/conversations/conversation/"


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_user("maria", password="pw-123456", is_staff=True, is_superuser=True))
    return client


def test_changelist_shows_triage_columns_filters_and_search(staff, conversation, donor):
    other = Conversation.objects.get(
        pk=donor.post("/api/conversations", {"subject": "Other"}, format="json").json()["conversationId"]
    )
    staff.post(CHANGELIST, {"action": "assign_to_me", "_selected_action": [other.pk]})
    page = staff.get(CHANGELIST)
    assert page.status_code == 200
    for text in ("Refund", "Other", "ACTIVE", "maria", "Assigned"):
        assert text.encode() in page.content
    assert staff.get(CHANGELIST + "?assigned=no").context["cl"].result_count == 1
    assert staff.get(CHANGELIST + "?assigned=yes").context["cl"].result_count == 1
    assert staff.get(CHANGELIST + "?assigned=me").context["cl"].result_count == 1
    assert staff.get(CHANGELIST + "?status__exact=CLOSED").context["cl"].result_count == 0
    assert staff.get(CHANGELIST + "?q=u1").context["cl"].result_count == 2
    assert staff.get(CHANGELIST + f"?q={conversation.pk}").context["cl"].result_count == 1
    assert staff.get(CHANGELIST + "?q=Refund").context["cl"].result_count == 1


@pytest.mark.parametrize(("action", "status"), [("close", "CLOSED"), ("archive", "ARCHIVED")])
def test_status_actions_record_system_messages(staff, conversation, action, status):
    response = staff.post(CHANGELIST, {"action": action, "_selected_action": [conversation.pk]})
    assert response.status_code == 302  # no intermediate page
    assert Conversation.objects.get(pk=conversation.pk).status == status
    message = Message.objects.get(conversation=conversation)
    assert (message.message_type, message.sender_id, message.sender_role) == ("SYSTEM", "staff:maria", "ADMIN")


def test_reopen_and_assign_to_me(staff, conversation):
    staff.post(CHANGELIST, {"action": "close", "_selected_action": [conversation.pk]})
    staff.post(CHANGELIST, {"action": "reopen", "_selected_action": [conversation.pk]})
    staff.post(CHANGELIST, {"action": "assign_to_me", "_selected_action": [conversation.pk]})
    assert Conversation.objects.get(pk=conversation.pk).status == "ACTIVE"
    assert Participant.objects.get(conversation=conversation, user_id="staff:maria").role == "ADMIN"
    assert Message.objects.filter(conversation=conversation, message_type="SYSTEM").count() == 3


def test_messages_are_read_only_in_admin(staff, conversation):
    message = send(conversation, "hello")
    assert staff.get("/admin/messaging/message/").status_code == 200
    assert staff.get(f"/admin/messaging/message/?conversation__id__exact={conversation.pk}").status_code == 200
    assert staff.post(f"/admin/messaging/message/{message.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Message.objects.filter(pk=message.pk).exists()


def test_admin_requires_staff(conversation):
    client = Client()
    client.force_login(User.objects.create_user("bob", password="pw-123456"))
    assert client.get(CHANGELIST).status_code == 302
