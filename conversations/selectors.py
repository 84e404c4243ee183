"""Reads of conversations, with the access rule applied in one place."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from chatservice.authentication import Principal
from chatservice.errors import NotFound
from conversations.models import Conversation, Participant, Role


def _with_participants(qs: QuerySet[Conversation]) -> QuerySet[Conversation]:
    return qs.prefetch_related(Prefetch("participants", queryset=Participant.objects.order_by("joined_at", "id")))


def conversation_list(
    *, viewer: Principal, status: str | None = None, assigned: str | None = None
) -> QuerySet[Conversation]:
    """Donors see the conversations they take part in; staff see all, optionally only those assigned to
    them (`assigned="me"`) or to nobody (`assigned="none"`). Newest activity first."""
    qs = Conversation.objects.all()
    if not viewer.is_admin:
        qs = qs.filter(participants__user_id=viewer.user_id)
    elif assigned == "me":
        qs = qs.filter(participants__user_id=viewer.user_id, participants__role=Role.ADMIN)
    elif assigned == "none":
        qs = qs.filter(admin_count=0)
    if status:
        qs = qs.filter(status=status)
    return _with_participants(qs.order_by("-updated_at", "-id"))


def conversation_get(*, viewer: Principal, conversation_id: str) -> Conversation:
    """The conversation if the viewer may see it. A donor who does not take part gets the same 404 as
    for an id that does not exist, so ids reveal nothing."""
    conversation = _with_participants(Conversation.objects.filter(pk=conversation_id)).first()
    if conversation is None:
        raise NotFound("Conversation not found.")
    if not viewer.is_admin and not any(p.user_id == viewer.user_id for p in conversation.participants.all()):
        raise NotFound("Conversation not found.")
    return conversation
