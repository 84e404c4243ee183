"""Reads of offline notifications: a person's preferences, a notification's representation."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.conf import settings

from chatservice.authentication import Principal
from notifications.models import Contact, Notification, person_key
from realtime.events import iso


def preferences_get(person: Principal) -> dict[str, Any]:
    """GET /api/me/notifications: whether they get emails (on until they say no), and whether the service
    has an address for them at all (from their token's `email` claim)."""
    contact = Contact.objects.filter(pk=person_key(person.role, person.user_id)).first()
    if contact is None:
        return {"email": True, "emailAddressKnown": False}
    return {"email": contact.email_enabled, "emailAddressKnown": bool(contact.email)}


def conversation_url(conversation_id: str) -> str:
    """Where the donor reads the conversation (CHAT_DONOR_URL_TEMPLATE)."""
    return settings.CHAT["DONOR_URL_TEMPLATE"].replace("{conversationId}", quote(conversation_id, safe=""))


def notification_json(notification: Notification) -> dict[str, Any]:
    """The notification.pending event's data: enough for the platform's notification service to reach the
    person its own way. No message text, no address."""
    return {
        "notificationId": notification.pk,
        "conversationId": notification.conversation_id,
        "recipient": {"userId": notification.user_id, "role": notification.role},
        "unreadCount": notification.unread_count,
        "conversationUrl": conversation_url(notification.conversation_id),
        "emailStatus": notification.email_status.lower(),
        "createdAt": iso(notification.created_at),
    }
