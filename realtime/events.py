"""Every real-time payload, built in one place.

Two kinds: *frames* are the JSON objects a client receives (the seed's WebSocket protocol, camelCase);
*layer events* travel between processes through the channel layer and are turned into frames by each
receiving consumer. Stored messages travel as their frame payload plus `seq` (several at a time when
they were stored together), so a receiver can order them, drop duplicates and notice gaps without
asking the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict

from django.conf import settings
from rest_framework.fields import DateTimeField

from messaging.models import Message, MessageType

_timestamp = DateTimeField()


def iso(moment: datetime) -> str:
    """The same timestamp format as the REST API (DRF's DateTimeField: ISO 8601, UTC as "Z"), without its
    field machinery for the common case, an aware UTC time (every stored time): rendering a page of
    conversations formats hundreds of them."""
    if moment.tzinfo is UTC and settings.TIME_ZONE == "UTC":
        text = moment.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return _timestamp.to_representation(moment)


class Reaction(TypedDict):
    emoji: str
    count: int
    userIds: list[str]


class ReplyTo(TypedDict):
    """The message a reply answers, as it is now (a tombstone once deleted: empty preview, deletedAt)."""

    messageId: str
    senderName: str
    senderRole: str
    preview: str
    deletedAt: str | None


class MessagePayload(TypedDict):
    messageId: str
    conversationId: str
    senderId: str
    senderRole: str
    content: str
    messageType: str
    metadata: dict[str, Any]
    clientMessageId: str | None
    createdAt: str
    senderName: str
    editedAt: str | None
    deletedAt: str | None
    reactions: list[Reaction]
    replyTo: ReplyTo | None


class MessageFrame(MessagePayload):
    type: Literal["message_sent", "message_received"]


class SystemFrame(TypedDict):
    type: Literal["system"]
    message: str
    timestamp: str
    messageId: str
    conversationId: str
    senderId: str
    senderRole: str
    metadata: dict[str, Any]


class TypingFrame(TypedDict):
    type: Literal["typing_start", "typing_stop"]
    userId: str


class ReadReceiptFrame(TypedDict):
    type: Literal["read_receipt"]
    messageId: str
    userId: str
    readAt: str


class PresenceFrame(TypedDict):
    type: Literal["user_joined", "user_left"]
    userId: str
    role: NotRequired[str]


class MessageUpdatedFrame(TypedDict):
    """A message changed (edited, or its reactions, when resuming): the whole message as it is now."""

    type: Literal["message_updated"]
    message: MessagePayload
    changeCursor: str


class MessageDeletedFrame(TypedDict):
    type: Literal["message_deleted"]
    conversationId: str
    messageId: str
    deletedAt: str
    changeCursor: str


class ReactionUpdatedFrame(TypedDict):
    type: Literal["reaction_updated"]
    conversationId: str
    messageId: str
    reactions: list[Reaction]
    changeCursor: str


class ErrorFrame(TypedDict):
    type: Literal["error"]
    code: str
    message: str


class PongFrame(TypedDict):
    type: Literal["pong"]


Frame = (
    MessageFrame
    | SystemFrame
    | TypingFrame
    | ReadReceiptFrame
    | PresenceFrame
    | MessageUpdatedFrame
    | MessageDeletedFrame
    | ReactionUpdatedFrame
    | ErrorFrame
    | PongFrame
)

REPLY_PREVIEW_LENGTH = 140  # characters of the quoted message shown above a reply: a line or two


def reactions_of(message: Message) -> list[Reaction]:
    """The stored summary ([{emoji, users: [[role, id], ...]}]) as clients see it."""
    return [
        {"emoji": r["emoji"], "count": len(r["users"]), "userIds": [user_id for _, user_id in r["users"]]}
        for r in message.reactions or ()
    ]


def reply_to(quoted: Message) -> ReplyTo:
    preview = " ".join(quoted.content.split())
    if len(preview) > REPLY_PREVIEW_LENGTH:
        preview = preview[: REPLY_PREVIEW_LENGTH - 1] + "\u2026"
    return {
        "messageId": quoted.id,
        "senderName": quoted.sender_name,
        "senderRole": quoted.sender_role,
        "preview": preview,
        "deletedAt": iso(quoted.deleted_at) if quoted.deleted_at else None,
    }


def message_payload(message: Message, quoted: Message | None = None) -> MessagePayload:
    """`quoted`: the message it replies to (messaging.replies finds them, a page at a time)."""
    return {
        "messageId": message.id,
        "conversationId": message.conversation_id,
        "senderId": message.sender_id,
        "senderRole": message.sender_role,
        "content": message.content,
        "messageType": message.message_type,
        "metadata": message.metadata,
        "clientMessageId": message.client_message_id,
        "createdAt": iso(message.created_at),
        "senderName": message.sender_name,
        "editedAt": iso(message.edited_at) if message.edited_at else None,
        "deletedAt": iso(message.deleted_at) if message.deleted_at else None,
        "reactions": reactions_of(message),
        "replyTo": reply_to(quoted) if quoted is not None else None,
    }


def message_frame(payload: MessagePayload, *, own_send: bool) -> MessageFrame | SystemFrame:
    """The frame a socket gets for a stored message: the sender's socket gets `message_sent` (the
    acknowledgement), everyone else `message_received`, or `system` for SYSTEM messages."""
    if own_send:
        return {"type": "message_sent", **payload}
    if payload["messageType"] == MessageType.SYSTEM:
        return {
            "type": "system",
            "message": payload["content"],
            "timestamp": payload["createdAt"],
            "messageId": payload["messageId"],
            "conversationId": payload["conversationId"],
            "senderId": payload["senderId"],
            "senderRole": payload["senderRole"],
            "metadata": payload["metadata"],
        }
    return {"type": "message_received", **payload}


def typing_frame(user_id: str, typing: bool) -> TypingFrame:
    return {"type": "typing_start" if typing else "typing_stop", "userId": user_id}


def read_receipt_frame(*, message_id: str, user_id: str, read_at: datetime) -> ReadReceiptFrame:
    return {"type": "read_receipt", "messageId": message_id, "userId": user_id, "readAt": iso(read_at)}


def presence_frame(user_id: str, role: str, joined: bool) -> PresenceFrame:
    return {"type": "user_joined" if joined else "user_left", "userId": user_id, "role": role}


def message_updated_frame(payload: MessagePayload, change_seq: int) -> MessageUpdatedFrame:
    return {"type": "message_updated", "message": payload, "changeCursor": str(change_seq)}


def message_deleted_frame(message: Message) -> MessageDeletedFrame:
    return {
        "type": "message_deleted",
        "conversationId": message.conversation_id,
        "messageId": message.id,
        "deletedAt": iso(message.deleted_at),
        "changeCursor": str(message.change_seq),
    }


def reaction_updated_frame(message: Message) -> ReactionUpdatedFrame:
    return {
        "type": "reaction_updated",
        "conversationId": message.conversation_id,
        "messageId": message.id,
        "reactions": reactions_of(message),
        "changeCursor": str(message.change_seq),
    }


def change_frame(message: Message, quoted: Message | None = None) -> MessageUpdatedFrame | MessageDeletedFrame:
    """What a resuming socket is told about a message changed since its cursor: its latest state."""
    if message.deleted_at is not None:
        return message_deleted_frame(message)
    return message_updated_frame(message_payload(message, quoted), message.change_seq or 0)


def error_frame(code: str, message: str) -> ErrorFrame:
    return {"type": "error", "code": code, "message": message}


PONG: PongFrame = {"type": "pong"}


# ---- layer events (between processes) ------------------------------------------------------------


class StoredMessage(TypedDict):
    seq: int
    payload: MessagePayload


class MessagesEvent(TypedDict):
    """Messages stored together in one conversation, in sequence order."""

    type: Literal["chat.messages"]
    messages: list[StoredMessage]


class FrameEvent(TypedDict):
    """A ready frame for every socket of the conversation except the tabs of the person named by
    `skipUserId` and `skipRole` when set (typing is not echoed to the typist)."""

    type: Literal["chat.frame"]
    frame: dict[str, Any]
    skipUserId: str | None
    skipRole: NotRequired[str | None]
    staffOnly: NotRequired[bool]  # about a note: donors' sockets drop it


def message_item(message: Message, quoted: Message | None = None) -> StoredMessage:
    return {"seq": message.seq, "payload": message_payload(message, quoted)}


def messages_event(items: list[StoredMessage]) -> MessagesEvent:
    return {"type": "chat.messages", "messages": items}


def frame_event(
    frame: Frame, *, skip_user_id: str | None = None, skip_role: str | None = None, staff_only: bool = False
) -> FrameEvent:
    event: FrameEvent = {"type": "chat.frame", "frame": dict(frame), "skipUserId": skip_user_id, "skipRole": skip_role}
    if staff_only:
        event["staffOnly"] = True
    return event


# ---- inbox frames (realtime.inbox) -------------------------------------------------------------------


class InboxMessage(TypedDict):
    """A stored message as inboxes see it (realtime.inbox_events builds it)."""

    messageId: str
    senderId: str
    senderRole: str
    senderName: str
    preview: str
    createdAt: str
    messageType: str


class InboxMessageFrame(InboxMessage):
    type: Literal["inbox_message"]
    conversationId: str
    unreadCount: int | None


class InboxConversationFrame(TypedDict):
    type: Literal["conversation_created", "conversation_updated"]
    conversation: dict[str, Any]


class InboxReadFrame(TypedDict):
    """To a donor's own inbox sockets when they read: their unread count in the conversation now."""

    type: Literal["conversation_read"]
    conversationId: str
    unreadCount: int


def inbox_read_frame(conversation_id: str, unread: int) -> InboxReadFrame:
    return {"type": "conversation_read", "conversationId": conversation_id, "unreadCount": unread}


def inbox_message_frame(conversation_id: str, item: dict[str, Any], unread: int | None) -> InboxMessageFrame:
    return {"type": "inbox_message", "conversationId": conversation_id, **item, "unreadCount": unread}  # type: ignore[typeddict-item]


def inbox_conversation_frame(kind: str, conversation: dict[str, Any], unread: int | None) -> InboxConversationFrame:
    return {"type": kind, "conversation": {**conversation, "unreadCount": unread}}  # type: ignore[typeddict-item]
