"""Webhook endpoints (Standard Webhooks). Deliveries are jobs (jobs.Job, kind webhook.deliver): durable,
retried with backoff, in order per endpoint and conversation; WebhookDelivery is their admin view."""

from __future__ import annotations

import base64
import secrets

from django.db import models
from django.utils import timezone

from chatservice.ids import ID_MAX_LENGTH, new_id
from jobs.models import Job

ENDPOINT_PREFIX = "whep_"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks secret format, not a secret
SECRET_BYTES = 24


def new_endpoint_id() -> str:
    return new_id(ENDPOINT_PREFIX)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


class EventType(models.TextChoices):
    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_UPDATED = "conversation.updated"
    MESSAGE_CREATED = "message.created"
    MESSAGE_UPDATED = "message.updated"  # edited, or its reactions changed
    MESSAGE_DELETED = "message.deleted"  # now a tombstone
    CONVERSATION_READ = "conversation.read"
    CSAT_SUBMITTED = "csat.submitted"
    NOTIFICATION_PENDING = "notification.pending"


class WebhookEndpoint(models.Model):
    id = models.CharField(primary_key=True, max_length=ID_MAX_LENGTH, db_column="_id", default=new_endpoint_id)
    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=200, default=new_secret)
    events = models.JSONField(default=list, help_text="Event types sent to this endpoint.")
    include_notes = models.BooleanField(default=False, help_text="message.created for internal notes too.")
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.description or self.url


class WebhookDelivery(Job):
    """The deliveries in admin: jobs of kind webhook.deliver."""

    class Meta:
        proxy = True
        verbose_name_plural = "webhook deliveries"
