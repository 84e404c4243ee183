"""The support desk's own records: agents (availability, capacity) and canned responses.

Portable to MongoDB like the chat models: string keys in `_id`, plain fields, no joins needed to read them.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from chatservice.ids import ID_MAX_LENGTH, new_id
from conversations.models import DISPLAY_NAME_MAX_LENGTH, USER_ID_MAX_LENGTH

CANNED_PREFIX = "canned_"
SHORT_CODE_MAX_LENGTH = 32
CANNED_CONTENT_MAX_LENGTH = 4000
# Open conversations an agent takes by default before auto-assignment passes them over.
DEFAULT_CAPACITY = 5
MAX_CAPACITY = 1000


class Availability(models.TextChoices):
    ONLINE = "ONLINE"
    AWAY = "AWAY"
    OFFLINE = "OFFLINE"


class AgentProfile(models.Model):
    """A staff member as the desk sees them, keyed by their chat id (identity.selectors.staff_chat_id, or
    an ADMIN token's subject). Created on first use."""

    agent_id = models.CharField(primary_key=True, max_length=USER_ID_MAX_LENGTH, db_column="_id")
    # What donors see (blank: the console account's first name, else "Support"; desk.names).
    display_name = models.CharField(max_length=DISPLAY_NAME_MAX_LENGTH, blank=True, default="")
    availability = models.CharField(max_length=8, choices=Availability.choices, default=Availability.OFFLINE)
    capacity = models.PositiveIntegerField(default=DEFAULT_CAPACITY)
    # The last moment a staff socket of theirs was known open; ONLINE agents without one for
    # CHAT_AGENT_AWAY_AFTER_S become AWAY.
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # When auto-assignment last gave them a conversation: the round-robin order, and the tie-break.
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["availability", "last_assigned_at"], name="agent_available_idx")]

    def __str__(self) -> str:
        return self.display_name or self.agent_id


def new_canned_id() -> str:
    return new_id(CANNED_PREFIX)


class CannedResponse(models.Model):
    id = models.CharField(
        primary_key=True, max_length=ID_MAX_LENGTH, db_column="_id", default=new_canned_id, editable=False
    )
    owner_id = models.CharField(max_length=USER_ID_MAX_LENGTH)  # the staff member who wrote it
    short_code = models.CharField(max_length=SHORT_CODE_MAX_LENGTH)
    content = models.TextField()
    # Shared responses are offered to every agent; the others only to their owner.
    shared = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["short_code", "id"]
        constraints = [models.UniqueConstraint(fields=["owner_id", "short_code"], name="canned_owner_code_uniq")]
        indexes = [models.Index(fields=["shared", "short_code"], name="canned_shared_idx")]

    def __str__(self) -> str:
        return f"/{self.short_code}"
