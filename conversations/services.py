"""Writes of conversations and participants. Changes that people in the conversation should notice
(status, assignment) are also recorded as SYSTEM messages, in the same transaction. The operator
commands' writes (idle conversations closed and archived, a user's erasure) are here too."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F
from django.utils import timezone

from attachments import services as attachments
from audit.models import AuditAction, AuditTarget
from audit.services import audit_record
from chatservice.authentication import Principal
from chatservice.db import atomic, retry_transient
from chatservice.errors import NotFound, PermissionDenied, ServiceError
from conversations import announce, notices, selectors
from conversations.models import Conversation, ConversationLabel, ConversationStatus, Participant, Role
from conversations.renaming import NAMING_EVENTS, replace_whole_word
from messaging import selectors as message_selectors
from messaging.models import Message, MessageType
from messaging.services import message_append
from notifications import services as notifications
from realtime import inbox_events
from realtime.broadcast import conversation_group, publish_on_commit
from realtime.events import frame_event, read_receipt_frame
from search import services as search_index
from webhooks.models import EventType
from webhooks.selectors import subscribed
from webhooks.services import events_record

# `metadata.event` of the SYSTEM messages services record; erasure rewrites the user ids in these.
STATUS_CHANGED_EVENT = notices.STATUS_CHANGED_EVENT
ASSIGNED_EVENT = notices.ASSIGNED_EVENT
# Statuses a donor may set on their own conversation: they can end it, not reopen or archive it.
USER_SETTABLE_STATUSES = frozenset({ConversationStatus.CLOSED})
# What only support staff may change (a donor sending one gets 403 staff_only_field, nothing stored).
STAFF_ONLY_CHANGES = ("labels", "priority", "snoozed_until")
UNSET: Any = object()


def _names():
    from desk import names

    return names


def _assignment():
    from desk import assignment

    return assignment


@retry_transient
def conversation_create(
    *, creator: Principal, subject: str | None = None, metadata: dict[str, Any] | None = None
) -> Conversation:
    """The creator joins as a participant with their own role (a donor as USER)."""
    now = timezone.now()
    with atomic():
        conversation = Conversation.objects.create(
            created_by=creator.user_id,
            subject=subject,
            metadata=metadata or {},
            admin_count=1 if creator.is_admin else 0,
            last_agent_id=creator.user_id if creator.is_admin else None,
            created_at=now,
            updated_at=now,
        )
        Participant.objects.create(
            conversation=conversation,
            user_id=creator.user_id,
            role=creator.role,
            joined_at=now,
            assigned=creator.is_admin,
            display_name=_names().principal_name(creator) if creator.is_admin else "",
        )
        announce.conversation_created(conversation.pk)
    if not creator.is_admin:
        _assignment().route_if_unassigned(conversation.pk)
    return conversation


def conversation_update(
    *,
    conversation: Conversation,
    actor: Principal,
    subject: str | None = UNSET,
    metadata: dict[str, Any] = UNSET,
    status: str = UNSET,
    labels: list[str] = UNSET,
    priority: str = UNSET,
    snoozed_until: datetime | None = UNSET,
) -> Conversation:
    """Participants may change subject and metadata and close; support staff may also reopen and archive,
    and set labels, priority and snooze. Closing frees the assigned agents' capacity for the queue;
    reopening routes the conversation again (desk.assignment.after_reopen)."""
    status_changed = status is not UNSET and status != conversation.status
    if status_changed and not actor.is_admin and status not in USER_SETTABLE_STATUSES:
        raise PermissionDenied("Only support staff may reopen or archive a conversation.", code="status_forbidden")
    staff_only = [
        name
        for name, value in zip(STAFF_ONLY_CHANGES, (labels, priority, snoozed_until), strict=True)
        if value is not UNSET
    ]
    if staff_only and not actor.is_admin:
        raise PermissionDenied(f"Only support staff may set {', '.join(staff_only)}.", code="staff_only_field")
    now = timezone.now()
    changes: dict[str, Any] = {"updated_at": now}
    if subject is not UNSET:
        changes["subject"] = subject
    if metadata is not UNSET:
        changes["metadata"] = metadata
    if labels is not UNSET:
        changes["labels"] = labels
    if priority is not UNSET:
        changes["priority"] = priority
    if snoozed_until is not UNSET:
        changes["snoozed_until"] = snoozed_until
    if status_changed:
        changes["status"] = status
        if status == ConversationStatus.CLOSED:
            changes["closed_at"] = now
        elif status == ConversationStatus.ACTIVE:
            changes["closed_at"] = None

    @retry_transient  # inside, so a second attempt still knows the status changed
    def write() -> None:
        with atomic():
            Conversation.objects.filter(pk=conversation.pk).update(**changes)
            if labels is not UNSET:
                ConversationLabel.objects.filter(conversation_id=conversation.pk).delete()
                ConversationLabel.objects.bulk_create(
                    ConversationLabel(conversation_id=conversation.pk, label=label) for label in labels
                )
            if status_changed:
                _record_status_change(conversation=conversation, actor=actor, status=status)
            if snoozed_until is not UNSET and snoozed_until is not None and snoozed_until > now:
                _schedule_wake(conversation.pk, snoozed_until)
            if snoozed_until is not UNSET:  # staff only (checked above)
                until = snoozed_until.isoformat() if snoozed_until is not None else None
                _audit(actor, AuditAction.CONVERSATION_SNOOZE, conversation, {"until": until})
            announce.conversation_updated(conversation.pk)

    write()
    for field, value in changes.items():
        setattr(conversation, field, value)
    if status_changed and status == ConversationStatus.ACTIVE:
        _assignment().after_reopen(conversation.pk)
    elif status_changed or (snoozed_until is not UNSET and snoozed_until is None):
        _assignment().drain_queue()  # capacity freed, or a conversation woke
    return conversation


def _schedule_wake(conversation_id: str, until: datetime) -> None:
    """Record the wake-up with the snooze (same transaction): it runs at `until` (jobs.kinds.wake)."""
    from jobs.kinds import SNOOZE_WAKE_KIND
    from jobs.services import job_enqueue

    job_enqueue(
        kind=SNOOZE_WAKE_KIND, payload={"conversationId": conversation_id, "until": until.isoformat()}, run_at=until
    )


def conversation_wake(*, conversation_id: str, until: datetime, now: datetime) -> bool:
    """Wake a conversation snoozed until `until` once that time has come: the snooze is cleared, the
    inbox is told and the queue served. A conversation snoozed again to another time, woken by its
    donor or already awake is left alone (the job of its new snooze wakes it). Returns whether it woke."""
    if until > now:
        raise ValueError("woken before its time")  # a clock running behind: retried later
    with atomic():
        # Any snooze now due, not only this one: MongoDB keeps milliseconds, so `until` may not compare equal.
        woke = Conversation.objects.filter(pk=conversation_id, snoozed_until__lte=now).update(
            snoozed_until=None, updated_at=now
        )
        if woke:
            announce.conversation_updated(conversation_id)
    if woke:
        _assignment().drain_queue()
    return bool(woke)


def reopen_by_donor(*, conversation_id: str, donor: Principal) -> bool:
    """Reopen a CLOSED conversation its donor writes in (inside the storing transaction); False if it
    was not CLOSED any more."""
    now = timezone.now()
    moved = Conversation.objects.filter(pk=conversation_id, status=ConversationStatus.CLOSED).update(
        status=ConversationStatus.ACTIVE, closed_at=None, updated_at=now
    )
    if moved:
        conversation = Conversation.objects.get(pk=conversation_id)
        _record_status_change(conversation=conversation, actor=donor, status=ConversationStatus.ACTIVE)
        announce.conversation_updated(conversation_id)
    return bool(moved)


def _record_status_change(
    *,
    conversation: Conversation,
    actor: Principal,
    status: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """The SYSTEM message announcing a status change (sockets get it as a `system` frame after commit).
    Must run in the transaction that changed the status. It names the actor by display name."""
    metadata = notices.status_metadata(
        status=status,
        actor_name=_names().principal_name(actor),
        details={**(details or {}), **({"reasonText": reason} if reason else {})},
    )
    record_notice(conversation=conversation, actor=actor, metadata=metadata)
    # Staff and the operator's commands are audited; a donor closing or reopening their own is not.
    if actor.is_admin:
        change = {"from": conversation.status, "to": status, **({"reason": reason} if reason else {})}
        _audit(actor, AuditAction.CONVERSATION_STATUS, conversation, change)


def _audit(actor: Principal, action: str, conversation: Conversation, details: dict[str, Any]) -> None:
    """An audit record of a change to `conversation`, in its transaction; SYSTEM_ACTOR is the operator."""
    audit_record(
        actor=None if actor == SYSTEM_ACTOR else actor,
        action=action,
        target_type=AuditTarget.CONVERSATION,
        target_id=conversation.pk,
        details=details,
    )


def record_notice(*, conversation: Conversation, actor: Principal, metadata: dict[str, Any]) -> None:
    """Store a SYSTEM notice by `actor`, its text rendered from its metadata (conversations.notices).
    Must run in the transaction that made the change it records; sockets get it once committed."""
    message_append(
        conversation=conversation,
        sender_id=actor.user_id,
        sender_role=actor.role,
        content=notices.notice_text(metadata) or "",
        message_type=MessageType.SYSTEM,
        metadata=metadata,
        require_active=False,
    )


def conversation_assign(*, conversation: Conversation, actor: Principal, admin_id: str) -> bool:
    """Assign `admin_id` (staff); idempotent. Returns whether they were newly assigned."""
    return _assignment().assign(conversation=conversation, actor=actor, agent_id=admin_id)


@dataclass(frozen=True)
class ReadState:
    conversation_id: str
    user_id: str
    last_read_at: datetime | None
    unread_count: int


@retry_transient
def participant_join(*, conversation: Conversation, principal: Principal) -> tuple[Participant, bool]:
    """Support staff opening a conversation take part in it from then on (no SYSTEM message: opening
    a thread is not an announcement). Donors only take part in conversations they created."""
    if not principal.is_admin:
        raise PermissionDenied("Only support staff may join conversations.", code="admin_only")
    with atomic():
        return Participant.objects.ensure(conversation_id=conversation.pk, user_id=principal.user_id, role=Role.ADMIN)


def participant_mark_read(*, conversation: Conversation, reader: Principal, message_id: str | None = None) -> ReadState:
    """Advance the reader's watermark to `message_id` (default: the latest message). One write at most,
    however many messages it covers; it never moves back. When it moves, the conversation's sockets get
    a read_receipt. Admins who are not participants have no watermark and get their state unchanged."""
    if message_id:
        seq = message_selectors.message_seq(conversation.pk, message_id, reader)
        if seq is None:
            raise NotFound("No such message in this conversation.", code="message_not_found")
    else:
        seq = selectors.last_seq(conversation.pk)
    now = timezone.now()
    announced = subscribed(EventType.CONVERSATION_READ)
    with atomic() if announced else nullcontext():  # the watermark and its webhook event commit together
        moved = Participant.objects.advance_watermark(
            conversation_id=conversation.pk, user_id=reader.user_id, role=reader.role, seq=seq, at=now
        )
        if moved and announced:
            refs = {"userId": reader.user_id, "role": reader.role, "lastReadAt": now.isoformat()}
            events_record(EventType.CONVERSATION_READ, conversation.pk, refs=refs)
    if moved:
        receipt_for = message_selectors.message_at(conversation.pk, seq)
        if receipt_for is not None:
            receipt = read_receipt_frame(message_id=receipt_for.id, user_id=reader.user_id, read_at=now)
            # A receipt naming a note goes to staff only: a donor never learns a note's id.
            event = frame_event(receipt, staff_only=receipt_for.message_type == MessageType.NOTE)
            publish_on_commit([(conversation_group(conversation.pk), event)])
    participant = Participant.objects.filter(
        conversation_id=conversation.pk, user_id=reader.user_id, role=reader.role
    ).first()
    last_seq = selectors.last_seq(conversation.pk)
    if participant is None:
        return ReadState(conversation.pk, reader.user_id, None, last_seq)
    fresh = Conversation.objects.get(pk=conversation.pk)
    unread = selectors.unread_of(fresh, participant)
    if moved and reader.role == Role.USER:
        publish_on_commit([inbox_events.read_publication(conversation.pk, reader.user_id, unread)])
    return ReadState(conversation.pk, reader.user_id, participant.last_read_at, unread)


# ---- operator commands ----------------------------------------------------------------------------

# The actor of changes made by operator commands rather than by a person. An ADMIN, so the staff rules
# of the services apply to it (only staff may archive); it never becomes a participant, so it joins no
# conversation and leaves admin_count alone. Its SYSTEM messages read "Conversation closed by system (…)".
SYSTEM_ACTOR = Principal("system", Role.ADMIN, via="command")

# Conversations per selection query: bounds memory and sets how often progress is reported. Each
# conversation still changes in its own short transaction: one transaction per batch would hold SQLite's
# single write lock, and every live send with it, for the whole batch.
TRANSITION_BATCH_SIZE = 200

ProgressCallback = Callable[[int, int], None]  # (done, total)
ConversationCallback = Callable[[Conversation, bool], None]  # (conversation, changed)


@dataclass(frozen=True)
class Transitions:
    candidates: int  # idle when the run started
    changed: int  # fewer than candidates when some had activity meanwhile; 0 in a dry run


@retry_transient
def _transition_if_idle(
    *,
    conversation: Conversation,
    from_status: str,
    to_status: str,
    idle_since: datetime,
    actor: Principal,
    reason: str,
    details: dict[str, Any],
) -> bool:
    now = timezone.now()
    with atomic():
        # Conditional on the row still being idle in `from_status`: a message or change since the
        # selection keeps it as it is. The UPDATE's row lock orders it against a concurrent send, which
        # only writes to ACTIVE rows (messaging.services), so no message lands after the close.
        changed = (
            selectors.conversations_idle(status=from_status, idle_since=idle_since)
            .filter(pk=conversation.pk)
            .update(status=to_status, updated_at=now)
        )
        if changed:
            _record_status_change(
                conversation=conversation, actor=actor, status=to_status, reason=reason, details=details
            )
    if changed:
        conversation.status, conversation.updated_at = to_status, now
    return bool(changed)


def _conversations_transition_idle(
    *,
    from_status: str,
    to_status: str,
    days: int,
    actor: Principal,
    reason: str,
    dry_run: bool,
    batch_size: int,
    on_progress: ProgressCallback | None,
    on_conversation: ConversationCallback | None,
) -> Transitions:
    if days < 1:
        raise ServiceError("days must be at least 1.", code="invalid_days")
    idle_since = timezone.now() - timedelta(days=days)
    candidates = selectors.conversations_idle(status=from_status, idle_since=idle_since)
    total = candidates.count()
    reason = reason.format(days=days)
    details = {"reason": "inactive", "inactiveDays": days}
    done = changed = 0
    for batch in selectors.in_pk_batches(candidates, batch_size):
        for conversation in batch:
            moved = not dry_run and _transition_if_idle(
                conversation=conversation,
                from_status=from_status,
                to_status=to_status,
                idle_since=idle_since,
                actor=actor,
                reason=reason,
                details=details,
            )
            changed += moved
            if on_conversation is not None:
                on_conversation(conversation, moved)
        done += len(batch)
        if on_progress is not None:
            on_progress(done if dry_run else changed, total)
    return Transitions(candidates=total, changed=changed)


def conversations_close_inactive(
    *,
    days: int,
    actor: Principal = SYSTEM_ACTOR,
    dry_run: bool = False,
    batch_size: int = TRANSITION_BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    on_conversation: ConversationCallback | None = None,
) -> Transitions:
    """Close ACTIVE conversations without a message or change for `days` days, each like a status
    update by `actor`: a SYSTEM message records it and the conversation's sockets are told after commit.
    A dry run selects the same conversations and changes nothing. Safe to run again at any time."""
    return _conversations_transition_idle(
        from_status=ConversationStatus.ACTIVE,
        to_status=ConversationStatus.CLOSED,
        days=days,
        actor=actor,
        reason="no activity for {days} days",
        dry_run=dry_run,
        batch_size=batch_size,
        on_progress=on_progress,
        on_conversation=on_conversation,
    )


def conversations_archive_closed(
    *,
    days: int,
    actor: Principal = SYSTEM_ACTOR,
    dry_run: bool = False,
    batch_size: int = TRANSITION_BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    on_conversation: ConversationCallback | None = None,
) -> Transitions:
    """Archive CLOSED conversations untouched for `days` days (closing counts as a touch, so the
    period runs from the close); recorded and announced like conversations_close_inactive."""
    return _conversations_transition_idle(
        from_status=ConversationStatus.CLOSED,
        to_status=ConversationStatus.ARCHIVED,
        days=days,
        actor=actor,
        reason="closed, no activity for {days} days",
        dry_run=dry_run,
        batch_size=batch_size,
        on_progress=on_progress,
        on_conversation=on_conversation,
    )


# ---- erasure (GDPR) -------------------------------------------------------------------------------

# What an erased user becomes wherever their id was stored. One fixed pseudonym for everybody: a per-user
# value (a hash, a counter) would still single the person out across conversations.
ERASED_USER_ID = "erased-user"
# The content of every message the erased user wrote. Messages are rewritten, not deleted: seq must stay
# 1..last_seq without holes, or clients filling gaps would wait for messages that never come.
ERASED_CONTENT = "[erased]"
# Rows per erasure transaction: short write locks on a live database, flat memory, regular progress.
ERASE_BATCH_SIZE = 500
# Ids that are not people: erasing them would rewrite the service's own records.
RESERVED_USER_IDS = frozenset({ERASED_USER_ID, SYSTEM_ACTOR.user_id})
# SYSTEM messages the services generate name users only as whole words ("u1 was assigned by agent1").
# The same events renaming (and so linking and the namespace migration) rewrites.
SERVICE_EVENTS = NAMING_EVENTS

EraseProgressCallback = Callable[[str, int, int], None]  # (step, done, total)


@dataclass
class Erasure:
    messages_anonymized: int = 0  # written by the user
    notices_rewritten: int = 0  # SYSTEM notices by others that named the user ("u1 was assigned by …")
    participations_removed: int = 0
    conversations_pseudonymized: int = 0  # created by the user
    attachments_deleted: int = 0  # uploaded by the user, files included
    conversation_ids: set[str] = dataclasses.field(default_factory=set)  # every conversation any of the above touched

    @property
    def conversations_touched(self) -> int:
        return len(self.conversation_ids)

    @property
    def found(self) -> bool:
        return bool(self.conversation_ids)


def _is_service_notice(message: Message) -> bool:
    return (
        message.message_type == MessageType.SYSTEM
        and isinstance(message.metadata, dict)
        and message.metadata.get("event") in SERVICE_EVENTS
    )


def _rename_in_notice(message: Message, user_id: str) -> None:
    """Generated text, not the user's words: keep what happened, drop who. Notices that keep the names
    they were written with are rendered again from their rewritten metadata."""
    if isinstance(message.metadata, dict) and "actorName" in message.metadata:
        erased_name = _names().ERASED_STAFF_NAME if message.metadata.get("adminId") == user_id else ERASED_USER_ID
        metadata = notices.rename_in_notice(
            message.metadata,
            old_id=user_id,
            new_id=ERASED_USER_ID,
            new_name=erased_name,
            sender_was_old=message.sender_id == user_id,
        )
        if message.sender_id == user_id:
            metadata["actorName"] = _names().ERASED_STAFF_NAME if message.sender_role == Role.ADMIN else ERASED_USER_ID
        message.metadata = metadata
        message.content = notices.notice_text(metadata) or message.content
        return
    message.content = replace_whole_word(message.content, user_id, ERASED_USER_ID)
    message.metadata = replace_whole_word(message.metadata, user_id, ERASED_USER_ID)


def _anonymize(message: Message, user_id: str, now: datetime) -> None:
    if _is_service_notice(message):
        _rename_in_notice(message, user_id)
    else:
        message.content = ERASED_CONTENT
        message.metadata = {}
        if message.message_type == MessageType.FILE:
            message.message_type = MessageType.TEXT  # a FILE without its url and name breaks clients
    message.sender_id = ERASED_USER_ID
    message.sender_name = ""
    message.client_message_id = None  # the user's key; also frees the idempotency index for the pseudonym
    message.updated_at = now


ANONYMIZED_FIELDS = [
    "sender_id",
    "sender_name",
    "content",
    "metadata",
    "client_message_id",
    "message_type",
    "updated_at",
]


def user_erase(
    *,
    user_id: str,
    role: str,
    dry_run: bool = False,
    batch_size: int = ERASE_BATCH_SIZE,
    on_progress: EraseProgressCallback | None = None,
) -> Erasure:
    """Erase a person's personal data from the chat, keeping conversations readable for the others. The
    person is `user_id` with `role`: a donor and a staff member who share an id are two people.

    - Messages they wrote: content becomes ERASED_CONTENT, metadata and clientMessageId are cleared,
      the sender becomes ERASED_USER_ID (FILE messages become TEXT). The SYSTEM notices services
      generated for their actions keep their text with the id replaced ("Conversation closed by
      erased-user"), as do other staff's notices that named them ("erased-user was assigned by agent1").
    - Their participations are removed (their read state goes with them); conversations they were staff
      in lose one from admin_count, so one with no staff left returns to the unassigned queue.
    - Conversations they created: created_by becomes ERASED_USER_ID, subject and metadata are cleared.
    Status, sequence numbers and activity times are not changed, and nothing is broadcast: erasure is
    not activity. Free text others wrote is theirs and is not rewritten.

    Batches commit one by one, in this order (notices and created conversations are found through the
    person's participations, which are removed last): a run that stops half-way is completed by running
    it again, and a run after a complete one finds nothing. A dry run counts exactly what a run would
    change.
    """
    if not user_id.strip():
        raise ServiceError("A user id is required.", code="required")
    if user_id in RESERVED_USER_IDS:
        raise PermissionDenied(f"{user_id!r} is reserved by the service, not a user.", code="reserved_user_id")
    erasure = Erasure()

    def progress(step: str, done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(step, done, total)

    # 1. Messages they wrote.
    written = Message.objects.filter(sender_id=user_id, sender_role=role)
    total = written.count()
    for batch in selectors.in_pk_batches(written, batch_size):
        now = timezone.now()
        for message in batch:
            _anonymize(message, user_id, now)
            erasure.conversation_ids.add(message.conversation_id)
        if not dry_run:
            with atomic():
                Message.objects.bulk_update(batch, ANONYMIZED_FIELDS)
                # Their words leave the search index with them (an erased message is not searchable).
                search_index.messages_reindexed(messages=batch)
        erasure.messages_anonymized += len(batch)
        progress("messages anonymized", erasure.messages_anonymized, total)

    # 2. Notices by others naming them. Only an assignment names someone other than its sender, and it is
    # recorded only when it makes that person an ADMIN participant; so their staff conversations hold
    # every such notice (found without a JSON lookup, which MongoDB's backend does not do reliably).
    staff_in = (
        Participant.objects.filter(user_id=user_id, role=Role.ADMIN)
        if role == Role.ADMIN
        else Participant.objects.none()
    )
    total, scanned = staff_in.count(), 0
    for batch in selectors.in_pk_batches(staff_in, batch_size):
        notices = Message.objects.filter(
            conversation_id__in=[p.conversation_id for p in batch], message_type=MessageType.SYSTEM
        ).exclude(sender_id=user_id, sender_role=role)  # their own were step 1 (a dry run leaves their id)
        for notice_batch in selectors.in_pk_batches(notices, batch_size):
            now = timezone.now()
            named = [m for m in notice_batch if _is_service_notice(m) and m.metadata.get("adminId") == user_id]
            for message in named:
                _rename_in_notice(message, user_id)
                message.updated_at = now
                erasure.conversation_ids.add(message.conversation_id)
            if named and not dry_run:
                with atomic():
                    Message.objects.bulk_update(named, ["content", "metadata", "updated_at"])
                    search_index.messages_reindexed(messages=named)  # notices are not indexed today; if they were
            erasure.notices_rewritten += len(named)
        scanned += len(batch)
        progress("staff conversations scanned for notices", scanned, total)

    # 3. Conversations they created: created by the id, and the creator's participation has the role
    # (the creator always takes part, until step 4).
    created = Conversation.objects.filter(created_by=user_id, participants__user_id=user_id, participants__role=role)
    total = created.count()
    for batch in selectors.in_pk_batches(created, batch_size):
        ids = [c.pk for c in batch]
        erasure.conversation_ids.update(ids)
        if not dry_run:
            with atomic():
                Conversation.objects.filter(pk__in=ids).update(created_by=ERASED_USER_ID, subject=None, metadata={})
        erasure.conversations_pseudonymized += len(batch)
        progress("conversations pseudonymized", erasure.conversations_pseudonymized, total)
    # 4. The desk's records of a staff member: their profile, personal canned responses, and the
    # "last agent" mark reopened conversations are routed by. Shared responses are the team's: kept,
    # their owner pseudonymized.
    if role == Role.ADMIN and not dry_run:
        from desk.models import AgentProfile, CannedResponse

        with atomic():
            Conversation.objects.filter(last_agent_id=user_id).update(last_agent_id=None)
            AgentProfile.objects.filter(pk=user_id).delete()
            CannedResponse.objects.filter(owner_id=user_id, shared=False).delete()
            CannedResponse.objects.filter(owner_id=user_id).update(owner_id=ERASED_USER_ID)
    # 5. Their notification address, preference and records (no message text is kept there), and the files
    # they uploaded (their FILE messages lost the reference in step 1).
    if not dry_run:
        notifications.person_erase(user_id=user_id, role=role)
    erasure.attachments_deleted = attachments.attachments_erase(user_id=user_id, role=role, dry_run=dry_run)
    if erasure.attachments_deleted:
        progress("attachments deleted", erasure.attachments_deleted, erasure.attachments_deleted)
    # 6. Participations.
    participations = Participant.objects.filter(user_id=user_id, role=role)
    total = participations.count()
    for batch in selectors.in_pk_batches(participations, batch_size):
        assigned_in = [p.conversation_id for p in batch if p.role == Role.ADMIN and p.assigned]
        erasure.conversation_ids.update(p.conversation_id for p in batch)
        if not dry_run:
            with atomic():
                Participant.objects.filter(pk__in=[p.pk for p in batch]).delete()
                # One row per (conversation, user), so each conversation loses at most one assignee.
                Conversation.objects.filter(pk__in=assigned_in, admin_count__gt=0).update(
                    admin_count=F("admin_count") - 1
                )
        erasure.participations_removed += len(batch)
        progress("participations removed", erasure.participations_removed, total)

    if erasure.found and not dry_run:
        # Once complete, by the operator (audit.context names the command). The person is named by id
        # and role: the record is what shows the erasure was done.
        audit_record(
            actor=None,
            action=AuditAction.USER_ERASE,
            target_type=AuditTarget.USER,
            target_id=user_id,
            details={
                "role": role,
                "messagesAnonymized": erasure.messages_anonymized,
                "noticesRewritten": erasure.notices_rewritten,
                "participationsRemoved": erasure.participations_removed,
                "conversationsPseudonymized": erasure.conversations_pseudonymized,
                "attachmentsDeleted": erasure.attachments_deleted,
                "conversationsTouched": erasure.conversations_touched,
            },
        )
    return erasure
