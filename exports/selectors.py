"""Reads that copy data out: a person's own data (data portability) and a conversation's transcript.

Both stream: a conversation at a time, its messages a page at a time, so a donor with years of history
costs the worker one page of memory, not the whole export. Notes are never in a person's export, and in a
transcript only when staff ask for them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.utils import timezone

from attachments.links import signed_path
from attachments.models import Attachment
from chatservice.authentication import Principal
from conversations.models import Conversation, Participant, Role
from conversations.rendering import render_conversations
from conversations.selectors import in_pk_batches, participants_of
from csat.models import CsatResponse
from csat.services import csat_json
from messaging.models import Message
from messaging.serializers import MessageSerializer, message_context
from messaging.visibility import STAFF_ONLY_TYPES
from realtime.events import iso

EXPORT_PAGE = 500  # messages read and rendered at a time
CONVERSATION_BATCH = 50  # conversations rendered at a time
FORMAT_VERSION = 1


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _messages(conversation: Conversation, *, notes: bool) -> Iterator[list[Message]]:
    """The conversation's messages in order, a page at a time (a range scan on (conversation, seq))."""
    after = 0
    while True:
        qs = Message.objects.filter(conversation_id=conversation.pk, seq__gt=after)
        if not notes:
            qs = qs.exclude(message_type__in=STAFF_ONLY_TYPES)
        page = list(qs.order_by("seq")[:EXPORT_PAGE])
        if not page:
            return
        yield page
        after = page[-1].seq


def _messages_json(conversation: Conversation, participants: list[Participant], *, notes: bool) -> Iterator[str]:
    """A JSON array of the REST representations, streamed."""
    yield "["
    first = True
    for page in _messages(conversation, notes=notes):
        # to_representation, not .data: DRF's ReturnList and its serializer refer to each other, so every page
        # would wait for a full garbage collection (34 MB live over a 40 MB export, measured).
        rendered = MessageSerializer(many=True, context=message_context(page, participants)).to_representation(page)
        for message in rendered:
            yield ("" if first else ",") + _json(message)
            first = False
    yield "]"


def _attachments(conversation: Conversation, person: Principal, base_url: str) -> list[dict[str, Any]]:
    """The files of the conversation the person may fetch (shared ones, and their own drafts), each with a
    signed link: no token needed, valid for CHAT_ATTACHMENT_LINK_TTL_S."""
    rows = Attachment.objects.filter(conversation_id=conversation.pk).order_by("created_at", "id")
    out = []
    for attachment in rows:
        mine = (attachment.uploader_id, attachment.uploader_role) == (person.user_id, person.role)
        if attachment.shared_at is None and not mine:
            continue
        path, expires = signed_path(attachment.pk, "original")
        out.append(
            {
                "attachmentId": attachment.pk,
                "name": attachment.name,
                "contentType": attachment.content_type,
                "size": attachment.size,
                "url": base_url.rstrip("/") + path,
                "urlExpiresAt": iso(expires),
            }
        )
    return out


def _own_conversations(person: Principal) -> Any:
    return Conversation.objects.filter(participants__user_id=person.user_id, participants__role=person.role)


def user_export(*, person: Principal, base_url: str) -> Iterator[str]:
    """Everything `person` may see of their own conversations (those they take part in), as one JSON
    document, streamed: each conversation as REST shows it to them, with their read state, their ratings,
    its messages (never notes, whoever asks) and its files as signed links."""
    yield _json({"format": FORMAT_VERSION, "exportedAt": iso(timezone.now())})[:-1]
    yield ',"user":' + _json({"userId": person.user_id, "role": person.role})
    yield ',"conversations":['
    first = True
    for batch in in_pk_batches(_own_conversations(person), CONVERSATION_BATCH):
        participants = participants_of([c.pk for c in batch])
        rendered = render_conversations(batch, viewer=person, participants=participants)
        ratings: dict[str, list[dict[str, Any]]] = {}
        if person.role == Role.USER:
            for rating in CsatResponse.objects.filter(
                conversation_id__in=[c.pk for c in batch], donor_id=person.user_id
            ).order_by("created_at", "id"):
                ratings.setdefault(rating.conversation_id, []).append(csat_json(rating))
        for conversation, data in zip(batch, rendered, strict=True):
            people = participants.get(conversation.pk, [])
            own = next((p for p in people if (p.user_id, p.role) == (person.user_id, person.role)), None)
            data["readState"] = {
                "lastReadAt": iso(own.last_read_at) if own and own.last_read_at else None,
                "unreadCount": data.get("unreadCount"),
            }
            data["ratings"] = ratings.get(conversation.pk, [])
            data["attachments"] = _attachments(conversation, person, base_url)
            yield ("" if first else ",") + _json(data)[:-1] + ',"messages":'
            yield from _messages_json(conversation, people, notes=False)
            yield "}"
            first = False
    yield "]}"


def _line(message: Message) -> str:
    when = message.created_at.strftime("%Y-%m-%d %H:%M UTC")
    if message.message_type == "SYSTEM":
        return f"[{when}] -- {message.content}"
    who = message.sender_name or message.sender_id
    who += " (support)" if message.sender_role == Role.ADMIN else " (donor)"
    if message.message_type in STAFF_ONLY_TYPES:
        who += " [internal note]"
    if message.deleted_at is not None:
        return f"[{when}] {who}: (message deleted)"
    text = message.content
    if message.message_type == "FILE":
        name = message.metadata.get("name") if isinstance(message.metadata, dict) else None
        text = f"{text} [file: {name}]" if name else f"{text} [file]"
    if message.edited_at is not None:
        text += " (edited)"
    return f"[{when}] {who}: {text}".replace("\n", "\n    ")


def transcript_text(*, conversation: Conversation, notes: bool) -> Iterator[str]:
    """The conversation as plain text, one message per line (continuation lines indented)."""
    yield f"CareForAll support conversation {conversation.pk}\n"
    yield f"Subject: {conversation.subject or '(none)'}\n"
    yield f"Status: {conversation.status}; opened {iso(conversation.created_at)}; exported {iso(timezone.now())}\n"
    if notes:
        yield "Includes internal notes: do not forward to the donor.\n"
    yield "\n"
    for page in _messages(conversation, notes=notes):
        for message in page:
            yield _line(message) + "\n"


def transcript_json(*, conversation: Conversation, viewer: Principal, notes: bool) -> Iterator[str]:
    """The conversation as staff see it through REST, with its messages (notes only when asked)."""
    participants = participants_of([conversation.pk])
    (data,) = render_conversations([conversation], viewer=viewer, participants=participants)
    head = {"format": FORMAT_VERSION, "exportedAt": iso(timezone.now()), "includesNotes": notes}
    yield _json(head)[:-1] + ',"conversation":' + _json(data) + ',"messages":'
    yield from _messages_json(conversation, participants.get(conversation.pk, []), notes=notes)
    yield "}"
