"""Retention: ARCHIVED conversations older than CHAT_RETENTION_DAYS are purged.

Purging deletes the conversation's messages (their versions and search entries with them), its files
and its participants, clears what the donor wrote about it (subject, metadata, the rating's comment), and
leaves a tombstone: the row, its status and clocks (for reports), `purged_at` and counts. Each conversation
is purged on its own: its files first (a storage failure stops the run with nothing else deleted, and the
next run completes it), then one transaction that re-checks it is still ARCHIVED and untouched since the
cutoff (a reopened conversation is not purged). Every real run is recorded in the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from attachments.models import Attachment
from attachments.services import attachments_delete
from audit.models import AuditAction, AuditTarget
from audit.services import audit_record
from chatservice.authentication import Principal
from chatservice.db import atomic
from conversations.models import Conversation, ConversationStatus, Participant
from conversations.selectors import in_pk_batches
from csat.models import CsatResponse
from messaging.models import Message, MessageVersion
from search import services as search_index

logger = logging.getLogger(__name__)

PURGE_BATCH_SIZE = 100  # conversations selected per query; each is purged in its own transaction
AUDIT_IDS = 100  # conversation ids named in a run's audit record (the counts cover all of them)


@dataclass
class Purge:
    candidates: int = 0
    purged: list[str] = field(default_factory=list)
    messages: int = 0
    attachments: int = 0
    participants: int = 0


def purgeable(*, cutoff: datetime) -> QuerySet[Conversation]:
    """ARCHIVED, not purged yet, and untouched (no message, no change) since `cutoff`."""
    idle = Q(updated_at__lt=cutoff) & (Q(last_message_at__isnull=True) | Q(last_message_at__lt=cutoff))
    return Conversation.objects.filter(idle, status=ConversationStatus.ARCHIVED, purged_at__isnull=True)


def _purge_one(conversation_id: str, cutoff: datetime, result: Purge) -> bool:
    files = set(Attachment.objects.filter(conversation_id=conversation_id).values_list("id", flat=True))
    if files:
        attachments_delete(attachment_ids=files)
    with atomic():
        now = timezone.now()
        # Conditional, and the row lock orders it against a message that would reopen it: either that
        # message commits first and this finds nothing, or this commits first and the send finds ARCHIVED.
        if not purgeable(cutoff=cutoff).filter(pk=conversation_id).update(purged_at=now, updated_at=now):
            return False
        messages = Message.objects.filter(conversation_id=conversation_id)
        MessageVersion.objects.filter(conversation_id=conversation_id).delete()
        counts = {
            "messages": messages.count(),
            "attachments": len(files),
            "participants": Participant.objects.filter(conversation_id=conversation_id).count(),
        }
        messages.delete()
        search_index.conversations_unindexed(conversation_ids=[conversation_id])
        Participant.objects.filter(conversation_id=conversation_id).delete()
        CsatResponse.objects.filter(conversation_id=conversation_id).update(comment="")
        Conversation.objects.filter(pk=conversation_id).update(
            subject=None,
            metadata={},
            purge_counts=counts,
            preview_message_id=None,
            public_preview_message_id=None,
            admin_count=0,
        )
        conversation = Conversation.objects.only("csat").get(pk=conversation_id)
        if conversation.csat:
            Conversation.objects.filter(pk=conversation_id).update(csat={**conversation.csat, "comment": ""})
    result.purged.append(conversation_id)
    result.messages += counts["messages"]
    result.attachments += counts["attachments"]
    result.participants += counts["participants"]
    return True


def conversations_purge(
    *,
    days: int,
    dry_run: bool = False,
    actor: Principal | None = None,
    batch_size: int = PURGE_BATCH_SIZE,
    now: datetime | None = None,
    on_conversation: Callable[[Conversation, bool], None] | None = None,
) -> Purge:
    """Purge ARCHIVED conversations untouched for `days` days. A dry run counts them (and their messages,
    files and participants) and changes nothing. `actor` None: the operator (a command or the schedule)."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    result = Purge()
    for batch in in_pk_batches(purgeable(cutoff=cutoff), batch_size):
        for conversation in batch:
            result.candidates += 1
            if dry_run:
                result.messages += Message.objects.filter(conversation_id=conversation.pk).count()
                result.attachments += Attachment.objects.filter(conversation_id=conversation.pk).count()
                result.participants += Participant.objects.filter(conversation_id=conversation.pk).count()
                done = False
            else:
                done = _purge_one(conversation.pk, cutoff, result)
            if on_conversation is not None:
                on_conversation(conversation, done)
    if result.purged:
        audit_record(
            actor=actor,
            action=AuditAction.RETENTION_PURGE,
            target_type=AuditTarget.RETENTION,
            target_id=f"{days}d",
            details={
                "days": days,
                "cutoff": cutoff.isoformat(),
                "conversations": len(result.purged),
                "messages": result.messages,
                "attachments": result.attachments,
                "participants": result.participants,
                "conversationIds": result.purged[:AUDIT_IDS],
            },
        )
        logger.info(
            "retention purged %d conversation(s): %d messages, %d files",
            len(result.purged),
            result.messages,
            result.attachments,
        )
    return result
