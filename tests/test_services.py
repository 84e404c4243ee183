"""Services and selectors called directly, as every transport calls them."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from chatservice.authentication import Principal
from chatservice.errors import Conflict, ConversationClosed, NotFound, PermissionDenied
from conversations import selectors, services
from conversations.models import Conversation, Participant
from messaging.models import Message
from messaging.selectors import message_page
from messaging.services import message_send
from tests.helpers import ADMIN, USER, send

pytestmark = pytest.mark.django_db


def test_messages_are_numbered_in_order_and_bump_activity(conversation):
    first, second = send(conversation, "a"), send(conversation, "b")
    assert (first.seq, second.seq) == (1, 2)
    fresh = Conversation.objects.get(pk=conversation.pk)
    assert (fresh.last_seq, fresh.last_message_at, fresh.updated_at) == (2, second.created_at, second.created_at)


def test_sending_advances_the_senders_own_watermark(conversation):
    message = send(conversation, "mine")
    participant = Participant.objects.get(conversation=conversation, user_id="u1")
    assert (participant.last_read_seq, participant.last_read_at) == (message.seq, message.created_at)


def test_closed_conversation_refuses_messages_atomically(conversation):
    services.conversation_update(conversation=conversation, actor=ADMIN, status="CLOSED")
    stale = Conversation.objects.get(pk=conversation.pk)
    stale.status = "ACTIVE"  # a caller holding an outdated copy still cannot write
    with pytest.raises(ConversationClosed):
        message_send(conversation=stale, sender=ADMIN, content="late")  # staff: a donor would reopen it
    assert list(Message.objects.values_list("message_type", flat=True)) == ["SYSTEM"]
    services.conversation_update(conversation=conversation, actor=ADMIN, status="ARCHIVED")
    with pytest.raises(ConversationClosed):
        message_send(conversation=stale, sender=USER, content="late")  # archived: read-only for everyone
    assert list(Message.objects.values_list("message_type", flat=True)) == ["SYSTEM", "SYSTEM"]


def test_system_messages_need_an_admin(conversation):
    with pytest.raises(PermissionDenied):
        message_send(conversation=conversation, sender=USER, content="x", message_type="SYSTEM")
    assert Message.objects.count() == 0


def test_idempotency_key_is_unique_in_the_database(conversation):
    message = send(conversation, "once", client_message_id="k1")
    again, created = message_send(conversation=conversation, sender=USER, content="once", client_message_id="k1")
    assert (again.pk, created) == (message.pk, False)
    with pytest.raises(Conflict):  # the same key for another message is a client bug, not a retry
        message_send(conversation=conversation, sender=USER, content="twice", client_message_id="k1")
    # The unique index, not only the pre-check, guards concurrent retries.
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(
            conversation=conversation, seq=99, sender_id="u1", sender_role="USER", content="dup", client_message_id="k1"
        )
    # Messages without a key never collide.
    send(conversation, "no key 1")
    send(conversation, "no key 2")


def test_sequence_is_unique_per_conversation(conversation):
    send(conversation, "a")
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(conversation=conversation, seq=1, sender_id="u1", sender_role="USER", content="dup")


def test_assign_rejects_non_admin_actor(conversation):
    with pytest.raises(PermissionDenied):
        services.conversation_assign(conversation=conversation, actor=USER, admin_id="u1")


def test_admin_created_conversation_is_assigned_to_its_creator(db):
    conversation = services.conversation_create(creator=ADMIN, subject="Outreach")
    assert list(conversation.participants.values_list("user_id", "role")) == [("agent1", "ADMIN")]


def test_selectors_apply_the_access_rule(conversation):
    other_user = Principal("u9", "USER")
    assert selectors.conversation_get(viewer=USER, conversation_id=conversation.pk) == conversation
    assert selectors.conversation_get(viewer=ADMIN, conversation_id=conversation.pk) == conversation
    with pytest.raises(NotFound):
        selectors.conversation_get(viewer=other_user, conversation_id=conversation.pk)
    assert list(selectors.conversation_list(viewer=other_user)) == []
    assert list(selectors.conversation_list(viewer=USER)) == [conversation]


def test_message_page_directions(conversation):
    messages = [send(conversation, f"m{i}") for i in range(6)]
    latest = message_page(conversation=conversation, limit=2)
    assert [m.content for m in latest.messages] == ["m4", "m5"]
    assert (latest.has_older, latest.has_newer) == (True, False)
    older = message_page(conversation=conversation, limit=2, before=messages[2].pk)
    assert [m.content for m in older.messages] == ["m0", "m1"]
    assert (older.has_older, older.has_newer) == (False, True)
    newer = message_page(conversation=conversation, limit=3, after=messages[1].pk)
    assert [m.content for m in newer.messages] == ["m2", "m3", "m4"]
    assert (newer.has_older, newer.has_newer) == (True, True)


def test_admin_count_follows_admin_participants(conversation):
    def count() -> int:
        return Conversation.objects.get(pk=conversation.pk).admin_count

    assert count() == 0
    services.conversation_assign(conversation=conversation, actor=ADMIN, admin_id="agent1")
    services.conversation_assign(conversation=conversation, actor=ADMIN, admin_id="agent1")
    assert count() == 1
    message_send(conversation=conversation, sender=Principal("agent2", "ADMIN"), content="joining by writing")
    assert count() == 1  # writing makes agent2 a participant, not an assignee
    services.conversation_assign(conversation=conversation, actor=ADMIN, admin_id="agent2")
    assert count() == 2
    message_send(conversation=conversation, sender=USER, content="donors do not count")
    assert count() == 2
    assert services.conversation_create(creator=ADMIN).admin_count == 1


def test_a_batch_is_stored_in_order_per_conversation_with_per_message_outcomes(conversation):
    from messaging.services import SendRequest, Sent, messages_send

    other = services.conversation_create(creator=Principal("u9", "USER"))
    closed = services.conversation_create(creator=USER)
    services.conversation_update(conversation=closed, actor=ADMIN, status="ARCHIVED")
    donor9 = Principal("u9", "USER")
    batch = [
        SendRequest(conversation.pk, USER, "a1", client_message_id="k1"),
        SendRequest(other.pk, donor9, "b1"),
        SendRequest(conversation.pk, ADMIN, "a2"),
        SendRequest(closed.pk, USER, "c1"),
        SendRequest(conversation.pk, USER, "sys", message_type="SYSTEM"),
        SendRequest(other.pk, donor9, "b2"),
        SendRequest(conversation.pk, USER, "a1", client_message_id="k1"),  # the same key twice in a batch
    ]
    results = messages_send(batch)
    assert [type(r).__name__ for r in results] == [
        "Sent",
        "Sent",
        "Sent",
        "ConversationClosed",
        "PermissionDenied",
        "Sent",
        "Sent",
    ]
    sent = [r for r in results if isinstance(r, Sent)]
    assert results[0].message.pk == results[6].message.pk and results[6].created is False
    assert [(r.message.content, r.message.seq) for r in sent[:4]] == [("a1", 1), ("b1", 1), ("a2", 2), ("b2", 2)]
    assert list(Message.objects.filter(conversation=conversation).order_by("seq").values_list("content", "seq")) == [
        ("a1", 1),
        ("a2", 2),
    ]
    assert Conversation.objects.get(pk=conversation.pk).last_seq == 2
    assert Participant.objects.get(conversation=conversation, user_id="agent1").role == "ADMIN"  # joined by writing
    assert Message.objects.filter(conversation=closed, message_type="TEXT").count() == 0


def test_created_at_never_goes_back_within_a_conversation(conversation):
    from datetime import timedelta

    future = timezone.now() + timedelta(minutes=5)  # another worker's clock ran ahead
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=future)
    message = send(conversation, "later in sequence")
    assert message.created_at == future
    assert Conversation.objects.get(pk=conversation.pk).last_message_at == future


@pytest.mark.django_db
def test_set_fields_writes_each_conversations_own_fields_only():
    first = services.conversation_create(creator=USER, subject="a")
    second = services.conversation_create(creator=USER, subject="b")
    untouched = services.conversation_create(creator=USER, subject="c")
    moment = timezone.now().replace(microsecond=0)
    Conversation.objects.set_fields(
        {
            first.pk: {"waiting_since": moment, "last_note_seq": 7},
            second.pk: {"first_response_at": moment},
        }
    )
    rows = {c.pk: c for c in Conversation.objects.all()}
    assert (rows[first.pk].waiting_since, rows[first.pk].last_note_seq, rows[first.pk].first_response_at) == (
        moment,
        7,
        None,
    )
    assert (rows[second.pk].waiting_since, rows[second.pk].first_response_at) == (None, moment)
    assert (rows[untouched.pk].waiting_since, rows[untouched.pk].first_response_at) == (None, None)
    assert rows[first.pk].subject == "a" and rows[second.pk].updated_at == second.updated_at
