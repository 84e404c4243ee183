"""Offline notifications: where to reach a person, and what they were last told about a conversation.

Portable to django-mongodb-backend: string primary keys, plain fields, no joins in the hot path. A person is
(role, user id) everywhere here, never the id alone.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from chatservice.ids import ID_MAX_LENGTH, new_id
from conversations.models import USER_ID_MAX_LENGTH, Conversation, Role

NOTIFICATION_PREFIX = "ntf_"
EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path
PERSON_KEY_MAX_LENGTH = USER_ID_MAX_LENGTH + 8  # "USER:" or "ADMIN:" and the id


def person_key(role: str, user_id: str) -> str:
    return f"{role}:{user_id}"


def new_notification_id() -> str:
    return new_id(NOTIFICATION_PREFIX)


class Contact(models.Model):
    """A person's notification address and preference. Only the latest address is kept (the token's
    `email` claim); `user_erase` deletes the row."""

    id = models.CharField(primary_key=True, max_length=PERSON_KEY_MAX_LENGTH, db_column="_id")
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    role = models.CharField(max_length=8, choices=Role.choices)
    email = models.CharField(max_length=EMAIL_MAX_LENGTH, blank=True, default="")
    email_enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.id


class NotificationState(models.Model):
    """One per (conversation, person) once someone wrote to them there: whether a check is due, and what
    they were last told. The row is the lock that keeps a conversation to one pending check."""

    id = models.CharField(primary_key=True, max_length=ID_MAX_LENGTH + PERSON_KEY_MAX_LENGTH + 1, db_column="_id")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    role = models.CharField(max_length=8, choices=Role.choices)
    due_at = models.DateTimeField(null=True, blank=True)  # a check job is pending for this time
    last_sent_at = models.DateTimeField(null=True, blank=True)
    notified_seq = models.PositiveBigIntegerField(default=0)  # the last message the last notification covered

    def __str__(self) -> str:
        return self.id


class NotificationStatus(models.TextChoices):
    QUEUED = "QUEUED"  # the email job is pending
    SENT = "SENT"
    NO_ADDRESS = "NO_ADDRESS"  # no `email` claim seen for this person
    UNSUBSCRIBED = "UNSUBSCRIBED"
    EMAIL_OFF = "EMAIL_OFF"  # the service sends no email (CHAT_NOTIFY_EMAIL=false, or no EMAIL_HOST in production)


class Notification(models.Model):
    """One notification decided: the webhook's `notification.pending` data and the email's record."""

    id = models.CharField(primary_key=True, max_length=ID_MAX_LENGTH, db_column="_id", default=new_notification_id)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    role = models.CharField(max_length=8, choices=Role.choices)
    unread_count = models.PositiveIntegerField()
    first_unread_seq = models.PositiveBigIntegerField()
    last_seq = models.PositiveBigIntegerField()
    email_status = models.CharField(max_length=16, choices=NotificationStatus.choices)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user_id", "role"], name="notification_person_idx")]

    def __str__(self) -> str:
        return self.id
