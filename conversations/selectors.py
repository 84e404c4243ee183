"""Reads of conversations, with the access rule applied in one place."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db.models import Count, Model, Prefetch, Q, QuerySet
from django.utils import timezone

from chatservice.authentication import Principal
from chatservice.errors import NotFound
from conversations.models import Conversation, ConversationStatus, Participant, Role
from messaging.models import Message, MessageType
from messaging.visibility import unpreviewable_types

# Participants in the order every representation lists them.
PARTICIPANT_ORDER = ("joined_at", "id")


def _with_participants(qs: QuerySet[Conversation]) -> QuerySet[Conversation]:
    return qs.prefetch_related(Prefetch("participants", queryset=Participant.objects.order_by(*PARTICIPANT_ORDER)))


def participants_of(conversation_ids: list[str]) -> dict[str, list[Participant]]:
    """Each conversation's participants, in one query. The list page's way to them: Django's
    prefetch machinery cost more than the query itself on a page of 20 (bench/: README, REST latency)."""
    grouped: dict[str, list[Participant]] = {cid: [] for cid in conversation_ids}
    for participant in Participant.objects.filter(conversation_id__in=conversation_ids).order_by(*PARTICIPANT_ORDER):
        grouped[participant.conversation_id].append(participant)
    return grouped


def conversation_list(
    *,
    viewer: Principal,
    status: str | None = None,
    assigned: str | None = None,
    label: str | None = None,
    priority: str | None = None,
    snoozed: bool | None = None,
    q: str | None = None,
    now: datetime | None = None,
) -> QuerySet[Conversation]:
    """Donors see the conversations they take part in; staff see all, optionally only those assigned to
    them (`assigned="me"`) or to nobody (`assigned="none"`), by label, priority and snooze. Staff do not
    see snoozed conversations unless they ask (`snoozed=True`: only those; False, the staff default:
    none of them). Newest activity first. Participants are not loaded: see participants_of."""
    qs = Conversation.objects.all()
    if not viewer.is_admin:
        qs = qs.filter(participants__user_id=viewer.user_id, participants__role=viewer.role)
        return (qs.filter(status=status) if status else qs).order_by("-updated_at", "-id")
    if assigned == "me":
        qs = qs.filter(
            participants__user_id=viewer.user_id, participants__role=viewer.role, participants__assigned=True
        )
    elif assigned == "none":
        qs = qs.filter(admin_count=0)
    if status:
        qs = qs.filter(status=status)
    if label:
        qs = qs.filter(label_rows__label=label)
    if priority:
        qs = qs.filter(priority=priority)
    if q:
        qs = qs.filter(Q(pk=q) | Q(created_by=q) | Q(subject__icontains=q))
    now = now or timezone.now()
    if snoozed is True:
        qs = qs.filter(snoozed_until__gt=now)
    elif snoozed is False or snoozed is None:
        qs = qs.filter(Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=now))
    return qs.order_by("-updated_at", "-id")


# ---- the access rule (REST and WebSocket) -----------------------------------------------------------


def is_person(participant: Participant, person: Principal) -> bool:
    """Whether a participation is this person's: the same id *and* the same role. A donor whose id happens
    to equal a staff member's never matches that staff member's participations, nor the reverse."""
    return participant.user_id == person.user_id and participant.role == person.role


def takes_part(viewer: Principal, participants: Iterable[Participant]) -> bool:
    """Whether the viewer is one of these participants: the one comparison every access check makes."""
    return any(is_person(p, viewer) for p in participants)


@dataclass(frozen=True)
class Access:
    """What a viewer may do with a conversation id. Support staff may see every conversation; donors
    only those they take part in."""

    conversation: Conversation | None  # None: no such conversation
    takes_part: bool
    viewer_is_staff: bool

    @property
    def allowed(self) -> bool:
        return self.conversation is not None and (self.takes_part or self.viewer_is_staff)


def conversation_access(*, viewer: Principal, conversation_id: str) -> Access:
    """The access rule, for every transport. Two queries: the conversation and its participants."""
    conversation = _with_participants(Conversation.objects.filter(pk=conversation_id)).first()
    if conversation is None:
        return Access(None, False, viewer.is_admin)
    return Access(conversation, takes_part(viewer, conversation.participants.all()), viewer.is_admin)


def conversation_get(*, viewer: Principal, conversation_id: str) -> Conversation:
    """The conversation if the viewer may see it. A donor who does not take part gets the same 404 as
    for an id that does not exist, so ids reveal nothing."""
    access = conversation_access(viewer=viewer, conversation_id=conversation_id)
    if not access.allowed:
        raise NotFound("Conversation not found.")
    assert access.conversation is not None  # allowed implies it exists
    return access.conversation


def last_seq(conversation_id: str) -> int:
    """The number of the conversation's latest message (0 when it has none)."""
    return Conversation.objects.filter(pk=conversation_id).values_list("last_seq", flat=True).get()


def last_seqs(conversation_ids: list[str]) -> dict[str, int]:
    """last_seq of each existing conversation among `conversation_ids`, in one query."""
    return dict(Conversation.objects.filter(pk__in=conversation_ids).values_list("id", "last_seq"))


def unread_count(last_seq: int, participant: Participant, *, last_note_seq: int = 0, conversation_id: str = "") -> int:
    """Messages after the participant's read watermark that they can see: the one unread formula. A
    donor does not see internal notes, so notes after their watermark do not count; that takes a query
    only when a note was written since they last read (last_note_seq above their watermark)."""
    unread = max(last_seq - participant.last_read_seq, 0)
    if participant.role != Role.USER or last_note_seq <= participant.last_read_seq:
        return unread
    notes = Message.objects.filter(
        conversation_id=conversation_id or participant.conversation_id,
        seq__gt=participant.last_read_seq,
        seq__lte=last_seq,
        message_type=MessageType.NOTE,
    ).count()
    return max(unread - notes, 0)


def unread_of(conversation: Conversation, participant: Participant) -> int:
    return unread_count(
        conversation.last_seq, participant, last_note_seq=conversation.last_note_seq, conversation_id=conversation.pk
    )


# ---- operator reads (management commands) ---------------------------------------------------------

Row = TypeVar("Row", bound=Model)


def in_pk_batches(qs: QuerySet[Row], batch_size: int) -> Iterator[list[Row]]:
    """The rows of `qs` in primary-key order, `batch_size` at a time (keyset: each batch starts after
    the last key of the previous one). Memory stays flat, each query is an index range on every backend,
    and rows the caller changes so they no longer match simply drop out of later batches."""
    last: Any = None
    while True:
        page = qs if last is None else qs.filter(pk__gt=last)
        rows = list(page.order_by("pk")[:batch_size])
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        last = rows[-1].pk


def idle_filter(idle_since: datetime) -> Q:
    """No activity since `idle_since`. updated_at moves with every message and change; last_message_at
    is checked as well because a message written by a worker whose clock ran ahead carries that later
    time (messaging.services keeps createdAt in sequence order), and it is activity all the same."""
    return Q(updated_at__lt=idle_since) & (Q(last_message_at__isnull=True) | Q(last_message_at__lt=idle_since))


def conversations_idle(*, status: str, idle_since: datetime) -> QuerySet[Conversation]:
    """Conversations in `status` untouched since `idle_since` (unordered: see in_pk_batches)."""
    return Conversation.objects.filter(idle_filter(idle_since), status=status)


@dataclass(frozen=True)
class WaitingConversation:
    conversation_id: str
    created_at: datetime
    age: timedelta  # since it was opened


# Percentiles chat_stats reports for response and resolution times.
STATS_PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Durations:
    """Percentiles (nearest rank) of a set of durations, in seconds; empty when there are none."""

    count: int
    seconds: dict[int, float]


def durations(values: list[float]) -> Durations:
    ordered = sorted(values)
    if not ordered:
        return Durations(0, {})
    return Durations(
        len(ordered), {p: ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1] for p in STATS_PERCENTILES}
    )


@dataclass(frozen=True)
class ChatStats:
    by_status: dict[str, int]  # every status, 0 included
    messages: int
    unassigned_active: int  # ACTIVE with nobody assigned: the support queue
    oldest_unassigned: WaitingConversation | None
    first_response: Durations = Durations(0, {})  # createdAt to firstResponseAt
    resolution: Durations = Durations(0, {})  # createdAt to the last close, of conversations closed now

    @property
    def conversations(self) -> int:
        return sum(self.by_status.values())


def chat_stats(*, now: datetime | None = None) -> ChatStats:
    """Counts for operators. A handful of aggregate queries, each an index or table count; the oldest
    unassigned conversation is the one waiting longest since it was opened, as nobody has taken it."""
    now = now or timezone.now()
    by_status = dict.fromkeys(ConversationStatus.values, 0)
    for row in Conversation.objects.order_by().values("status").annotate(n=Count("id")):
        by_status[row["status"]] = row["n"]
    queue = Conversation.objects.filter(status=ConversationStatus.ACTIVE, admin_count=0)
    oldest = queue.order_by("created_at", "id").values_list("id", "created_at").first()
    responded = Conversation.objects.filter(first_response_at__isnull=False).values_list(
        "created_at", "first_response_at"
    )
    resolved = Conversation.objects.filter(closed_at__isnull=False).values_list("created_at", "closed_at")
    return ChatStats(
        by_status=by_status,
        messages=Message.objects.count(),
        unassigned_active=queue.count(),
        oldest_unassigned=WaitingConversation(oldest[0], oldest[1], now - oldest[1]) if oldest else None,
        first_response=durations([(end - start).total_seconds() for start, end in responded.iterator()]),
        resolution=durations([(end - start).total_seconds() for start, end in resolved.iterator()]),
    )


# ---- support console reads (Django admin) ---------------------------------------------------------


# How far back the list looks for a conversation's latest message worth previewing (not a SYSTEM
# notice; for donors, not a note): one bounded range per conversation, in one query per page.
PREVIEW_LOOKBACK = 20


def latest_previewable_of(conversations: list[Conversation], *, role: str) -> dict[str, Message]:
    """The latest TEXT or FILE message (and for staff, note) of each conversation, by id: one query by
    key for the conversations that hold their preview's key (every one written to since it was kept),
    and one search of recent messages for the others."""
    staff = role == Role.ADMIN
    keys = {c.pk: c.preview_message_id if staff else c.public_preview_message_id for c in conversations}
    known = [key for key in keys.values() if key]
    found = {m.conversation_id: m for m in Message.objects.filter(pk__in=known)} if known else {}
    unknown = [c for c in conversations if not keys[c.pk]]
    return {**found, **_latest_previewable_searched(unknown, role=role)} if unknown else found


def _latest_previewable_searched(conversations: list[Conversation], *, role: str) -> dict[str, Message]:
    """latest_previewable_of by searching each conversation's last PREVIEW_LOOKBACK messages."""
    ranges = Q()
    for conversation in conversations:
        if conversation.last_seq:
            ranges |= Q(conversation_id=conversation.pk, seq__gt=max(conversation.last_seq - PREVIEW_LOOKBACK, 0))
    if not ranges:
        return {}
    hidden = sorted(unpreviewable_types(role))
    # Keys first (index columns only), then the chosen rows: a page of 50 long conversations would
    # otherwise build up to 1,000 message objects to keep 50.
    chosen: dict[str, str] = {}
    candidates = Message.objects.filter(ranges).exclude(message_type__in=hidden).order_by("-seq")
    for conversation_id, message_id in candidates.values_list("conversation_id", "id"):
        chosen.setdefault(conversation_id, message_id)
    if not chosen:
        return {}
    return {m.conversation_id: m for m in Message.objects.filter(pk__in=list(chosen.values()))}


def conversations_for_inbox(conversation_ids: list[str]) -> list[Conversation]:
    return list(_with_participants(Conversation.objects.filter(pk__in=conversation_ids)).order_by("-updated_at", "-id"))


def unread_for(
    conversation: Conversation, viewer: Principal, participants: Iterable[Participant] | None = None
) -> int | None:
    """The unread count of `viewer` in `conversation`, or None when they are not a participant (no
    watermark: the API's unreadCount is null then too). `participants` when the caller holds them;
    otherwise participants.all(), so a prefetched list costs no query."""
    for participant in conversation.participants.all() if participants is None else participants:
        if is_person(participant, viewer):
            return unread_of(conversation, participant)
    return None
