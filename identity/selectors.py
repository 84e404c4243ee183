"""Reads of staff identities."""

from __future__ import annotations

from typing import Any

from chatservice.authentication import STAFF_ID_PREFIX, Principal
from conversations.models import Role
from identity.models import StaffSubject


def staff_chat_id(user: Any) -> str:
    """The chat id a console account acts as: its linked Auth Service subject, else `staff:<username>`."""
    subject = StaffSubject.objects.filter(user_id=user.pk).values_list("subject", flat=True).first()
    return subject or f"{STAFF_ID_PREFIX}{user.get_username()}"


def staff_principal(user: Any) -> Principal:
    """The principal of a logged-in console staff account (ADMIN)."""
    return Principal(user_id=staff_chat_id(user), role=Role.ADMIN, via="session")
