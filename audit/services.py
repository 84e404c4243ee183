"""Writes of the audit log. Every record is appended here (`audit_record`), in the caller's transaction
when there is one, so a record commits or rolls back with the action it records.

An append, whatever the backend:
1. reserves the next numbers with one conditional UPDATE of the head row (seq = seq + n). That write
   takes the row's lock until commit on PostgreSQL (SQLite writers already hold the database; MongoDB
   aborts the later of two transactions writing the row, which then runs again: chatservice.db), so
   appends are numbered in commit order and the chain never forks;
2. reads the head's number and hash (the previous record's, committed with it);
3. inserts the records, each with the hash of the one before;
4. writes the last record's hash into the head.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from audit import selectors
from audit.chain import GENESIS_HASH, canonical_details, chain_time, record_hash
from audit.context import current_operator
from audit.models import (
    HEAD_ID,
    TARGET_ID_MAX_LENGTH,
    ActorRole,
    AuditAction,
    AuditHead,
    AuditRecord,
    AuditTarget,
)
from chatservice.authentication import Principal
from chatservice.db import atomic, in_transaction, retry_transient
from messaging.models import Message, MessageType

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    actor_id: str
    actor_role: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]


def _entry(
    *, actor: Principal | None, action: str, target_type: str, target_id: str, details: dict[str, Any] | None
) -> _Entry:
    if action not in AuditAction.values:
        raise ValueError(f"unknown audit action {action!r}: name it in audit.models.AuditAction")
    if target_type not in AuditTarget.values:
        raise ValueError(f"unknown audit target type {target_type!r}: name it in audit.models.AuditTarget")
    if len(target_id) > TARGET_ID_MAX_LENGTH:
        raise ValueError(f"an audit target id has at most {TARGET_ID_MAX_LENGTH} characters")
    details = canonical_details(details)
    if actor is None:
        operator = current_operator()
        if operator is not None:
            details["operator"] = dict(operator)
        return _Entry("", ActorRole.OPERATOR, action, target_type, target_id, details)
    return _Entry(actor.user_id, actor.role, action, target_type, target_id, details)


def audit_record(
    *,
    actor: Principal | None,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one record: `actor` did `action` (an AuditAction) to the `target_type` (an AuditTarget)
    named `target_id`, with `details` (plain JSON data; never a secret or message text). `actor` None
    is the operator: a management command or schedule, named in the details when it runs inside
    audit.context.operator_command / operator_schedule.

    Runs in the caller's transaction when there is one (call it after the action's own writes: the head
    row stays locked until commit), else in its own. Raises ValueError for an unknown action or target
    type, and for details JSON cannot carry."""
    (record,) = _append(
        [_entry(actor=actor, action=action, target_type=target_type, target_id=target_id, details=details)]
    )
    return record


def notes_created(messages: Iterable[Message]) -> None:
    """Record every internal note among `messages` (just stored, in the storing transaction) as written
    by its sender. The note's text is not copied: the record names the message and its conversation."""
    entries = [
        _entry(
            actor=Principal(message.sender_id, message.sender_role),
            action=AuditAction.NOTE_CREATE,
            target_type=AuditTarget.MESSAGE,
            target_id=message.id,
            details={"conversationId": message.conversation_id},
        )
        for message in messages
        if message.message_type == MessageType.NOTE
    ]
    if entries:
        _append(entries)


class _AlreadyRecorded(Exception):
    pass


def conversation_read(*, reader: Principal, conversation_id: str) -> AuditRecord | None:
    """Record that staff member `reader` opened a conversation, the first time each (UTC) day; returns
    the record, or None when there is none to make (a donor, or already recorded today). Usually one
    indexed read. Call it outside a transaction: a repeat found after the head is taken rolls back."""
    if not reader.is_admin:
        return None
    now = timezone.now()
    since = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if selectors.read_recorded(reader=reader, conversation_id=conversation_id, since=since):
        return None
    entry = _entry(
        actor=reader,
        action=AuditAction.CONVERSATION_READ,
        target_type=AuditTarget.CONVERSATION,
        target_id=conversation_id,
        details=None,
    )

    @retry_transient
    def write() -> AuditRecord:
        with atomic():
            first, prev_hash = _reserve(1)
            # Appends are serialized from here: a second request that passed the check above at the
            # same moment finds the first one's record now, and makes none.
            if selectors.read_recorded(reader=reader, conversation_id=conversation_id, since=since):
                raise _AlreadyRecorded
            (record,) = _write([entry], first, prev_hash)
            return record

    try:
        return write()
    except _AlreadyRecorded:
        return None


# ---- the chain ----------------------------------------------------------------------------------------


def _append(entries: list[_Entry]) -> list[AuditRecord]:
    if in_transaction():
        return _write(entries, *_reserve(len(entries)))
    return _append_in_own_transaction(entries)


@retry_transient
def _append_in_own_transaction(entries: list[_Entry]) -> list[AuditRecord]:
    with atomic():
        return _write(entries, *_reserve(len(entries)))


def _reserve(count: int) -> tuple[int, str]:
    """Take the next `count` numbers; returns the first and the hash the first record follows. Holds
    the head until the transaction ends."""
    head = AuditHead.objects.filter(pk=HEAD_ID)
    if not head.update(seq=F("seq") + count):
        _create_head()
        head.update(seq=F("seq") + count)
    seq, last_hash = head.values_list("seq", "last_hash").get()
    return seq - count + 1, last_hash


def _create_head() -> None:
    """The head row, made by the first append. Made from the newest record should it be missing with
    records present (only a hand-made change to the database does that; `audit_verify` reports it
    until then)."""
    last = AuditRecord.objects.order_by("-seq").values_list("seq", "hash").first()
    if last is not None:
        logger.error("audit chain head missing: made again from record #%s", last[0])
    head = AuditHead(id=HEAD_ID, seq=last[0] if last else 0, last_hash=last[1] if last else GENESIS_HASH)
    if connection.vendor == "mongodb":
        # No savepoints: two first appends racing meet as a write conflict, and the later runs again.
        head.save(force_insert=True)
        return
    try:
        with transaction.atomic():  # a savepoint: a concurrent first append may have made it meanwhile
            head.save(force_insert=True)
    except IntegrityError:
        pass


def _write(entries: list[_Entry], first: int, prev_hash: str) -> list[AuditRecord]:
    at = chain_time(timezone.now())
    records = []
    for seq, entry in enumerate(entries, start=first):
        digest = record_hash(
            seq=seq,
            prev_hash=prev_hash,
            actor_id=entry.actor_id,
            actor_role=entry.actor_role,
            action=entry.action,
            target_type=entry.target_type,
            target_id=entry.target_id,
            at=at,
            details=entry.details,
        )
        records.append(
            AuditRecord(
                seq=seq,
                created_at=at,
                actor_id=entry.actor_id,
                actor_role=entry.actor_role,
                action=entry.action,
                target_type=entry.target_type,
                target_id=entry.target_id,
                details=entry.details,
                prev_hash=prev_hash,
                hash=digest,
            )
        )
        prev_hash = digest
    AuditRecord.objects.bulk_create(records)
    AuditHead.objects.filter(pk=HEAD_ID).update(last_hash=prev_hash)
    return records
