"""Reads of the audit log: the chain's check, a staff member's reads of the day, records in chain order."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from audit.chain import GENESIS_HASH, record_hash
from audit.models import HEAD_ID, AuditAction, AuditHead, AuditRecord
from chatservice.authentication import Principal

# Records per query when walking the chain: flat memory, one short read each.
VERIFY_BATCH_SIZE = 1000


def read_recorded(*, reader: Principal, conversation_id: str, since: datetime) -> bool:
    """Whether `reader` has a conversation.read record for the conversation since `since` (audit_target_idx)."""
    return AuditRecord.objects.filter(
        target_id=conversation_id,
        action=AuditAction.CONVERSATION_READ,
        created_at__gte=since,
        actor_id=reader.user_id,
        actor_role=reader.role,
    ).exists()


def in_chain_order(records: QuerySet[AuditRecord], batch_size: int = VERIFY_BATCH_SIZE) -> Iterator[AuditRecord]:
    """`records` oldest first, read in batches on the seq index (an export of any size in flat memory)."""
    after = 0
    while True:
        batch = list(records.filter(seq__gt=after).order_by("seq")[:batch_size])
        yield from batch
        if len(batch) < batch_size:
            return
        after = batch[-1].seq


def hash_of(record: AuditRecord) -> str:
    """The hash `record` should have, computed from what is stored."""
    return record_hash(
        seq=record.seq,
        prev_hash=record.prev_hash,
        actor_id=record.actor_id,
        actor_role=record.actor_role,
        action=record.action,
        target_type=record.target_type,
        target_id=record.target_id,
        at=record.created_at,
        details=record.details,
    )


@dataclass(frozen=True)
class Break:
    """The first place the chain does not hold: the record found there (None when records are missing
    from the end) and why."""

    seq: int
    record_id: str | None
    reason: str

    def __str__(self) -> str:
        where = f"record #{self.seq}" + (f" ({self.record_id})" if self.record_id else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    checked: int  # records found intact, from #1
    head_seq: int
    head_hash: str
    broken: Break | None

    @property
    def intact(self) -> bool:
        return self.broken is None


def chain_verify(*, anchors: Mapping[int, str] | None = None, batch_size: int = VERIFY_BATCH_SIZE) -> ChainReport:
    """Walk the chain from record #1 and report the first record that breaks it:
    - a number out of sequence: records before it were removed, or it was inserted or moved;
    - a previous hash that is not the hash of the record before it;
    - a hash that does not match its contents (changed since it was written);
    - a hash that differs from an anchor (seq -> hash) noted earlier outside the database, which shows
      even a chain rewritten and hashed again from that point;
    and, against the head row, records missing from the end or added past it.

    Records appended while it runs are left to the next check: the walk stops at the head as first read.
    """
    anchors = dict(anchors or {})
    head = AuditHead.objects.filter(pk=HEAD_ID).first()
    if head is None:
        first = AuditRecord.objects.order_by("seq").first()
        if first is None:
            return ChainReport(0, 0, GENESIS_HASH, _missing_anchor(anchors, 0))
        return ChainReport(0, 0, GENESIS_HASH, Break(first.seq, first.pk, "the chain's head row is missing"))
    expected, prev_hash, checked = 1, GENESIS_HASH, 0
    for record in in_chain_order(AuditRecord.objects.filter(seq__lte=head.seq), batch_size):
        if record.seq != expected:
            reason = (
                f"record #{expected} is missing before it"
                if record.seq > expected
                else f"its number repeats or goes back (record #{expected} expected)"
            )
            return ChainReport(checked, head.seq, head.last_hash, Break(record.seq, record.pk, reason))
        problem = None
        if record.prev_hash != prev_hash:
            problem = f"its previous hash is not the hash of record #{record.seq - 1}"
        elif hash_of(record) != record.hash:
            problem = "its contents do not match its hash: it was changed after it was written"
        elif record.seq in anchors and anchors[record.seq] != record.hash:
            problem = f"its hash is not the anchor {anchors[record.seq]}: the chain was rewritten"
        if problem:
            return ChainReport(checked, head.seq, head.last_hash, Break(record.seq, record.pk, problem))
        prev_hash, expected, checked = record.hash, expected + 1, checked + 1
    if checked < head.seq:
        reason = f"missing: the head says the chain has {head.seq} records, {checked} were found"
        return ChainReport(checked, head.seq, head.last_hash, Break(checked + 1, None, reason))
    if prev_hash != head.last_hash:
        last = AuditRecord.objects.filter(seq=head.seq).values_list("pk", flat=True).first()
        reason = "its hash is not the one the chain's head holds"
        return ChainReport(checked, head.seq, head.last_hash, Break(head.seq, last, reason))
    # The newest record first, then the head: a record committed by the time it is read committed its
    # head update with it, so one past the head as it stands after was not appended by the service.
    newest = AuditRecord.objects.order_by("-seq").values_list("seq", flat=True).first()
    head_now = AuditHead.objects.filter(pk=HEAD_ID).values_list("seq", flat=True).get()
    if newest is not None and newest > head_now:
        seq, pk = AuditRecord.objects.filter(seq__gt=head_now).order_by("seq").values_list("seq", "pk")[0]
        reason = "it lies past the chain's head: it was not appended by the service"
        return ChainReport(checked, head.seq, head.last_hash, Break(seq, pk, reason))
    return ChainReport(checked, head.seq, head.last_hash, _missing_anchor(anchors, checked))


def _missing_anchor(anchors: Mapping[int, str], checked: int) -> Break | None:
    missing = sorted(seq for seq in anchors if seq > checked or seq < 1)
    if missing:
        return Break(missing[0], None, "an anchor names it, and the chain has no such record")
    return None
