"""The support console in Django admin: the conversation list as an inbox, the assign-to-staff action,
the standard action flow, and the live conversation page (server side; the browser test drives it)."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.contrib.staticfiles import finders
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chatservice.authentication import Principal
from conversations import services
from conversations.models import Conversation, Participant
from messaging.models import Message
from tests.helpers import ADMIN, USER, send

MARIA = Principal("staff:maria", "ADMIN")  # what the console account "maria" acts as

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/conversations/conversation/"


def staff_client(username: str) -> Client:
    client = Client()
    client.force_login(
        User.objects.create_user(
            username, password="pw-123456", is_staff=True, is_superuser=True, first_name=username.capitalize()
        )
    )
    return client


@pytest.fixture
def maria() -> Client:
    return staff_client("maria")


@pytest.fixture
def john() -> Client:
    return staff_client("john")


def cell(html: str, row_id: str, column: str) -> str:
    """The inner HTML of one changelist cell: the row is found by its checkbox value (the pk)."""
    row = re.search(rf'<tr>(?:(?!</tr>).)*value="{re.escape(row_id)}"(?:(?!</tr>).)*</tr>', html, re.S)
    assert row, f"no row for {row_id}"
    found = re.search(rf'<t[dh] class="field-{column}[^"]*"[^>]*>(.*?)</t[dh]>', row.group(0), re.S)
    assert found, f"no {column} cell"
    return found.group(1).strip()


def test_inbox_shows_latest_message_escaped_and_unread_per_viewing_staff_member(maria, john, conversation):
    send(conversation, "first")
    services.conversation_assign(conversation=conversation, actor=MARIA, admin_id="staff:maria")
    services.participant_mark_read(conversation=conversation, reader=MARIA)
    send(conversation, "second")
    send(conversation, "<b>bold</b> " + "x" * 200)  # markup and too long for the list

    page = maria.get(CHANGELIST)
    html = page.content.decode()
    assert cell(html, conversation.pk, "title").endswith("Refund · u1</a>")  # the subject and the donor
    assert cell(html, conversation.pk, "status") == "Active"
    assert cell(html, conversation.pk, "assigned_admins") == "Maria"  # display names
    # the two after her watermark, and how long the donor has waited for an answer
    assert cell(html, conversation.pk, "unread").startswith("<strong>2</strong> waiting")
    preview = cell(html, conversation.pk, "last_message")
    assert preview.startswith("u1: &lt;b&gt;bold&lt;/b&gt; xxx") and preview.endswith("…")
    assert len(preview.replace("&lt;", "<").replace("&gt;", ">")) == len("u1: ") + 80
    assert "<b>bold</b>" not in html
    assert cell(html, conversation.pk, "activity") != "-"

    # john does not take part: no count of his, but the donor waiting for an answer shows
    assert cell(john.get(CHANGELIST).content.decode(), conversation.pk, "unread").startswith("waiting")
    # maria reads and answers: nothing to do
    services.participant_mark_read(conversation=conversation, reader=MARIA)
    send(conversation, "answered", sender=MARIA)
    assert cell(maria.get(CHANGELIST).content.decode(), conversation.pk, "unread") == "0"
    assert cell(john.get(CHANGELIST).content.decode(), conversation.pk, "unread") == "—"


def test_inbox_lists_newest_activity_first_and_empty_conversations_have_no_preview(maria, conversation, donor):
    newer = Conversation.objects.get(
        pk=donor.post("/api/conversations", {"subject": "Newer"}, format="json").json()["conversationId"]
    )
    page = maria.get(CHANGELIST)
    assert [c.pk for c in page.context["cl"].result_list] == [newer.pk, conversation.pk]
    assert cell(page.content.decode(), newer.pk, "last_message") == "—"
    send(conversation, "bump")  # a message is activity: the older conversation moves to the top
    assert [c.pk for c in maria.get(CHANGELIST).context["cl"].result_list] == [conversation.pk, newer.pk]


def changelist_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(CHANGELIST).status_code == 200
    return len(queries)


def test_changelist_query_count_does_not_grow_with_the_page(maria, django_assert_max_num_queries):
    def open_conversations(n: int) -> None:
        for i in range(n):
            c = services.conversation_create(creator=USER, subject=f"c{i}")
            send(c, f"hello {i}")
            services.conversation_assign(conversation=c, actor=ADMIN, admin_id="staff:maria")

    open_conversations(2)
    few = changelist_queries(maria)
    open_conversations(12)
    many = changelist_queries(maria)
    assert many == few
    with django_assert_max_num_queries(few):
        assert len(maria.get(CHANGELIST).context["cl"].result_list) == 14


def test_action_bar_offers_active_staff_only(maria, conversation):
    staff_client("john")
    User.objects.create_user("bob", password="pw-123456")  # not staff
    User.objects.create_user("gone", password="pw-123456", is_staff=True, is_active=False)
    html = maria.get(CHANGELIST).content.decode()
    assert '<select name="assignee">' in html
    assert '<option value="john">john</option>' in html and '<option value="maria">maria</option>' in html
    assert 'value="bob"' not in html and 'value="gone"' not in html
    assert '<option value="assign_to_staff">' in html


def test_assign_to_another_staff_member_records_a_system_message(
    maria, john, conversation, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = maria.post(
            CHANGELIST, {"action": "assign_to_staff", "assignee": "john", "_selected_action": [conversation.pk]}
        )
    assert response.status_code == 302  # the standard flow: straight back to the list
    assert Participant.objects.get(conversation=conversation, user_id="staff:john").role == "ADMIN"
    assert not Participant.objects.filter(conversation=conversation, user_id="staff:maria").exists()
    notice = Message.objects.get(conversation=conversation)
    assert (notice.message_type, notice.sender_id, notice.content) == (
        "SYSTEM",
        "staff:maria",
        "John was assigned by Maria",  # display names (first names), never usernames
    )
    # announced to the conversation's sockets once committed
    assert notice.pk in repr([callback.args for callback in callbacks if hasattr(callback, "args")])
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["1 conversation(s) assigned to staff:john."]
    assert Conversation.objects.get(pk=conversation.pk).admin_count == 1


@pytest.mark.parametrize(
    ("assignee", "error"),
    [
        ("bob", "bob is not an active staff member; nothing was changed."),
        ("nobody", "nobody is not an active staff member; nothing was changed."),
        ("", "Choose the staff member to assign to; nothing was changed."),
    ],
)
def test_assign_to_staff_refuses_anyone_but_active_staff(maria, conversation, assignee, error):
    User.objects.create_user("bob", password="pw-123456")
    before = (Message.objects.count(), list(Participant.objects.values_list("user_id", flat=True)))
    response = maria.post(
        CHANGELIST, {"action": "assign_to_staff", "assignee": assignee, "_selected_action": [conversation.pk]}
    )
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [error]
    assert (Message.objects.count(), list(Participant.objects.values_list("user_id", flat=True))) == before
    assert Conversation.objects.get(pk=conversation.pk).admin_count == 0


def test_a_staff_account_named_like_the_donor_is_another_person(conversation):
    """A console account whose username is the donor's id used to be the donor: same id, and the access
    rules compared ids only. Now it acts as staff:u1, and assigning it makes a second participant."""
    client = staff_client("u1")
    response = client.post(
        CHANGELIST, {"action": "assign_to_staff", "assignee": "u1", "_selected_action": [conversation.pk]}
    )
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["1 conversation(s) assigned to staff:u1."]
    assert set(Participant.objects.filter(conversation=conversation).values_list("user_id", "role")) == {
        ("u1", "USER"),
        ("staff:u1", "ADMIN"),
    }


def test_close_and_reopen_through_the_standard_action_flow(maria, conversation, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = maria.post(CHANGELIST, {"action": "close", "index": "0", "_selected_action": [conversation.pk]})
    assert response.status_code == 302 and response["Location"] == CHANGELIST  # no confirmation page
    assert Conversation.objects.get(pk=conversation.pk).status == "CLOSED"
    closed = Message.objects.get(conversation=conversation)
    assert closed.content == "Conversation closed by Maria" and closed.metadata["status"] == "CLOSED"
    assert closed.pk in repr([callback.args for callback in callbacks if hasattr(callback, "args")])

    response = maria.post(CHANGELIST, {"action": "reopen", "index": "0", "_selected_action": [conversation.pk]})
    assert response.status_code == 302
    assert Conversation.objects.get(pk=conversation.pk).status == "ACTIVE"
    assert list(
        Message.objects.filter(conversation=conversation).order_by("seq").values_list("content", flat=True)
    ) == [
        "Conversation closed by Maria",
        "Conversation reopened by Maria",
    ]
    assert maria.get(CHANGELIST + "?status__exact=ACTIVE").context["cl"].result_count == 1


def test_a_conversation_page_opens_it_in_the_workspace(maria, conversation):
    response = maria.get(f"{CHANGELIST}{conversation.pk}/change/")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/desk/?c={conversation.pk}"
    # the admin's own links escape the key ("_" is "_5F"): the workspace still gets the id
    escaped = maria.get(f"{CHANGELIST}{conversation.pk.replace('_', '_5F')}/change/")
    assert escaped["Location"] == f"/admin/desk/?c={conversation.pk}"


def test_the_workspace_page_carries_no_token_and_escapes_nothing_into_html(maria, conversation):
    send(conversation, "<img src=x onerror=alert(1)> & more")
    page = maria.get(f"/admin/desk/?c={conversation.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<img src=x" not in html  # messages are loaded by workspace.js and shown as text
    assert "/static/desk/workspace.js" in html and "/static/desk/workspace.css" in html
    config = json.loads(re.search(r'<script id="desk-config" type="application/json">(.*?)</script>', html).group(1))
    assert config["userId"] == "staff:maria" and config["initial"] == conversation.pk
    assert config["inboxPath"] == "/ws/inbox"
    assert not {key for key in config if key.lower().endswith("token")} - {"csrfToken"}  # no bearer token


def test_the_workspace_offers_the_edit_window_and_reactions_the_server_enforces(maria, settings):
    settings.CHAT = {**settings.CHAT, "EDIT_WINDOW_S": 120.0, "REACTIONS": ("👍", "🎉")}
    html = maria.get("/admin/desk/").content.decode()
    config = json.loads(re.search(r'<script id="desk-config" type="application/json">(.*?)</script>', html).group(1))
    assert (config["editWindowS"], config["reactions"]) == (120, ["👍", "🎉"])


def test_workspace_assets_are_served_from_the_app():
    assert finders.find("desk/workspace.js") and finders.find("desk/workspace.css")


def test_the_workspace_requires_staff(conversation):
    client = Client()
    client.force_login(User.objects.create_user("bob", password="pw-123456"))
    assert client.get("/admin/desk/").status_code == 302  # to the admin login


def test_change_page_requires_staff(conversation):
    client = Client()
    client.force_login(User.objects.create_user("bob", password="pw-123456"))
    assert client.get(f"{CHANGELIST}{conversation.pk}/change/").status_code == 302


def test_message_list_links_each_message_to_its_conversation_page(maria, conversation):
    send(conversation, "<u>hi</u>")
    html = maria.get("/admin/messaging/message/").content.decode()
    assert f'<a href="{CHANGELIST}{conversation.pk}/change/">{conversation.pk}</a>' in html
    assert "&lt;u&gt;hi&lt;/u&gt;" in html and "<u>hi</u>" not in html
