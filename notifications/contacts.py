"""Where to reach a donor: the `email` claim of their latest token, stored once per change.

Authentication calls `remember_email` on every request and socket, so it must cost nothing when the
address is unchanged: each process remembers the last address it stored per person and writes only on a
change (at most one write per person and process per CONTACT_RECHECK_S, after erasure elsewhere).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from conversations.models import Role
from notifications.models import Contact, person_key

if TYPE_CHECKING:
    from chatservice.authentication import Principal

logger = logging.getLogger(__name__)

# People whose stored address this process remembers; beyond it the oldest is forgotten (one more write).
REMEMBERED_MAX = 10_000
# After this long the process checks the stored row again: another process may have erased it.
CONTACT_RECHECK_S = 600.0

_remembered: OrderedDict[str, tuple[str, float]] = OrderedDict()
_lock = threading.Lock()


def remember_email(principal: Principal) -> None:
    """Store a donor's address from their token if it changed. Never fails the request: a failed write
    is logged and tried again on the next request. Staff addresses are not kept (nothing uses them)."""
    if not needs_storing(principal):
        return
    email, key, now = principal.email, person_key(principal.role, principal.user_id), time.monotonic()
    try:
        _store(key, principal, email)
    except DatabaseError as exc:
        logger.warning("storing the notification address of %s failed: %s", principal, exc)
        return
    with _lock:
        _remembered[key] = (email, now)
        _remembered.move_to_end(key)
        while len(_remembered) > REMEMBERED_MAX:
            _remembered.popitem(last=False)


def needs_storing(principal: Principal) -> bool:
    """Whether `remember_email` would write: a donor's address this process has not stored lately. Memory
    only, so a socket asks before taking a database thread."""
    if not principal.email or principal.role != Role.USER:
        return False
    with _lock:
        known = _remembered.get(person_key(principal.role, principal.user_id))
    return known is None or known[0] != principal.email or time.monotonic() - known[1] >= CONTACT_RECHECK_S


def _store(key: str, principal: Principal, email: str) -> None:
    now = timezone.now()
    if Contact.objects.filter(pk=key).exclude(email=email).update(email=email, updated_at=now):
        return
    if Contact.objects.filter(pk=key).exists():
        return
    try:
        with transaction.atomic():
            Contact.objects.create(pk=key, user_id=principal.user_id, role=principal.role, email=email, updated_at=now)
    except IntegrityError:  # another request created it meanwhile
        Contact.objects.filter(pk=key).update(email=email, updated_at=now)


def forget(role: str, user_id: str) -> None:
    """This process's memory of the person (erasure)."""
    with _lock:
        _remembered.pop(person_key(role, user_id), None)


def forget_all() -> None:
    with _lock:
        _remembered.clear()
