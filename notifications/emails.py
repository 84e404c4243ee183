"""The notification email: rendered and sent by a job, so a slow or failing mail server is retried with
backoff and never delays a reply. By default it carries no message text (CHAT_NOTIFY_EMAIL_PREVIEW)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

from chatservice.authentication import Principal
from conversations.models import Role
from jobs.models import Job
from jobs.registry import job_kind
from messaging.models import RESPONSE_TYPES, Message
from notifications.models import Contact, Notification, NotificationStatus, person_key
from notifications.selectors import conversation_url
from notifications.services import EMAIL_KIND, unsubscribe_token

# With CHAT_JOB_RETRY_BASE_S=30: the last of 8 attempts comes about an hour after the first; a reply
# notified later than that is no longer news.
EMAIL_ATTEMPTS = 8
SUBJECT = "New reply from CareForAll support"
# Previews (opt-in): the latest unread messages, each cut to this many characters.
PREVIEW_MESSAGES = 5
PREVIEW_CHARS = 500
SUPPORT_NAME = "CareForAll support"  # a staff member without a display name; never their username


def unsubscribe_url(person: Principal) -> str:
    return f"{settings.CHAT['PUBLIC_URL']}/notifications/unsubscribe/{unsubscribe_token(person)}"


def _previews(notification: Notification) -> list[dict[str, str]]:
    latest = (
        Message.objects.filter(
            conversation_id=notification.conversation_id,
            seq__gte=notification.first_unread_seq,
            seq__lte=notification.last_seq,
            sender_role=Role.ADMIN,
            message_type__in=RESPONSE_TYPES,
        )
        .order_by("-seq")
        .values_list("sender_name", "content")[:PREVIEW_MESSAGES]
    )
    return [
        {"name": name or SUPPORT_NAME, "text": text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"}
        for name, text in reversed(latest)
    ]


def render_email(notification: Notification, address: str) -> EmailMultiAlternatives:
    person = Principal(notification.user_id, notification.role)
    unsubscribe = unsubscribe_url(person)
    context = {
        "unread_count": notification.unread_count,
        "conversation_url": conversation_url(notification.conversation_id),
        "unsubscribe_url": unsubscribe,
        "previews": _previews(notification) if settings.CHAT["NOTIFY_EMAIL_PREVIEW"] else [],
    }
    email = EmailMultiAlternatives(
        subject=SUBJECT,
        body=render_to_string("notifications/email.txt", context),
        to=[address],
        headers={
            # RFC 8058: mail clients offer their own unsubscribe button, which POSTs to the link.
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",  # RFC 3834: no out-of-office replies
        },
    )
    email.attach_alternative(render_to_string("notifications/email.html", context), "text/html")
    return email


@job_kind(EMAIL_KIND, max_attempts=EMAIL_ATTEMPTS)
def send_notification_email(job: Job) -> None:
    """Send a queued notification's email to the person's address as it is now: erased or unsubscribed
    since it was queued, nothing goes out."""
    notification = Notification.objects.filter(pk=job.payload["notification"]).first()
    if notification is None or notification.email_status != NotificationStatus.QUEUED:
        return
    contact = Contact.objects.filter(pk=person_key(notification.role, notification.user_id)).first()
    if contact is None or not contact.email or not contact.email_enabled:
        status = NotificationStatus.UNSUBSCRIBED if contact and contact.email else NotificationStatus.NO_ADDRESS
        Notification.objects.filter(pk=notification.pk).update(email_status=status)
        return
    render_email(notification, contact.email).send()  # raises on failure: retried with backoff
    Notification.objects.filter(pk=notification.pk, email_status=NotificationStatus.QUEUED).update(
        email_status=NotificationStatus.SENT, sent_at=timezone.now()
    )
