"""How people are named to each other. Donors never see a staff username: a staff member is their
desk profile's display name, else their console account's first name, else "Support"."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from django.contrib.auth import get_user_model

from chatservice.authentication import STAFF_ID_PREFIX, Principal
from conversations.rendering import STAFF_FALLBACK_NAME
from identity.models import StaffSubject

# The name of changes made by the service itself (operator commands, schedules).
SYSTEM_NAME = "CareForAll support"
# What an erased staff member is called in the notices that named them.
ERASED_STAFF_NAME = "A former agent"
# Names are read on every staff send, so each process keeps them this long. In process, not in Redis:
# a send must not depend on Redis being up (the channel layer is a doorbell, the database the store).
# A profile change clears the entry in the process that made it; other workers see it within this.
NAME_CACHE_S = 60
_names: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def forget_staff_name(agent_id: str | None = None) -> None:
    with _lock:
        if agent_id is None:
            _names.clear()
        else:
            _names.pop(agent_id, None)


def _console_first_name(agent_id: str) -> str:
    users = get_user_model().objects
    if agent_id.startswith(STAFF_ID_PREFIX):
        user = users.filter(username=agent_id[len(STAFF_ID_PREFIX) :]).values_list("first_name", flat=True).first()
        return user or ""
    link = StaffSubject.objects.filter(subject=agent_id).values_list("user_id", flat=True).first()
    if link is None:
        return ""
    return users.filter(pk=link).values_list("first_name", flat=True).first() or ""


def staff_name(agent_id: str) -> str:
    """The display name of a staff member (never their username or id)."""
    from desk.models import AgentProfile  # desk.models imports conversations, which imports this lazily

    if agent_id == "system":
        return SYSTEM_NAME
    now = time.monotonic()
    cached = _names.get(agent_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    profile = AgentProfile.objects.filter(pk=agent_id).values_list("display_name", flat=True).first()
    name = (profile or "").strip() or _console_first_name(agent_id).strip() or STAFF_FALLBACK_NAME
    with _lock:
        _names[agent_id] = (now + NAME_CACHE_S, name)
    return name


def person_name(user_id: str, role: str) -> str:
    """Staff: their display name. Donors: their user id (the donation platform's own id for them; the
    chat knows no other name)."""
    return staff_name(user_id) if role == "ADMIN" else user_id


def principal_name(principal: Principal) -> str:
    return person_name(principal.user_id, principal.role)


def names_of(people: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    return {person: person_name(*person) for person in set(people)}
