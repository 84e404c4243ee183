"""Reads of message history: keyset pages over the per-conversation sequence.

A cursor is a message id; it is resolved to that message's `seq` and the page is a range scan on the
(conversation, seq) index, so a page costs the same at message 50 or message 100,000. Because sequence
numbers become visible strictly in order (see Conversation.last_seq), following `before` cursors from
the newest page returns every message exactly once even while new messages arrive, and an `after`
cursor never skips a message that commits late.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatservice.authentication import Principal
from chatservice.errors import ServiceError
from conversations.models import Conversation
from messaging.models import Message, MessageVersion
from messaging.visibility import sees_notes, visible_messages

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200  # keeps one page's payload and serialisation well under a few hundred KiB


class InvalidCursor(ServiceError):
    code = "invalid_cursor"
    default_detail = "The cursor is not a message of this conversation."


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]  # chronological
    has_older: bool
    has_newer: bool


def message_seq(conversation_id: str, message_id: str, viewer: Principal | None = None) -> int | None:
    """The sequence number of a message of this conversation, or None if it has no such message (or
    none `viewer` may see: a donor naming a note's id learns nothing)."""
    qs = Message.objects.filter(conversation_id=conversation_id, pk=message_id)
    if viewer is not None:
        qs = visible_messages(qs, viewer)
    return qs.values_list("seq", flat=True).first()


def message_at(conversation_id: str, seq: int) -> Message | None:
    return Message.objects.filter(conversation_id=conversation_id, seq=seq).only("id", "message_type").first()


def messages_between(conversation_id: str, *, after: int, upto: int, limit: int) -> list[Message]:
    """Messages numbered after..upto (after excluded), in order, at most `limit` (a range scan on the
    (conversation, seq) index: replays and gap fills read their range this way, page by page)."""
    rows = Message.objects.filter(conversation_id=conversation_id, seq__gt=after, seq__lte=upto).order_by("seq")
    return list(rows[:limit])


def _cursor_seq(conversation: Conversation, message_id: str, viewer: Principal | None) -> int:
    seq = message_seq(conversation.pk, message_id, viewer)
    if seq is None:
        raise InvalidCursor()
    return seq


def message_page(
    *,
    conversation: Conversation,
    limit: int = DEFAULT_PAGE_SIZE,
    before: str | None = None,
    after: str | None = None,
    viewer: Principal | None = None,
) -> MessagePage:
    """Without a cursor: the latest `limit` messages. `before`: the `limit` messages just older than that
    message. `after`: the `limit` messages just newer than it. Always chronological within the page.
    With a `viewer`, only what they may see (messaging.visibility)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    qs = Message.objects.filter(conversation_id=conversation.pk)
    if viewer is not None:
        qs = visible_messages(qs, viewer)
    if after:
        rows = list(qs.filter(seq__gt=_cursor_seq(conversation, after, viewer)).order_by("seq")[: limit + 1])
        return MessagePage(rows[:limit], has_older=True, has_newer=len(rows) > limit)
    if before:
        qs = qs.filter(seq__lt=_cursor_seq(conversation, before, viewer))
    rows = list(qs.order_by("-seq")[: limit + 1])
    page = rows[:limit]
    page.reverse()
    return MessagePage(page, has_older=len(rows) > limit, has_newer=before is not None)


CHANGES_PAGE_SIZE = 200  # changed messages per page or per replay read, as for history pages


@dataclass(frozen=True)
class ChangePage:
    messages: list[Message]  # in change order, as they are now
    cursor: int  # every change up to this is reflected in `messages` or was before `after`
    more: bool


def change_cursor(conversation_id: str) -> int:
    return Conversation.objects.filter(pk=conversation_id).values_list("last_change_seq", flat=True).get()


def changes_since(*, conversation_id: str, after: int, viewer: Principal, limit: int = CHANGES_PAGE_SIZE) -> ChangePage:
    """The messages `viewer` may see whose latest change is numbered after `after`, oldest change first.

    The conversation's counter is read first: every change numbered up to it has committed (each held
    the conversation row until commit), so when this page is the last one, that number is the cursor to
    go on from, even if the changes between were to notes a donor does not see."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    upto = change_cursor(conversation_id)
    qs = Message.objects.filter(conversation_id=conversation_id, change_seq__gt=after, change_seq__lte=upto)
    rows = list(visible_messages(qs, viewer).order_by("change_seq")[: limit + 1])
    if len(rows) > limit:
        rows = rows[:limit]
        return ChangePage(rows, rows[-1].change_seq or after, more=True)
    return ChangePage(rows, max(upto, after), more=False)


def message_versions(*, conversation: Conversation, viewer: Principal, message_id: str) -> list[MessageVersion]:
    """Earlier versions of a message, newest first: staff only (a donor, or a message the viewer cannot see,
    is a 404 like an unknown id)."""
    from messaging.edits import MessageNotFound

    if not sees_notes(viewer.role):
        raise MessageNotFound()
    if not Message.objects.filter(conversation_id=conversation.pk, pk=message_id).exists():
        raise MessageNotFound()
    return list(MessageVersion.objects.filter(message_id=message_id).order_by("-replaced_at", "-id"))
