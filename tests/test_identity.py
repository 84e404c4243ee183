"""A person is a subject *and* a role. A donor whose id equals a staff member's is someone else, and
console staff can never collide with Auth Service subjects (they act as `staff:<username>`, or as the
subject an operator linked them to)."""

from __future__ import annotations

import importlib
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from chatservice.authentication import Principal
from conversations import services as conversation_services
from conversations.models import Conversation, Participant
from identity.models import StaffSubject
from messaging.models import Message
from tests.helpers import send
from tests.test_realtime import close_code, connect

CAROL = Principal("carol", "USER")
AGENT_Y = Principal("agent-y", "ADMIN")


@pytest.fixture
def carols(db) -> Conversation:
    """carol's conversation, assigned to the staff member agent-y, with a message from each."""
    conversation = conversation_services.conversation_create(creator=CAROL, subject="Refund")
    conversation_services.conversation_assign(conversation=conversation, actor=AGENT_Y, admin_id="agent-y")
    send(conversation, "my card number is private", sender=CAROL)
    send(conversation, "let me check", sender=AGENT_Y)
    return conversation


def base(conversation: Conversation) -> str:
    return f"/api/conversations/{conversation.pk}"


def test_a_donor_with_a_staff_members_id_gets_nothing_of_theirs(carols, client_for):
    """The access rules compared ids only: a USER token with sub=agent-y read, wrote and listed carol's
    conversation, assigned to the staff member agent-y."""
    impostor = client_for("agent-y", "USER")
    before = (Message.objects.count(), Participant.objects.count())
    assert impostor.get("/api/conversations").json()["results"] == []
    for method, path, body in [
        ("get", base(carols), None),
        ("get", f"{base(carols)}/messages", None),
        ("post", f"{base(carols)}/messages", {"content": "as agent-y"}),
        ("put", f"{base(carols)}/read", {}),
        ("put", base(carols), {"subject": "mine now"}),
        ("patch", base(carols), {"status": "CLOSED"}),
    ]:
        response = getattr(impostor, method)(path, body, format="json")
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), (method, path)
    assert impostor.post(f"{base(carols)}/assign", {}, format="json").status_code == 403
    assert (Message.objects.count(), Participant.objects.count()) == before
    assert Conversation.objects.get(pk=carols.pk).subject == "Refund"


def test_staff_assigned_to_me_never_lists_a_donors_own_conversation_with_the_same_id(db, client_for):
    conversation_services.conversation_create(creator=Principal("agent-y", "USER"), subject="as a donor")
    staff = client_for("agent-y", "ADMIN")
    assert staff.get("/api/conversations?assigned=me").json()["results"] == []


def test_reads_and_unread_counts_are_per_person(carols, client_for):
    """A donor's watermark and a staff member's with the same id are two watermarks."""
    donor_y = conversation_services.conversation_create(creator=Principal("agent-y", "USER"))
    send(donor_y, "hello", sender=Principal("agent-y", "USER"))
    staff = client_for("agent-y", "ADMIN")
    assert staff.put(f"{base(carols)}/read", {}, format="json").json()["unreadCount"] == 0
    participant = Participant.objects.get(conversation=carols, user_id="agent-y")
    assert (participant.role, participant.last_read_seq) == ("ADMIN", carols.last_seq + 2)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_donor_with_a_staff_members_id_cannot_open_their_socket(make_token):
    conversation = await sync_to_async(conversation_services.conversation_create)(creator=CAROL)
    await sync_to_async(conversation_services.conversation_assign)(
        conversation=conversation, actor=AGENT_Y, admin_id="agent-y"
    )
    assert await close_code(conversation.pk, make_token("agent-y", "USER")) == 4403
    staff = await connect(conversation.pk, make_token("agent-y", "ADMIN"))  # the real one still can
    await staff.assert_alive_and_quiet()
    await staff.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_typing_of_a_donor_reaches_a_staff_member_with_the_same_id(make_token):
    """Frames were not echoed to anyone with the typist's id: a staff member sharing it was left out."""
    conversation = await sync_to_async(conversation_services.conversation_create)(creator=Principal("x1", "USER"))
    donor = await connect(conversation.pk, make_token("x1", "USER"))
    staff = await connect(conversation.pk, make_token("x1", "ADMIN"))
    await donor.expect("user_joined")
    await donor.send({"type": "typing", "isTyping": True})
    assert await staff.receive() == {"type": "typing_start", "userId": "x1"}
    await donor.close()
    await staff.close()


def test_tokens_may_not_take_the_console_namespace(client_for):
    response = client_for("staff:maria", "ADMIN").get("/api/conversations")
    assert (response.status_code, response.json()["code"]) == (401, "token_invalid")


def staff_session(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.create_user(username, password="pw-123456", is_staff=True))
    return client


def test_a_console_account_named_like_a_donor_is_not_that_donor(carols, client_for):
    """Console staff acted under their Django username: a donor whose Auth Service id was `maria` listed
    every conversation the staff user `maria` had opened."""
    maria = staff_session("maria")
    conversation_services.conversation_assign(
        conversation=carols, actor=Principal("staff:maria", "ADMIN"), admin_id="staff:maria"
    )
    listed = maria.get("/api/conversations?assigned=me").json()["results"]
    assert [c["conversationId"] for c in listed] == [carols.pk]
    assert client_for("maria", "USER").get("/api/conversations").json()["results"] == []
    assert client_for("maria", "ADMIN").get("/api/conversations?assigned=me").json()["results"] == []


def test_linking_makes_console_and_token_one_identity_and_moves_the_history(carols, client_for):
    maria = staff_session("maria")
    conversation_services.conversation_assign(
        conversation=carols, actor=Principal("staff:maria", "ADMIN"), admin_id="staff:maria"
    )
    send(carols, "from the console", sender=Principal("staff:maria", "ADMIN"))
    out = StringIO()
    call_command("link_staff_subject", "maria", "agent-m", stdout=out)
    assert "maria now acts as agent-m: moved 1 participations" in out.getvalue()
    assert StaffSubject.objects.get(user__username="maria").subject == "agent-m"
    listed = client_for("agent-m", "ADMIN").get("/api/conversations?assigned=me").json()["results"]
    assert [c["conversationId"] for c in listed] == [carols.pk]
    assert [c["conversationId"] for c in maria.get("/api/conversations?assigned=me").json()["results"]] == [carols.pk]
    assert Message.objects.filter(sender_id="agent-m", content="from the console").exists()
    notice = Message.objects.get(conversation=carols, metadata__event="assigned", metadata__adminId="agent-m")
    assert notice.content == "Support joined the conversation"  # a display name: no id to move
    assert not Participant.objects.filter(user_id="staff:maria").exists()

    call_command("link_staff_subject", "maria", "--unlink", stdout=StringIO())
    assert maria.get("/api/conversations?assigned=me").json()["results"] == []  # staff:maria again


def test_a_subject_links_to_one_account_only(db):
    for name in ("maria", "john"):
        User.objects.create_user(name, password="pw-123456", is_staff=True)
    call_command("link_staff_subject", "maria", "agent-m", stdout=StringIO())
    with pytest.raises(Exception, match="already linked to another account"):
        call_command("link_staff_subject", "john", "agent-m", stdout=StringIO())
    with pytest.raises(Exception, match="never start with"):
        call_command("link_staff_subject", "john", "staff:x", stdout=StringIO())


def test_the_link_is_a_field_on_the_staff_users_admin_page(db):
    admin = User.objects.create_superuser("root", password="pw-123456")
    maria = User.objects.create_user("maria", password="pw-123456", is_staff=True)
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/auth/user/{maria.pk}/change/")
    assert b"Auth Service subject" in page.content
    form = page.context["adminform"].form
    data = {key: value for key, value in form.initial.items() if value is not None and key != "password"}
    data.update(
        {
            "date_joined_0": maria.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": maria.date_joined.strftime("%H:%M:%S"),
            "chat_subject-TOTAL_FORMS": "1",
            "chat_subject-INITIAL_FORMS": "0",
            "chat_subject-MIN_NUM_FORMS": "0",
            "chat_subject-MAX_NUM_FORMS": "1",
            "chat_subject-0-subject": "agent-m",
            "chat_subject-0-user": str(maria.pk),
        }
    )
    response = client.post(f"/admin/auth/user/{maria.pk}/change/", data)
    assert response.status_code == 302, response.content[:2000]
    assert StaffSubject.objects.get(user=maria).subject == "agent-m"


def test_the_migration_moves_console_history_to_the_staff_namespace(db):
    """Before the namespace, console staff wrote as their bare username; the data migration moves it."""
    User.objects.create_user("maria", password="pw-123456", is_staff=True)
    conversation = conversation_services.conversation_create(creator=CAROL)
    old = Principal("maria", "ADMIN")
    conversation_services.conversation_assign(conversation=conversation, actor=old, admin_id="maria")
    send(conversation, "hello from the console", sender=old)
    donor_maria = conversation_services.conversation_create(creator=Principal("maria", "USER"))  # untouched
    migration = importlib.import_module("identity.migrations.0002_namespace_console_staff")
    migration.namespace_console_staff(apps, None)
    assert Participant.objects.get(conversation=conversation, role="ADMIN").user_id == "staff:maria"
    assert Message.objects.get(content="hello from the console").sender_id == "staff:maria"
    notice = Message.objects.get(conversation=conversation, message_type="SYSTEM")
    assert (notice.content, notice.metadata["adminId"]) == ("Support joined the conversation", "staff:maria")
    assert Participant.objects.get(conversation=donor_maria).user_id == "maria"  # a donor's id stays
