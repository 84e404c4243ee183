"""Who works a conversation: manual assignment, unassign, transfer, and automatic assignment.

Invariants:
- A conversation's admin_count is the number of its participants with `assigned` set; 0 is the queue.
- Auto-assignment never gives an agent more ACTIVE conversations than their capacity, whatever the
  number of workers assigning at once: each attempt first writes the agent's profile row (the row lock
  on PostgreSQL, the database lock on SQLite, a write conflict on MongoDB serialise attempts on the
  same agent) and only then counts their open conversations, inside the same transaction. The
  conversation is claimed by a conditional UPDATE (admin_count = 0), so it is never given twice.
- Every assignment and unassignment is recorded as a SYSTEM notice in the same transaction; those made
  by staff (assign, unassign, transfer), not the desk's automatic ones, also as audit records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from audit.models import AuditAction, AuditTarget
from audit.services import audit_record
from chatservice.authentication import Principal
from chatservice.db import atomic, retry_transient
from chatservice.errors import Conflict, NotFound, PermissionDenied
from conversations import announce, notices
from conversations.models import Conversation, ConversationStatus, Participant, Role
from desk import names, selectors
from desk.models import AgentProfile, Availability

logger = logging.getLogger(__name__)

# The actor of what the desk does by itself (auto-assignment, releasing absent agents); its notices read
# "… was assigned automatically", "… was unassigned by CareForAll support".
DESK_ACTOR = Principal("system", Role.ADMIN, via="desk")
# Conversations one drain of the queue assigns at most: bounds the work a single close or status change
# triggers; the next trigger goes on.
DRAIN_BATCH = 50


class NotAssigned(Conflict):
    code = "not_assigned"
    default_detail = "That staff member is not assigned to this conversation."


def _record(conversation: Conversation, actor: Principal, metadata: dict) -> None:
    from conversations.services import record_notice  # conversations.services imports this module lazily

    record_notice(conversation=conversation, actor=actor, metadata=metadata)


def _make_assigned(conversation: Conversation, agent_id: str) -> bool:
    """Mark `agent_id` assigned (joining if needed); False if already. Runs in the caller's transaction."""
    participant, _ = Participant.objects.ensure(
        conversation_id=conversation.pk, user_id=agent_id, role=Role.ADMIN, display_name=names.staff_name(agent_id)
    )
    if participant.role != Role.ADMIN:
        raise Conflict(f"{agent_id} already takes part in this conversation as a donor.", code="participant_is_user")
    return bool(Participant.objects.filter(pk=participant.pk, assigned=False).update(assigned=True))


def _assign_in_transaction(conversation: Conversation, actor: Principal, agent_id: str, how: str) -> bool:
    if not _make_assigned(conversation, agent_id):
        return False
    Conversation.objects.filter(pk=conversation.pk).update(
        admin_count=F("admin_count") + 1, last_agent_id=agent_id, updated_at=timezone.now()
    )
    _record(
        conversation,
        actor,
        notices.assigned_metadata(
            admin_id=agent_id, admin_name=names.staff_name(agent_id), actor_name=names.principal_name(actor), how=how
        ),
    )
    announce.conversation_updated(conversation.pk)
    return True


@retry_transient
def assign(*, conversation: Conversation, actor: Principal, agent_id: str) -> bool:
    """Assign `agent_id` (staff, manually: capacity is for automatic assignment only); idempotent.
    Returns whether they were newly assigned."""
    if not actor.is_admin:
        raise PermissionDenied("Only support staff may assign conversations.", code="admin_only")
    how = notices.SELF if agent_id == actor.user_id else notices.MANUAL
    with atomic():
        assigned = _assign_in_transaction(conversation, actor, agent_id, how)
        if assigned:
            _audit(actor, AuditAction.CONVERSATION_ASSIGN, conversation, {"agentId": agent_id})
        return assigned


def _audit(actor: Principal, action: str, conversation: Conversation, details: dict[str, str]) -> None:
    """A staff member's assignment change, in its transaction (the desk's own automatic ones are not)."""
    audit_record(
        actor=actor, action=action, target_type=AuditTarget.CONVERSATION, target_id=conversation.pk, details=details
    )


def _unassign_in_transaction(conversation: Conversation, actor: Principal, agent_id: str, *, record: bool) -> bool:
    moved = Participant.objects.filter(
        conversation_id=conversation.pk, user_id=agent_id, role=Role.ADMIN, assigned=True
    ).update(assigned=False)
    if not moved:
        return False
    Conversation.objects.filter(pk=conversation.pk, admin_count__gt=0).update(
        admin_count=F("admin_count") - 1, updated_at=timezone.now()
    )
    if record:
        _record(
            conversation,
            actor,
            notices.unassigned_metadata(
                admin_id=agent_id,
                admin_name=names.staff_name(agent_id),
                actor_name=names.principal_name(actor),
                by_self=agent_id == actor.user_id,
            ),
        )
    announce.conversation_updated(conversation.pk)
    return True


@retry_transient
def _release(conversation: Conversation, actor: Principal, agent_id: str, *, audited: bool = False) -> bool:
    with atomic():
        released = _unassign_in_transaction(conversation, actor, agent_id, record=True)
        if released and audited:
            _audit(actor, AuditAction.CONVERSATION_UNASSIGN, conversation, {"agentId": agent_id})
        return released


def unassign(*, conversation: Conversation, actor: Principal, agent_id: str) -> None:
    """Remove `agent_id`'s assignment (their past messages keep their sender). The conversation, if
    nobody is left on it, goes to someone else available (not them), or to the queue; their freed
    capacity takes the oldest queued conversation."""
    if not actor.is_admin:
        raise PermissionDenied("Only support staff may unassign.", code="admin_only")

    if not _release(conversation, actor, agent_id, audited=True):
        raise NotAssigned()
    route_if_unassigned(conversation.pk, exclude=[agent_id])
    drain_queue()


def transfer(*, conversation: Conversation, actor: Principal, agent_id: str) -> None:
    """Assign `agent_id` and unassign the caller, as one change with one notice."""
    if not actor.is_admin:
        raise PermissionDenied("Only support staff may transfer.", code="admin_only")
    if agent_id == actor.user_id:
        raise Conflict("You cannot transfer a conversation to yourself.", code="transfer_to_self")
    if not selectors.is_known_staff(agent_id):
        raise NotFound(f"{agent_id} is not a staff member.", code="not_staff")

    @retry_transient
    def write() -> None:
        with atomic():
            _assign_in_transaction(conversation, actor, agent_id, notices.TRANSFER)
            _unassign_in_transaction(conversation, actor, actor.user_id, record=False)
            _audit(actor, AuditAction.CONVERSATION_TRANSFER, conversation, {"from": actor.user_id, "to": agent_id})

    write()
    drain_queue()


# ---- automatic assignment ----------------------------------------------------------------------------


def _mode() -> str:
    return settings.CHAT["AUTO_ASSIGN"]


def anyone_online() -> bool:
    return AgentProfile.objects.filter(availability=Availability.ONLINE).exists()


def mark_away(now: datetime | None = None) -> int:
    """ONLINE agents with no staff socket for CHAT_AGENT_AWAY_AFTER_S become AWAY; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.CHAT["AGENT_AWAY_AFTER_S"])
    stale = AgentProfile.objects.filter(availability=Availability.ONLINE, last_seen_at__lt=cutoff)
    return stale.update(availability=Availability.AWAY, updated_at=now)


def _candidates(exclude: Iterable[str]) -> list[AgentProfile]:
    """ONLINE agents below capacity, best first: balanced: fewest open, ties by who waited longest since
    their last assignment (round-robin); round_robin: by that wait only."""
    agents = selectors.online_agents(exclude)
    counts = selectors.open_assigned_counts(a.agent_id for a in agents)
    agents = [a for a in agents if counts[a.agent_id] < a.capacity]
    never = datetime.min.replace(tzinfo=timezone.get_current_timezone())

    def waited(agent: AgentProfile) -> tuple[datetime, str]:
        return (agent.last_assigned_at or never, agent.agent_id)

    if _mode() == "balanced":
        return sorted(agents, key=lambda a: (counts[a.agent_id], *waited(a)))
    return sorted(agents, key=waited)


@retry_transient
def _try_claim(conversation_id: str, agent: AgentProfile) -> bool | None:
    """Give the conversation to `agent` if they are still ONLINE below capacity. True: assigned; False: the
    agent is full or gone (try the next); None: the conversation no longer waits (stop)."""
    now = timezone.now()
    with atomic():
        # The agent's row first: concurrent claims on one agent wait here (see the module docstring).
        if not AgentProfile.objects.filter(pk=agent.pk, availability=Availability.ONLINE).update(updated_at=now):
            return False
        if selectors.open_assigned(agent.pk) >= agent.capacity:
            return False
        claimed = Conversation.objects.filter(
            pk=conversation_id, status=ConversationStatus.ACTIVE, admin_count=0
        ).update(admin_count=1, last_agent_id=agent.pk, updated_at=now)
        if not claimed:
            return None
        conversation = Conversation.objects.get(pk=conversation_id)
        if not _make_assigned(conversation, agent.pk):
            raise Conflict("Assignment changed meanwhile.", code="assignment_race")  # rolls the claim back
        AgentProfile.objects.filter(pk=agent.pk).update(last_assigned_at=now)
        _record(
            conversation,
            DESK_ACTOR,
            notices.assigned_metadata(
                admin_id=agent.pk, admin_name=names.staff_name(agent.pk), actor_name=names.SYSTEM_NAME, how=notices.AUTO
            ),
        )
        announce.conversation_updated(conversation_id)
    return True


def auto_assign(conversation_id: str, *, exclude: Iterable[str] = ()) -> str | None:
    """Give a waiting conversation to the best available agent; returns their id, or None when it stays
    in the queue (nobody available, auto-assignment off, or it no longer waits)."""
    if _mode() == "off" or not anyone_online():
        return None  # the common case with nobody on duty: one read, no write
    mark_away()
    for agent in _candidates(exclude):
        try:
            outcome = _try_claim(conversation_id, agent)
        except Conflict:
            return None
        if outcome is None:
            return None
        if outcome:
            return agent.pk
    return None


def route_if_unassigned(conversation_id: str, *, exclude: Iterable[str] = ()) -> str | None:
    """auto_assign, never failing its caller: a change already committed does not depend on it."""
    try:
        return auto_assign(conversation_id, exclude=exclude)
    except Exception as exc:
        logger.warning("auto-assignment of %s failed: %s", conversation_id, exc, exc_info=True)
        return None


def drain_queue(limit: int = DRAIN_BATCH) -> int:
    """Assign waiting conversations, oldest first, while someone is available; returns how many. Called
    whenever capacity appears (an agent comes ONLINE, raises capacity, closes or hands over a conversation).
    Snoozed conversations wait until they wake."""
    if _mode() == "off":
        return 0
    assigned = 0
    skipped: list[str] = []
    while assigned + len(skipped) < limit:
        if not _candidates(()):
            break
        now = timezone.now()
        waiting = (
            Conversation.objects.filter(status=ConversationStatus.ACTIVE, admin_count=0)
            .exclude(pk__in=skipped)
            .exclude(snoozed_until__gt=now)
            .order_by("created_at", "id")
            .values_list("id", flat=True)
            .first()
        )
        if waiting is None:
            break
        if route_if_unassigned(waiting):
            assigned += 1
        else:
            skipped.append(waiting)
    return assigned


def after_reopen(conversation_id: str) -> None:
    """A reopened conversation goes back to its last agent only if they are ONLINE with capacity; anyone
    else assigned is released and it is routed like a new one (never to an agent who is away)."""
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None or conversation.status != ConversationStatus.ACTIVE:
        return
    assigned = list(
        Participant.objects.filter(conversation_id=conversation_id, role=Role.ADMIN, assigned=True).values_list(
            "user_id", flat=True
        )
    )
    last = conversation.last_agent_id
    keep = None
    if last in assigned:
        profile = AgentProfile.objects.filter(pk=last, availability=Availability.ONLINE).first()
        # Counted without this conversation, which is ACTIVE again and counts for them already.
        if profile is not None and selectors.open_assigned(last) <= profile.capacity:
            keep = last
    if _mode() == "off" and keep is None:
        return  # nothing would take it: leave the assignment as it was rather than strand it
    for agent_id in assigned:
        if agent_id != keep:
            _release(conversation, DESK_ACTOR, agent_id)
    if keep is None:
        route_if_unassigned(conversation_id)
