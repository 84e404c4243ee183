"""Linking a console staff account to its Auth Service subject, and undoing it.

Linking moves what the account did as `staff:<username>` to the subject (conversations.renaming), so the
person has one history whichever way they sign in. Unlinking moves nothing: what they did while linked
was done as the subject, and stays the subject's.
"""

from __future__ import annotations

from typing import Any

from attachments.models import Attachment
from chatservice.authentication import STAFF_ID_PREFIX, USER_ID_MAX_LENGTH
from chatservice.db import atomic
from chatservice.errors import Conflict, ServiceError
from conversations.models import Conversation, Participant, Role
from conversations.renaming import Renamed, rename_person
from identity.models import StaffSubject
from identity.selectors import CHAT_ID_ATTRIBUTE
from messaging.models import Message


def staff_link(*, user: Any, subject: str) -> Renamed:
    """Make the console account act as `subject` (an Auth Service subject of an ADMIN), moving its
    history as `staff:<username>` there."""
    subject = subject.strip()
    if not subject or len(subject) > USER_ID_MAX_LENGTH:
        raise ServiceError(f"A subject has 1 to {USER_ID_MAX_LENGTH} characters.", code="invalid_subject")
    if subject.startswith(STAFF_ID_PREFIX):
        raise ServiceError(
            f"Subjects never start with {STAFF_ID_PREFIX!r}: it marks console ids.", code="invalid_subject"
        )
    if not user.is_staff:
        raise ServiceError(f"{user.get_username()} is not a staff account.", code="not_staff")
    with atomic():
        other = StaffSubject.objects.filter(subject=subject).exclude(user_id=user.pk).first()
        if other is not None:
            raise Conflict(f"{subject} is already linked to another account.", code="subject_taken")
        link = StaffSubject.objects.filter(user_id=user.pk).first()
        old = link.subject if link is not None else f"{STAFF_ID_PREFIX}{user.get_username()}"
        user.__dict__.pop(CHAT_ID_ATTRIBUTE, None)  # the account acts as the subject from now on
        if link is None:
            StaffSubject.objects.create(user=user, subject=subject)
        else:
            StaffSubject.objects.filter(pk=link.pk).update(subject=subject)
        return rename_person(
            old=old,
            new=subject,
            role=Role.ADMIN,
            conversation_model=Conversation,
            participant_model=Participant,
            message_model=Message,
            attachment_model=Attachment,
        )


def staff_unlink(*, user: Any) -> bool:
    """The account acts as `staff:<username>` again; True if it was linked."""
    user.__dict__.pop(CHAT_ID_ATTRIBUTE, None)
    with atomic():
        return bool(StaffSubject.objects.filter(user_id=user.pk).delete()[0])
