"""Who a console (Django admin) staff account is in the chat.

Auth Service tokens name people by their subject; console staff log in with a Django username. The two
namespaces must never meet: a donor whose subject happened to equal a staff username would otherwise be
that staff member. So a console account acts as `staff:<username>`, a prefix no token may carry, unless an
operator has linked it to its Auth Service subject (a StaffSubject): then it acts as that subject, and a
person using both the console and an ADMIN token is one identity.

Portable to MongoDB like the chat models: a string key in `_id`, plain fields, a one-to-one to the user.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from chatservice.ids import ID_MAX_LENGTH, new_id
from conversations.models import USER_ID_MAX_LENGTH

STAFF_SUBJECT_PREFIX = "link_"


def new_staff_subject_id() -> str:
    return new_id(STAFF_SUBJECT_PREFIX)


class StaffSubject(models.Model):
    id = models.CharField(
        primary_key=True, max_length=ID_MAX_LENGTH, db_column="_id", default=new_staff_subject_id, editable=False
    )
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_subject")
    # The Auth Service subject (the tokens' `sub`) this account acts as; one account per subject.
    subject = models.CharField(max_length=USER_ID_MAX_LENGTH, unique=True)
    linked_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "link to an Auth Service subject"

    def __str__(self) -> str:
        return f"{self.user} → {self.subject}"
