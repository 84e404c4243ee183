"""Reads of staff identities."""

from __future__ import annotations

from typing import Any

from chatservice.authentication import STAFF_ID_PREFIX, Principal
from conversations.models import Role
from identity.models import StaffSubject

# Where the chat id is kept on a user object: one query per request, however many times the admin asks.
CHAT_ID_ATTRIBUTE = "_chat_id"


def staff_chat_id(user: Any) -> str:
    """The chat id a console account acts as: its linked Auth Service subject, else `staff:<username>`."""
    cached = getattr(user, CHAT_ID_ATTRIBUTE, None)
    if cached is not None:
        return cached
    subject = StaffSubject.objects.filter(user_id=user.pk).values_list("subject", flat=True).first()
    chat_id = subject or f"{STAFF_ID_PREFIX}{user.get_username()}"
    setattr(user, CHAT_ID_ATTRIBUTE, chat_id)
    return chat_id


def staff_principal(user: Any) -> Principal:
    """The principal of a logged-in console staff account (ADMIN)."""
    return Principal(user_id=staff_chat_id(user), role=Role.ADMIN, via="session")
