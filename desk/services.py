"""Writes of the desk: an agent's availability and capacity, their presence, canned responses."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from chatservice.authentication import Principal
from chatservice.db import atomic, retry_transient
from chatservice.errors import Conflict, NotFound, PermissionDenied
from conversations.models import Participant, Role
from desk import assignment, names
from desk.models import AgentProfile, Availability, CannedResponse

UNSET: Any = object()


def _staff_only(actor: Principal) -> None:
    if not actor.is_admin:
        raise PermissionDenied("Only support staff may do this.", code="admin_only")


def agent_ensure(agent_id: str) -> AgentProfile:
    profile, _ = AgentProfile.objects.get_or_create(pk=agent_id)
    return profile


def agent_update(
    *, actor: Principal, availability: str = UNSET, capacity: int = UNSET, display_name: str = UNSET
) -> AgentProfile:
    """The caller's own availability, capacity and display name. Coming ONLINE (or raising capacity)
    counts as being seen, and hands them the oldest waiting conversations up to their capacity."""
    _staff_only(actor)
    now = timezone.now()
    changes: dict[str, Any] = {"updated_at": now}
    if availability is not UNSET:
        changes["availability"] = availability
        if availability == Availability.ONLINE:
            changes["last_seen_at"] = now
    if capacity is not UNSET:
        changes["capacity"] = capacity
    if display_name is not UNSET:
        changes["display_name"] = display_name

    @retry_transient
    def write() -> None:
        with atomic():
            agent_ensure(actor.user_id)
            AgentProfile.objects.filter(pk=actor.user_id).update(**changes)

    write()
    if display_name is not UNSET:
        names.forget_staff_name(actor.user_id)
        Participant.objects.filter(user_id=actor.user_id, role=Role.ADMIN).update(
            display_name=names.staff_name(actor.user_id)
        )
    profile = AgentProfile.objects.get(pk=actor.user_id)
    if profile.availability == Availability.ONLINE:
        assignment.drain_queue()
    return profile


def agents_seen(agent_ids: list[str]) -> None:
    """Staff sockets of these agents are open now (called on open and by the presence refresh): they
    are not away. An agent who had become AWAY by silence comes back ONLINE; OFFLINE is a choice, kept."""
    if not agent_ids:
        return
    now = timezone.now()
    # One UPDATE on every socket open and refresh; a profile is made only the first time.
    if AgentProfile.objects.filter(pk__in=agent_ids).update(last_seen_at=now) < len(agent_ids):
        for agent_id in agent_ids:
            AgentProfile.objects.get_or_create(pk=agent_id, defaults={"last_seen_at": now})


# ---- canned responses ---------------------------------------------------------------------------------


def canned_create(*, actor: Principal, short_code: str, content: str, shared: bool = False) -> CannedResponse:
    _staff_only(actor)
    try:
        with atomic():
            return CannedResponse.objects.create(
                owner_id=actor.user_id, short_code=short_code, content=content, shared=shared
            )
    except IntegrityError:
        raise Conflict(f"You already have a canned response /{short_code}.", code="short_code_taken") from None


def _own(actor: Principal, canned_id: str) -> CannedResponse:
    _staff_only(actor)
    canned = CannedResponse.objects.filter(pk=canned_id).first()
    if canned is None or not (canned.shared or canned.owner_id == actor.user_id):
        raise NotFound("No such canned response.")
    return canned


def canned_update(
    *, actor: Principal, canned_id: str, short_code: str = UNSET, content: str = UNSET, shared: bool = UNSET
) -> CannedResponse:
    """Any agent may edit a shared response (it is the team's); a personal one only its owner."""
    canned = _own(actor, canned_id)
    for field, value in (("short_code", short_code), ("content", content), ("shared", shared)):
        if value is not UNSET:
            setattr(canned, field, value)
    canned.updated_at = timezone.now()
    try:
        with atomic():
            canned.save()
    except IntegrityError:
        raise Conflict(f"You already have a canned response /{canned.short_code}.", code="short_code_taken") from None
    return canned


def canned_delete(*, actor: Principal, canned_id: str) -> None:
    canned = _own(actor, canned_id)
    canned.delete()
