"""Replies: a message may answer an earlier message of its conversation (`replyTo` on send).

The quoted message is rendered as it is now, so an edit shows in every reply and a deletion leaves a
tombstone there too; nothing of it is copied into the reply. Notes stay staff-only: a donor cannot quote
one (it does not exist for them), and a message a donor sees cannot quote one either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from chatservice.errors import ServiceError
from messaging.models import Message
from messaging.visibility import STAFF_ONLY_TYPES, sees_notes
from realtime.events import StoredMessage, message_item

if TYPE_CHECKING:
    from messaging.services import SendRequest

# Enough of the quoted message to render its summary (events.reply_to).
_QUOTED_FIELDS = ("id", "conversation_id", "sender_name", "sender_role", "content", "message_type", "deleted_at")


class InvalidReplyTo(ServiceError):
    code = "invalid_reply_to"
    default_detail = "replyTo must name a message of this conversation."


def quoted_messages(messages: Iterable[Message]) -> dict[str, Message]:
    """The messages `messages` reply to, by id: one query for a page or a batch."""
    ids = {m.reply_to_id for m in messages if m.reply_to_id}
    if not ids:
        return {}
    return {m.pk: m for m in Message.objects.filter(pk__in=ids).only(*_QUOTED_FIELDS)}


def message_items(messages: Sequence[Message]) -> list[StoredMessage]:
    """Stored messages as layer events carry them, replies resolved."""
    quoted = quoted_messages(messages)
    return [message_item(m, quoted.get(m.reply_to_id or "")) for m in messages]


def reply_refusals(requests: Sequence[SendRequest]) -> dict[int, ServiceError]:
    """The requests (by index) whose replyTo names no message their sender may quote there."""
    wanted = {r.reply_to for r in requests if r.reply_to}
    if not wanted:
        return {}
    found = {m.pk: m for m in Message.objects.filter(pk__in=wanted).only("id", "conversation_id", "message_type")}
    refused: dict[int, ServiceError] = {}
    for index, request in enumerate(requests):
        if not request.reply_to:
            continue
        quoted = found.get(request.reply_to)
        if (
            quoted is None
            or quoted.conversation_id != request.conversation_id
            or (quoted.message_type in STAFF_ONLY_TYPES and not sees_notes(request.sender.role))
        ):
            refused[index] = InvalidReplyTo()
        elif quoted.message_type in STAFF_ONLY_TYPES and request.message_type not in STAFF_ONLY_TYPES:
            refused[index] = InvalidReplyTo(
                "A message the donor sees cannot quote an internal note; reply with a note."
            )
    return refused
