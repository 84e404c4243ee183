"""Writes of offline notifications: a donor with an unread reply and no socket open is told once.

A staff reply records a check for the donor in the reply's own transaction (`replies_recorded`):
NotificationState.due_at and a job due CHAT_NOTIFY_DELAY_S later, so a committed reply always has its
check, whatever crashes afterwards. At most one check per (conversation, donor) is pending. When due, the
check notifies only if the donor still has a reply they have not read nor been told about, has no socket
open on any worker, and was not notified about this conversation in the last CHAT_NOTIFY_MIN_INTERVAL_S
(then it looks again when that interval ends). A notification covers everything unread in the
conversation: an email (notifications.emails) and the `notification.pending` webhook event.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from chatservice.authentication import Principal
from chatservice.db import atomic
from chatservice.errors import ServiceError
from conversations.models import Conversation, Participant, Role
from jobs.models import Job
from jobs.registry import job_kind
from jobs.services import job_enqueue, jobs_enqueue
from messaging.models import RESPONSE_TYPES, Message
from notifications import contacts
from notifications.models import Contact, Notification, NotificationState, NotificationStatus, person_key
from realtime.presence import get_presence
from webhooks.models import EventType
from webhooks.services import events_record

logger = logging.getLogger(__name__)

CHECK_KIND = "notification.check"
# A check reads a few rows; retrying it is cheap, and a lasting failure is visible as a dead job.
CHECK_ATTEMPTS = 5
EMAIL_KIND = "notification.email"
# A check this far past its time is not pending any more but dead (its job ran out of attempts): the
# next reply schedules a new one instead of waiting on it forever.
STALE_CHECK_S = 3600
UNSUBSCRIBE_SALT = "notifications.unsubscribe"


def state_key(conversation_id: str, role: str, user_id: str) -> str:
    return f"{conversation_id}:{person_key(role, user_id)}"


def replies_recorded(donors: Iterable[tuple[str, str]]) -> None:
    """(conversation id, donor id) pairs that just got a staff reply: make sure a check is pending for each.
    Must run in the reply's transaction, after the conversation row was written (its lock orders this
    against a check that is running: see `notification_check`)."""
    wanted = {state_key(c, Role.USER, d): (c, d) for c, d in donors}
    if not wanted:
        return
    now = timezone.now()
    due = now + timedelta(seconds=settings.CHAT["NOTIFY_DELAY_S"])
    stale = now - timedelta(seconds=STALE_CHECK_S)
    known = dict(NotificationState.objects.filter(pk__in=list(wanted)).values_list("pk", "due_at"))
    scheduled: list[str] = []
    for key, (conversation_id, donor_id) in wanted.items():
        if key not in known:
            try:
                with transaction.atomic():
                    NotificationState.objects.create(
                        pk=key, conversation_id=conversation_id, user_id=donor_id, role=Role.USER, due_at=due
                    )
            except IntegrityError:
                continue  # created (and scheduled) by a concurrent reply
            scheduled.append(key)
        elif (known[key] is None or known[key] < stale) and _reschedule(key, known[key], due):
            scheduled.append(key)
    if scheduled:
        jobs_enqueue([(CHECK_KIND, {"state": key}, "") for key in scheduled], run_at=due)


def _reschedule(key: str, seen: datetime | None, due: datetime) -> bool:
    """Conditional on the value read: of two replies racing here, one schedules."""
    return bool(NotificationState.objects.filter(pk=key, due_at=seen).update(due_at=due))


@job_kind(CHECK_KIND, max_attempts=CHECK_ATTEMPTS)
def notification_check(job: Job) -> None:
    state = NotificationState.objects.filter(pk=job.payload["state"]).first()
    if state is None or state.due_at is None:
        return
    # Asked before the transaction: it may wait on Redis.
    online = get_presence().online(Principal(state.user_id, state.role))
    with atomic():
        # Writing the conversation row orders this check against replies being stored (messaging holds
        # the row until commit): a reply committed before is seen below; one committed after finds due_at
        # cleared and schedules its own check.
        if not Conversation.objects.filter(pk=state.conversation_id).update(last_seq=F("last_seq")):
            NotificationState.objects.filter(pk=state.pk).delete()
            return
        state = NotificationState.objects.filter(pk=state.pk).first()
        now = timezone.now()
        if state is None or state.due_at is None or state.due_at > now:
            return  # done by another check, or moved later (that time's job decides)
        _decide(state, online=online, now=now)


def _decide(state: NotificationState, *, online: bool, now: datetime) -> None:
    participant = (
        Participant.objects.filter(conversation_id=state.conversation_id, user_id=state.user_id, role=state.role)
        .values_list("last_read_seq", flat=True)
        .first()
    )
    replies = Message.objects.filter(
        conversation_id=state.conversation_id,
        sender_role=Role.ADMIN if state.role == Role.USER else Role.USER,
        message_type__in=RESPONSE_TYPES,
    )
    read_seq = participant or 0
    news = replies.filter(seq__gt=max(read_seq, state.notified_seq)).order_by("-seq").values_list("seq", flat=True)
    latest = news.first() if participant is not None else None
    if latest is None or online:
        # Read, already told, gone from the conversation, or here to see it: nothing to send.
        NotificationState.objects.filter(pk=state.pk).update(due_at=None)
        return
    interval = timedelta(seconds=settings.CHAT["NOTIFY_MIN_INTERVAL_S"])
    if state.last_sent_at is not None and now < state.last_sent_at + interval:
        later = state.last_sent_at + interval
        NotificationState.objects.filter(pk=state.pk).update(due_at=later)
        job_enqueue(kind=CHECK_KIND, payload={"state": state.pk}, run_at=later)
        return
    unread = replies.filter(seq__gt=read_seq).order_by("seq").values_list("seq", flat=True)
    notification = Notification.objects.create(
        conversation_id=state.conversation_id,
        user_id=state.user_id,
        role=state.role,
        unread_count=unread.count(),
        first_unread_seq=unread.first(),
        last_seq=latest,
        email_status=_email_status(state.role, state.user_id),
        created_at=now,
    )
    NotificationState.objects.filter(pk=state.pk).update(due_at=None, last_sent_at=now, notified_seq=latest)
    if notification.email_status == NotificationStatus.QUEUED:
        job_enqueue(kind=EMAIL_KIND, payload={"notification": notification.pk})
    events_record(EventType.NOTIFICATION_PENDING, state.conversation_id, refs={"notificationId": notification.pk})


def _email_status(role: str, user_id: str) -> str:
    if not settings.CHAT["NOTIFY_EMAIL"]:
        return NotificationStatus.EMAIL_OFF
    contact = Contact.objects.filter(pk=person_key(role, user_id)).values_list("email", "email_enabled").first()
    if contact is None or not contact[0]:
        return NotificationStatus.NO_ADDRESS
    return NotificationStatus.QUEUED if contact[1] else NotificationStatus.UNSUBSCRIBED


# ---- preferences -----------------------------------------------------------------------------------


def preferences_set(*, person: Principal, email: bool) -> Contact:
    """The person's choice to get notification emails (PUT /api/me/notifications, unsubscribe links)."""
    key, now = person_key(person.role, person.user_id), timezone.now()
    with atomic():
        if not Contact.objects.filter(pk=key).update(email_enabled=email, updated_at=now):
            try:
                with transaction.atomic():
                    Contact.objects.create(
                        pk=key, user_id=person.user_id, role=person.role, email_enabled=email, updated_at=now
                    )
            except IntegrityError:
                Contact.objects.filter(pk=key).update(email_enabled=email, updated_at=now)
    return Contact.objects.get(pk=key)


def unsubscribe_token(person: Principal) -> str:
    """The signed part of an email's unsubscribe link: who, without expiry (old emails' links keep working);
    rotating DJANGO_SECRET_KEY invalidates every link."""
    return signing.dumps([person.role, person.user_id], salt=UNSUBSCRIBE_SALT, compress=True)


class InvalidUnsubscribeLink(ServiceError):
    code = "invalid_unsubscribe_link"
    default_detail = "This unsubscribe link is not valid."


def person_of_unsubscribe_token(token: str) -> Principal:
    try:
        role, user_id = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidUnsubscribeLink() from None
    if role not in Role.values or not isinstance(user_id, str):
        raise InvalidUnsubscribeLink()
    return Principal(user_id, role)


def unsubscribe(*, token: str) -> Principal:
    """One-click unsubscribe: the link's signature is the authority, no login."""
    person = person_of_unsubscribe_token(token)
    preferences_set(person=person, email=False)
    return person


# ---- erasure ---------------------------------------------------------------------------------------


def person_erase(*, user_id: str, role: str) -> int:
    """Delete the person's address, preference and notification records (erase_user). Returns the rows
    deleted. An email already sent cannot be recalled (README)."""
    with atomic():
        deleted = Contact.objects.filter(pk=person_key(role, user_id)).delete()[0]
        deleted += NotificationState.objects.filter(user_id=user_id, role=role).delete()[0]
        deleted += Notification.objects.filter(user_id=user_id, role=role).delete()[0]
    contacts.forget(role, user_id)
    return deleted
