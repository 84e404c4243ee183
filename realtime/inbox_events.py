"""Events of the inbox socket (`/ws/inbox`), built in one place and published after commit.

Staff inbox sockets share one group and get every conversation's events; each donor's sockets have a
group of their own and get only their conversations' events, never a note. An event carries the
conversation as REST renders it (one rendering for staff, one for donors) and every participant's
unread count; each socket fills in its viewer's `unreadCount` (null when the viewer does not take part).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from typing import Any, Literal, TypedDict

from django.db import transaction

from chatservice.authentication import Principal
from conversations.models import Conversation, Participant, Role
from messaging.models import Message, MessageType
from messaging.visibility import STAFF_ONLY_TYPES, previewable
from realtime.events import InboxMessage, iso

STAFF_GROUP = "inbox.staff"
# Characters of a message shown in an inbox preview.
PREVIEW_LENGTH = 140


def donor_group(user_id: str) -> str:
    # Group names allow few characters and 100 of them; user ids are free text of up to 128.
    return "inbox.user." + hashlib.sha256(user_id.encode()).hexdigest()[:40]


def inbox_groups(viewer: Principal) -> str:
    return STAFF_GROUP if viewer.is_admin else donor_group(viewer.user_id)


def person_key(user_id: str, role: str) -> str:
    return f"{role}:{user_id}"


class InboxMessagesEvent(TypedDict):
    type: Literal["inbox.messages"]
    conversationId: str
    messages: list[InboxMessage]
    unread: dict[str, int]


class InboxConversationEvent(TypedDict):
    type: Literal["inbox.conversation"]
    kind: Literal["conversation_created", "conversation_updated"]
    conversation: dict[str, Any]  # REST representation, unreadCount to be filled per viewer
    unread: dict[str, int]


def preview_of(message: Message) -> str:
    if message.message_type == MessageType.FILE:
        name = message.metadata.get("name") if isinstance(message.metadata, dict) else None
        return f"📎 {name or 'file'}"[:PREVIEW_LENGTH]
    text = " ".join(message.content.split())
    return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1] + "…"


def inbox_message(message: Message) -> InboxMessage:
    return {
        "messageId": message.id,
        "senderId": message.sender_id,
        "senderRole": message.sender_role,
        "senderName": message.sender_name,
        "preview": preview_of(message),
        "createdAt": iso(message.created_at),
        "messageType": message.message_type,
    }


def unread_map(conversation: Conversation, participants: Iterable[Participant]) -> dict[str, int]:
    from conversations.selectors import unread_of

    return {person_key(p.user_id, p.role): unread_of(conversation, p) for p in participants}


def message_publications(
    messages: list[Message], clock_changed: Iterable[str] = (), *, conversations: dict[str, Conversation] | None = None
) -> list[tuple[str, Any]]:
    """The inbox events of messages just stored: one inbox_message event per conversation (SYSTEM
    notices are not inbox messages), and conversation_updated for the conversations whose clocks they
    moved (`clock_changed`). Runs inside the storing transaction, after the messages and clocks were
    written, so what it reads is the state they commit. `conversations`: the rows as the storing code
    holds them after its writes (read again when missing); one read of the participants serves both
    kinds (every turn of a conversation moves its clock: this is the send path)."""
    by_conversation: dict[str, list[Message]] = {}
    for message in messages:
        by_conversation.setdefault(message.conversation_id, []).append(message)
    if not by_conversation:
        return []
    held = conversations or {}
    missing = [cid for cid in by_conversation if cid not in held]
    conversations = {**held, **{c.pk: c for c in Conversation.objects.filter(pk__in=missing)}} if missing else held
    participants: dict[str, list[Participant]] = {}
    for participant in Participant.objects.filter(conversation_id__in=list(by_conversation)).order_by(
        "joined_at", "id"
    ):
        participants.setdefault(participant.conversation_id, []).append(participant)
    changed = set(clock_changed)
    out: list[tuple[str, Any]] = []  # (group, event), combined per group below
    for conversation_id, written in by_conversation.items():
        conversation, people = conversations[conversation_id], participants.get(conversation_id, [])
        unread = unread_map(conversation, people)
        items = [inbox_message(m) for m in written if m.message_type != MessageType.SYSTEM]
        donors = [p.user_id for p in people if p.role == Role.USER]
        if items:
            out.append((STAFF_GROUP, _messages_event(conversation_id, items, unread)))
            public = [item for item in items if item["messageType"] not in STAFF_ONLY_TYPES]
            if public:
                out += [(donor_group(d), _messages_event(conversation_id, public, unread)) for d in donors]
        if conversation_id in changed:
            out += _updated_events(conversation, people, written, donors, unread)
    return _one_per_group(out)


class InboxBatchEvent(TypedDict):
    """Several inbox events for one group, published once: every publish is a round trip to the layer
    (Redis), and one stored message produced up to four of them before."""

    type: Literal["inbox.batch"]
    events: list[Any]


def _one_per_group(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    by_group: dict[str, list[Any]] = {}
    for group, event in pairs:
        by_group.setdefault(group, []).append(event)
    return [
        (group, events[0] if len(events) == 1 else InboxBatchEvent(type="inbox.batch", events=events))
        for group, events in by_group.items()
    ]


def _updated_events(
    conversation: Conversation,
    people: list[Participant],
    written: list[Message],
    donors: list[str],
    unread: dict[str, int],
) -> list[tuple[str, Any]]:
    from conversations.rendering import conversation_json
    from conversations.selectors import latest_previewable_of

    def latest(role: str) -> Message | None:
        shown = [m for m in written if previewable(m.message_type, role)]
        # The batch's own latest message, else (a batch of notes, for donors) the stored one.
        return shown[-1] if shown else latest_previewable_of([conversation], role=role).get(conversation.pk)

    staff = conversation_json(conversation, viewer=None, role=Role.ADMIN, last=latest(Role.ADMIN), participants=people)
    out: list[tuple[str, Any]] = [(STAFF_GROUP, _conversation_event("conversation_updated", staff, unread))]
    if donors:
        view = conversation_json(conversation, viewer=None, role=Role.USER, last=latest(Role.USER), participants=people)
        out += [(donor_group(d), _conversation_event("conversation_updated", view, unread)) for d in donors]
    return out


def _messages_event(conversation_id: str, items: list[InboxMessage], unread: dict[str, int]) -> InboxMessagesEvent:
    return {"type": "inbox.messages", "conversationId": conversation_id, "messages": items, "unread": unread}


def conversation_publications(
    conversation_ids: Iterable[str], kind: Literal["conversation_created", "conversation_updated"]
) -> list[tuple[str, Any]]:
    from conversations.rendering import render_conversations
    from conversations.selectors import conversations_for_inbox

    out: list[tuple[str, Any]] = []
    conversations = conversations_for_inbox(list(conversation_ids))
    staff_views = render_conversations(conversations, viewer=None, role=Role.ADMIN)
    donor_views = render_conversations(conversations, viewer=None, role=Role.USER)
    for conversation, staff_view, donor_view in zip(conversations, staff_views, donor_views, strict=True):
        people = list(conversation.participants.all())
        unread = unread_map(conversation, people)
        out.append((STAFF_GROUP, _conversation_event(kind, staff_view, unread)))
        for participant in people:
            if participant.role == Role.USER:
                out.append((donor_group(participant.user_id), _conversation_event(kind, donor_view, unread)))
    return out


class InboxReadEvent(TypedDict):
    type: Literal["inbox.read"]
    conversationId: str
    unreadCount: int


def read_publication(conversation_id: str, reader_user_id: str, unread_count: int) -> tuple[str, InboxReadEvent]:
    """A donor read: their own inbox sockets learn their new unread count (the widget's badge follows it on
    every page). Staff inboxes are not told: a donor's read moves no number they show. No query: the caller
    has the count."""
    event = InboxReadEvent(type="inbox.read", conversationId=conversation_id, unreadCount=unread_count)
    return donor_group(reader_user_id), event


def _conversation_event(kind: str, view: dict[str, Any], unread: dict[str, int]) -> InboxConversationEvent:
    return {"type": "inbox.conversation", "kind": kind, "conversation": view, "unread": unread}  # type: ignore[typeddict-item]


# ---- after commit ----------------------------------------------------------------------------------

_pending = threading.local()


def _flush() -> None:
    from realtime.broadcast import publish_on_commit  # after commit, outside a transaction: at once

    created: set[str] = getattr(_pending, "created", set())
    updated: set[str] = getattr(_pending, "updated", set()) - created
    _pending.created, _pending.updated = set(), set()
    pairs = conversation_publications(created, "conversation_created") if created else []
    if updated:
        pairs += conversation_publications(updated, "conversation_updated")
    if pairs:
        publish_on_commit(pairs)


def _schedule(kind: str, conversation_id: str) -> None:
    # Several changes to one conversation in a transaction announce it once, as it is after commit.
    if not hasattr(_pending, "created"):
        _pending.created, _pending.updated = set(), set()
    getattr(_pending, kind).add(conversation_id)
    transaction.on_commit(_flush)


def conversation_updated_on_commit(conversation_id: str) -> None:
    """Announce a changed conversation to inbox sockets once committed (services call
    conversations.announce, which also records its webhook event)."""
    _schedule("updated", conversation_id)


def conversation_created_on_commit(conversation_id: str) -> None:
    _schedule("created", conversation_id)
