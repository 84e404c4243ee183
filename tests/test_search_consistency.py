"""The search index follows every way a message's text changes, through the real services: send, edit,
delete (tombstone), erasure and retention purging. After each step, what a search finds is exactly what a
scan of the stored messages says it should, for staff and for the donor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from conversations import services as conversation_services
from conversations.models import Conversation
from conversations.services import user_erase
from messaging import edits
from messaging.models import Message
from retention.services import conversations_purge
from search import rules
from tests.helpers import ADMIN, USER, send
from tests.test_search import STRANGER, found

pytestmark = pytest.mark.django_db

WORDS = ("refund", "receipt", "card", "bank")


def expected(word: str, *, staff: bool, donor: str = "u1") -> set[str]:
    """What a search for `word` should find, from the messages as stored."""
    rows = Message.objects.filter(rules.searchable())
    if not staff:
        rows = rows.exclude(message_type="NOTE").filter(
            conversation__participants__user_id=donor, conversation__participants__role="USER"
        )
    return {m.pk for m in rows if word in m.content.lower().split()}


def assert_consistent(agent, donor) -> None:
    for word in WORDS:
        assert set(found(agent, word, limit=50)) == expected(word, staff=True), word
        assert set(found(donor, word, limit=50)) == expected(word, staff=False), word
    if connection.vendor == "sqlite":  # the application's own index holds exactly the searchable messages
        with connection.cursor() as cursor:
            cursor.execute("SELECT message_id FROM search_message_doc")
            indexed = {row[0] for row in cursor.fetchall()}
        assert indexed == set(Message.objects.filter(rules.searchable()).values_list("id", flat=True))


def test_the_index_stays_consistent_through_edits_deletions_erasure_and_purging(agent, donor, conversation):
    conversation_services.participant_join(conversation=conversation, principal=ADMIN)
    other = conversation_services.conversation_create(creator=STRANGER, subject="theirs")
    first = send(conversation, "refund to my card")
    second = send(conversation, "receipt for the refund")
    send(conversation, "bank refund checked", sender=ADMIN, message_type="NOTE")
    send(conversation, "refund sent to your bank", sender=ADMIN)
    send(other, "refund please, card lost", sender=STRANGER)
    assert_consistent(agent, donor)

    edits.message_edit(conversation=conversation, editor=USER, message_id=first.pk, content="receipt to my bank")
    assert_consistent(agent, donor)
    assert first.pk not in found(agent, "refund") and first.pk in found(agent, "bank")

    edits.message_delete(conversation=conversation, actor=ADMIN, message_id=second.pk)
    assert_consistent(agent, donor)
    assert second.pk not in found(agent, "receipt")

    user_erase(user_id=STRANGER.user_id, role=STRANGER.role)
    assert_consistent(agent, donor)

    conversation_services.conversation_update(conversation=conversation, actor=ADMIN, status="ARCHIVED")
    old = timezone.now() - timedelta(days=40)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=old, last_message_at=old)
    assert conversations_purge(days=30).purged == [conversation.pk]
    assert_consistent(agent, donor)
    assert found(agent, "refund") == []
