"""Reads of conversations, with the access rule applied in one place."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db.models import Count, Model, Prefetch, Q, QuerySet
from django.utils import timezone

from chatservice.authentication import Principal
from chatservice.errors import NotFound
from conversations.models import Conversation, ConversationStatus, Participant
from messaging.models import Message


def _with_participants(qs: QuerySet[Conversation]) -> QuerySet[Conversation]:
    return qs.prefetch_related(Prefetch("participants", queryset=Participant.objects.order_by("joined_at", "id")))


def conversation_list(
    *, viewer: Principal, status: str | None = None, assigned: str | None = None
) -> QuerySet[Conversation]:
    """Donors see the conversations they take part in; staff see all, optionally only those assigned to
    them (`assigned="me"`) or to nobody (`assigned="none"`). Newest activity first."""
    qs = Conversation.objects.all()
    if not viewer.is_admin or assigned == "me":
        qs = qs.filter(participants__user_id=viewer.user_id, participants__role=viewer.role)
    elif assigned == "none":
        qs = qs.filter(admin_count=0)
    if status:
        qs = qs.filter(status=status)
    return _with_participants(qs.order_by("-updated_at", "-id"))


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


def unread_count(last_seq: int, participant: Participant) -> int:
    """Messages after the participant's read watermark: the one unread formula."""
    return max(last_seq - participant.last_read_seq, 0)


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


@dataclass(frozen=True)
class ChatStats:
    by_status: dict[str, int]  # every status, 0 included
    messages: int
    unassigned_active: int  # ACTIVE with no staff participant: the support queue
    oldest_unassigned: WaitingConversation | None

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
    return ChatStats(
        by_status=by_status,
        messages=Message.objects.count(),
        unassigned_active=queue.count(),
        oldest_unassigned=WaitingConversation(oldest[0], oldest[1], now - oldest[1]) if oldest else None,
    )


# ---- support console reads (Django admin) ---------------------------------------------------------


def latest_messages_of(conversations: list[Conversation]) -> dict[str, Message]:
    """The latest message of each conversation (the one numbered its last_seq), by conversation id, in
    one query whatever the number of conversations: an OR of exact (conversation, seq) pairs, each a
    point lookup on the unique (conversation, seq) index, on SQL and MongoDB alike (no subquery)."""
    pairs = Q()
    for conversation in conversations:
        if conversation.last_seq:
            pairs |= Q(conversation_id=conversation.pk, seq=conversation.last_seq)
    if not pairs:
        return {}
    return {message.conversation_id: message for message in Message.objects.filter(pairs)}


def unread_for(conversation: Conversation, viewer: Principal) -> int | None:
    """The unread count of `viewer` in `conversation`, or None when they are not a participant (no
    watermark: the API's unreadCount is null then too). Reads participants.all(), so a prefetched list
    costs no query."""
    for participant in conversation.participants.all():
        if is_person(participant, viewer):
            return unread_count(conversation.last_seq, participant)
    return None


def thread_latest(conversation_id: str, limit: int) -> list[Message]:
    """The latest `limit` messages of a conversation, oldest first (the history index, read backwards)."""
    latest = list(Message.objects.filter(conversation_id=conversation_id).order_by("-seq")[:limit])
    latest.reverse()
    return latest


def conversation_with_participants(conversation_id: str) -> Conversation | None:
    """The conversation with its participants (for the console page; staff may see every one)."""
    return _with_participants(Conversation.objects.filter(pk=conversation_id)).first()
