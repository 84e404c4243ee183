"""Reads of the desk: agents, their load, canned responses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet

from chatservice.authentication import STAFF_ID_PREFIX, Principal
from conversations.models import ConversationStatus, Participant, Role
from csat.selectors import csat_by_agent
from desk import names
from desk.models import AgentProfile, Availability, CannedResponse


def open_assigned_counts(agent_ids: Iterable[str]) -> dict[str, int]:
    """ACTIVE conversations each agent is assigned to, in one grouped query (closed ones free capacity)."""
    ids = list(agent_ids)
    if not ids:
        return {}
    rows = (
        Participant.objects.filter(
            user_id__in=ids, role=Role.ADMIN, assigned=True, conversation__status=ConversationStatus.ACTIVE
        )
        .order_by()
        .values("user_id")
        .annotate(n=Count("id"))
    )
    counts = dict.fromkeys(ids, 0)
    counts.update({row["user_id"]: row["n"] for row in rows})
    return counts


def open_assigned(agent_id: str) -> int:
    return open_assigned_counts([agent_id])[agent_id]


@dataclass(frozen=True)
class Agent:
    agent_id: str
    display_name: str
    availability: str
    open_assigned: int
    capacity: int
    # Ratings of conversations last assigned to them: {"count", "average"}, or None before the first.
    csat: dict[str, float] | None = None


def _csat(ratings: tuple[int, float] | None) -> dict[str, float] | None:
    return None if ratings is None else {"count": ratings[0], "average": round(ratings[1], 2)}


def agent_list() -> list[Agent]:
    """Every agent the desk knows (anyone with staff activity), by display name."""
    profiles = list(AgentProfile.objects.order_by("agent_id"))
    ids = [p.agent_id for p in profiles]
    counts, ratings = open_assigned_counts(ids), csat_by_agent(ids)
    agents = [
        Agent(
            p.agent_id,
            names.staff_name(p.agent_id),
            p.availability,
            counts[p.agent_id],
            p.capacity,
            _csat(ratings.get(p.agent_id)),
        )
        for p in profiles
    ]
    return sorted(agents, key=lambda a: (a.display_name.lower(), a.agent_id))


def agent_get(agent_id: str) -> Agent | None:
    profile = AgentProfile.objects.filter(pk=agent_id).first()
    if profile is None:
        return None
    return Agent(
        agent_id,
        names.staff_name(agent_id),
        profile.availability,
        open_assigned(agent_id),
        profile.capacity,
        _csat(csat_by_agent([agent_id]).get(agent_id)),
    )


def is_known_staff(agent_id: str) -> bool:
    """Whether an id is a staff member's: one the desk knows (a profile is made on first staff activity),
    or an active console staff account. Assigning or transferring to anyone else is refused."""
    if AgentProfile.objects.filter(pk=agent_id).exists():
        return True
    if agent_id.startswith(STAFF_ID_PREFIX):
        username = agent_id[len(STAFF_ID_PREFIX) :]
        return get_user_model().objects.filter(username=username, is_staff=True, is_active=True).exists()
    return False


def online_agents(exclude: Iterable[str] = ()) -> list[AgentProfile]:
    return list(AgentProfile.objects.filter(availability=Availability.ONLINE).exclude(pk__in=list(exclude)))


def canned_for(viewer: Principal) -> QuerySet[CannedResponse]:
    """The responses an agent may use: their own and the shared ones."""
    return CannedResponse.objects.filter(Q(owner_id=viewer.user_id) | Q(shared=True)).order_by("short_code", "id")
