"""Retention: ARCHIVED conversations older than CHAT_RETENTION_DAYS are purged to tombstones with counts;
a dry run changes nothing; every real run is audited; the schedule is on only when the setting is."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from attachments.models import Attachment
from audit.models import AuditRecord
from conversations import services as conversation_services
from conversations.models import Conversation, Participant
from csat.models import CsatResponse
from csat.services import csat_submit
from messaging.edits import message_edit
from messaging.models import Message, MessageVersion
from retention.services import conversations_purge
from tests.helpers import ADMIN, USER, send

pytestmark = pytest.mark.django_db

OLD = timedelta(days=40)


def archived(subject: str, *, age: timedelta = OLD, with_file: bool = False, client=None) -> Conversation:
    conversation = conversation_services.conversation_create(creator=USER, subject=subject, metadata={"campaign": "c"})
    conversation_services.participant_join(conversation=conversation, principal=ADMIN)
    first = send(conversation, f"{subject}: my address is 1 Main St")
    message_edit(conversation=conversation, editor=USER, message_id=first.pk, content=f"{subject}: 2 Main St")
    send(conversation, "noted", sender=ADMIN)
    if with_file:
        from tests.test_attachments import png, upload

        uploaded = upload(client, conversation.pk, png(), "id.png", "image/png").json()
        send(conversation, "my id", message_type="FILE", metadata={"attachmentId": uploaded["attachmentId"]})
    conversation_services.conversation_update(conversation=conversation, actor=USER, status="CLOSED")
    csat_submit(conversation=Conversation.objects.get(pk=conversation.pk), donor=USER, rating=4, comment="my phone 555")
    conversation_services.conversation_update(
        conversation=Conversation.objects.get(pk=conversation.pk), actor=ADMIN, status="ARCHIVED"
    )
    then = timezone.now() - age
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=then, last_message_at=then)
    return Conversation.objects.get(pk=conversation.pk)


def test_old_archived_conversations_become_tombstones_with_counts(agent, donor):
    from tests.test_attachments import stored_files

    for path in stored_files():
        path.unlink()
    old = archived("old", with_file=True, client=donor)
    recent = archived("recent", age=timedelta(days=5))
    active = conversation_services.conversation_create(creator=USER, subject="active")
    send(active, "still talking")
    Conversation.objects.filter(pk=active.pk).update(updated_at=timezone.now() - OLD)
    messages_before = Message.objects.filter(conversation_id=old.pk).count()
    assert stored_files()

    result = conversations_purge(days=30)
    assert result.purged == [old.pk] and result.candidates == 1
    tomb = Conversation.objects.get(pk=old.pk)
    assert tomb.purged_at is not None and tomb.status == "ARCHIVED"
    assert (tomb.subject, tomb.metadata) == (None, {})
    assert tomb.purge_counts == {"messages": messages_before, "attachments": 1, "participants": 2}
    assert not Message.objects.filter(conversation_id=old.pk).exists()
    assert not MessageVersion.objects.filter(conversation_id=old.pk).exists()
    assert not Participant.objects.filter(conversation_id=old.pk).exists()
    assert not Attachment.objects.exists() and stored_files() == []
    rating = CsatResponse.objects.get(conversation_id=old.pk)
    assert (rating.rating, rating.comment) == (4, "") and tomb.csat["comment"] == ""
    # The others are untouched.
    assert Message.objects.filter(conversation_id=recent.pk).count() > 0
    assert Conversation.objects.get(pk=recent.pk).purged_at is None
    assert Message.objects.filter(conversation_id=active.pk).count() == 1
    # Staff see the tombstone; the donor no longer takes part.
    shown = agent.get(f"/api/conversations/{old.pk}").json()
    assert shown["purged"]["messages"] == messages_before and shown["subject"] is None
    assert donor.get(f"/api/conversations/{old.pk}").status_code == 404
    assert agent.get(f"/api/conversations/{recent.pk}").json()["purged"] is None
    # Audited once, with the counts; a second run finds nothing and records nothing.
    (record,) = AuditRecord.objects.filter(action="retention.purge")
    assert record.details["conversations"] == 1 and record.details["conversationIds"] == [old.pk]
    assert record.details["messages"] == messages_before and record.actor_role == "OPERATOR"
    assert conversations_purge(days=30).purged == []
    assert AuditRecord.objects.filter(action="retention.purge").count() == 1


def test_a_dry_run_counts_and_changes_nothing():
    old = archived("old")
    stored = Message.objects.filter(conversation_id=old.pk).count()
    stdout = StringIO()
    call_command("purge_archived_conversations", "--days", "30", "--dry-run", stdout=stdout)
    assert (
        f"would purge 1 ARCHIVED conversation(s) untouched for 30 days, with {stored} message(s)" in stdout.getvalue()
    )
    assert Message.objects.filter(conversation_id=old.pk).count() == stored
    assert Conversation.objects.get(pk=old.pk).purged_at is None
    assert not AuditRecord.objects.filter(action="retention.purge").exists()
    call_command("purge_archived_conversations", "--days", "30", stdout=stdout)
    assert "Purged 1 of 1 conversation(s)" in stdout.getvalue()
    (record,) = AuditRecord.objects.filter(action="retention.purge")
    assert record.details["operator"]["command"] == "purge_archived_conversations"


def test_the_command_needs_days_from_somewhere(settings):
    settings.CHAT = {**settings.CHAT, "RETENTION_DAYS": 0}
    with pytest.raises(CommandError, match="CHAT_RETENTION_DAYS"):
        call_command("purge_archived_conversations", stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("purge_archived_conversations", "--days", "0", stdout=StringIO())


def test_a_conversation_touched_after_the_selection_is_not_purged():
    old = archived("old")
    from retention import services

    selected = list(services.purgeable(cutoff=timezone.now() - timedelta(days=30)))
    assert [c.pk for c in selected] == [old.pk]
    Conversation.objects.filter(pk=old.pk).update(updated_at=timezone.now())  # reopened meanwhile, say
    result = services.Purge()
    assert services._purge_one(old.pk, timezone.now() - timedelta(days=30), result) is False
    assert Message.objects.filter(conversation_id=old.pk).exists()


def test_the_schedule_runs_only_with_a_retention_period(settings):
    from jobs.registry import SCHEDULES

    schedule = SCHEDULES["purge_archived_conversations"]
    settings.CHAT = {**settings.CHAT, "RETENTION_DAYS": 0}
    assert schedule.interval_s() == 0
    settings.CHAT = {**settings.CHAT, "RETENTION_DAYS": 30}
    assert schedule.interval_s() == settings.CHAT["TRANSITION_EVERY_S"]
    old = archived("old")
    schedule.run()
    assert Conversation.objects.get(pk=old.pk).purged_at is not None
