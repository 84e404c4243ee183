"""Writes of CSAT: a donor's rating of a closed conversation."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from chatservice.authentication import Principal
from chatservice.db import atomic
from chatservice.errors import Conflict, PermissionDenied
from conversations import announce
from conversations.models import Conversation, ConversationStatus
from csat.models import CsatResponse
from realtime.events import iso
from webhooks.models import EventType
from webhooks.services import events_record


def csat_json(response: CsatResponse) -> dict[str, Any]:
    """The REST representation of a rating (POST …/csat's answer, the csat.submitted event's data, and
    the conversation's `csat`)."""
    return {
        "conversationId": response.conversation_id,
        "rating": response.rating,
        "comment": response.comment,
        "submittedAt": iso(response.created_at),
    }


ALREADY_RATED = "This conversation was already rated since it was closed."


def csat_submit(*, conversation: Conversation, donor: Principal, rating: int, comment: str = "") -> CsatResponse:
    """Record the donor's rating of the conversation's latest closing: once per closing (409
    csat_already_submitted), only while it is CLOSED (409 conversation_not_closed), donors only (403)."""
    if donor.is_admin:
        raise PermissionDenied("Only the donor rates a conversation.", code="csat_donor_only")
    now = timezone.now()
    try:
        with atomic():
            current = (
                Conversation.objects.filter(pk=conversation.pk).values("status", "closed_at", "last_agent_id").get()
            )
            if current["status"] != ConversationStatus.CLOSED or current["closed_at"] is None:
                raise Conflict("Only a closed conversation can be rated.", code="conversation_not_closed")
            if CsatResponse.objects.filter(conversation_id=conversation.pk, closed_at=current["closed_at"]).exists():
                raise Conflict(ALREADY_RATED, code="csat_already_submitted")
            response = CsatResponse.objects.create(
                conversation_id=conversation.pk,
                closed_at=current["closed_at"],
                rating=rating,
                comment=comment,
                donor_id=donor.user_id,
                agent_id=current["last_agent_id"],
                created_at=now,
            )
            rendered = csat_json(response)
            Conversation.objects.filter(pk=conversation.pk).update(csat=rendered)
            events_record(EventType.CSAT_SUBMITTED, conversation.pk, refs={"csatId": response.pk})
            announce.conversation_updated(conversation.pk)
    except IntegrityError:  # the same donor's second tab, at the same moment: the unique index decided
        raise Conflict(ALREADY_RATED, code="csat_already_submitted") from None
    return response
