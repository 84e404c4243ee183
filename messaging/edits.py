"""Changes to stored messages: edits, deletions (tombstones) and reactions.

Every change takes the conversation's next change number (Conversation.last_change_seq) first, with the
UPDATE that holds the conversation row's write lock until commit: changes of one conversation's messages
are serialized (two reactions at once both count; an edit racing a deletion cannot resurrect the text),
and a reader that saw change N has seen every change numbered up to N. The changed message carries its
latest number (Message.change_seq), which is what a resuming client asks for (`changedSince`).

Events go out after commit, to the conversation's sockets; those about notes to staff sockets only.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from attachments import references as attachment_references
from attachments.services import attachments_delete
from audit.models import AuditAction, AuditTarget
from audit.services import audit_record
from chatservice.authentication import Principal
from chatservice.db import atomic
from chatservice.errors import Conflict, NotFound, PermissionDenied
from conversations.models import Conversation
from messaging.models import Message, MessageType, MessageVersion
from messaging.reactions import allowed_reaction, with_reaction
from messaging.redaction import REDACTED_KEY, redact_message
from messaging.replies import quoted_messages
from messaging.visibility import STAFF_ONLY_TYPES, visible_messages
from realtime.broadcast import conversation_group, publish_on_commit
from realtime.events import (
    Frame,
    frame_event,
    message_deleted_frame,
    message_payload,
    message_updated_frame,
    reaction_updated_frame,
)
from search import services as search_index
from webhooks import services as webhook_events
from webhooks.models import EventType

# What a sender may edit: their words. Notices are the service's, and a FILE keeps its file (its caption,
# the content, may change).
EDITABLE_TYPES = frozenset({MessageType.TEXT, MessageType.FILE, MessageType.NOTE})


class MessageNotFound(NotFound):
    code = "message_not_found"
    default_detail = "No such message in this conversation."


class MessageDeleted(Conflict):
    code = "message_deleted"
    default_detail = "The message was deleted."


def _visible_message(conversation: Conversation, message_id: str, viewer: Principal) -> Message:
    """The message, if `viewer` may see it (a donor naming a note gets the same 404 as for nothing)."""
    qs = visible_messages(Message.objects.filter(conversation_id=conversation.pk, pk=message_id), viewer)
    message = qs.first()
    if message is None:
        raise MessageNotFound()
    return message


def _reserve_change(conversation_id: str) -> int:
    """The next change number of the conversation; takes its row lock until commit. In a transaction."""
    rows = Conversation.objects.filter(pk=conversation_id)
    rows.update(last_change_seq=F("last_change_seq") + 1)
    return rows.values_list("last_change_seq", flat=True).get()


def _locked(message: Message) -> Message:
    """The message as it is now, read after _reserve_change (so no other change can be in between)."""
    return Message.objects.get(pk=message.pk)


def _announce(message: Message, frame: Frame, event_type: str) -> None:
    staff_only = message.message_type in STAFF_ONLY_TYPES
    publish_on_commit([(conversation_group(message.conversation_id), frame_event(frame, staff_only=staff_only))])
    webhook_events.events_record(event_type, message.conversation_id, refs={"messageId": message.pk}, note=staff_only)


def _same_person(message: Message, person: Principal) -> bool:
    return (message.sender_id, message.sender_role) == (person.user_id, person.role)


def message_edit(*, conversation: Conversation, editor: Principal, message_id: str, content: str) -> Message:
    """Replace the content of the editor's own message, within CHAT_EDIT_WINDOW_S of sending. The text it
    replaces is kept as a MessageVersion (staff see them). `content` is validated as for sending; it is
    redacted here, as a sent message is."""
    message = _visible_message(conversation, message_id, editor)
    if not _same_person(message, editor) or message.message_type not in EDITABLE_TYPES:
        raise PermissionDenied("Only the sender may edit a message.", code="edit_forbidden")
    if message.deleted_at is not None:
        raise MessageDeleted()
    window = timedelta(seconds=settings.CHAT["EDIT_WINDOW_S"])
    if timezone.now() - message.created_at > window:
        raise PermissionDenied(
            f"Messages can be edited for {int(window.total_seconds())} seconds after sending.",
            code="edit_window_passed",
        )
    content, found = redact_message(content, {}, settings.CHAT["REDACT"])
    if content == message.content:
        return message  # nothing to record or announce
    with atomic():
        change = _reserve_change(conversation.pk)
        current = _locked(message)
        if current.deleted_at is not None:
            raise MessageDeleted()
        now = timezone.now()
        MessageVersion.objects.create(
            message=current,
            conversation_id=current.conversation_id,
            content=current.content,
            metadata=current.metadata,
            written_at=current.edited_at or current.created_at,
            replaced_at=now,
            replaced_by_id=editor.user_id,
            replaced_by_role=editor.role,
        )
        metadata = dict(current.metadata)
        redacted = sorted(set(metadata.get(REDACTED_KEY, ())) | set(found.get(REDACTED_KEY, ())))
        if redacted:
            metadata[REDACTED_KEY] = redacted
        current.content, current.metadata = content, metadata
        current.edited_at = current.updated_at = now
        current.change_seq = change
        current.save(update_fields=["content", "metadata", "edited_at", "updated_at", "change_seq"])
        search_index.messages_reindexed(messages=[current])  # in step with the edit, in its transaction
        quoted = quoted_messages([current]).get(current.reply_to_id or "")
        _announce(current, message_updated_frame(message_payload(current, quoted), change), EventType.MESSAGE_UPDATED)
    return current


def message_delete(*, conversation: Conversation, actor: Principal, message_id: str) -> Message:
    """Turn a message into a tombstone: content, metadata, reactions, earlier versions and its attachment
    go; its row and number stay, so history and gap filling stay exact. The sender may delete their own
    message, support staff any message. Deleting a tombstone again changes nothing."""
    message = _visible_message(conversation, message_id, actor)
    if not (_same_person(message, actor) or actor.is_admin):
        raise PermissionDenied("Only the sender or support staff may delete a message.", code="delete_forbidden")
    if message.deleted_at is not None:
        return message
    attachment = attachment_references.reference_of(message.message_type, message.metadata)
    if attachment:
        # Files first: if storage fails, nothing was deleted yet and a retry does it all.
        attachments_delete(attachment_ids={attachment})
    with atomic():
        change = _reserve_change(conversation.pk)
        current = _locked(message)
        if current.deleted_at is not None:
            return current
        MessageVersion.objects.filter(message_id=current.pk).delete()
        now = timezone.now()
        current.content, current.metadata, current.reactions = "", {}, []
        current.deleted_at = current.updated_at = now
        current.change_seq = change
        current.save(update_fields=["content", "metadata", "reactions", "deleted_at", "updated_at", "change_seq"])
        search_index.messages_reindexed(messages=[current])  # a tombstone leaves the index
        _announce(current, message_deleted_frame(current), EventType.MESSAGE_DELETED)
        if actor.is_admin:  # a staff deletion is audited (whose words, not the words); a donor's own is not
            audit_record(
                actor=actor,
                action=AuditAction.MESSAGE_DELETE,
                target_type=AuditTarget.MESSAGE,
                target_id=current.pk,
                details={
                    "conversationId": current.conversation_id,
                    "senderId": current.sender_id,
                    "senderRole": current.sender_role,
                    "messageType": current.message_type,
                },
            )
    return current


def reaction_set(*, conversation: Conversation, actor: Principal, message_id: str, emoji: str, on: bool) -> Message:
    """Add (on) or remove the actor's `emoji` on a message; doing it twice is doing it once."""
    emoji = allowed_reaction(emoji)
    message = _visible_message(conversation, message_id, actor)
    if message.deleted_at is not None:
        raise MessageDeleted()
    who = (actor.role, actor.user_id)
    if with_reaction(message.reactions, emoji, who, on=on) is None:
        return message  # already so: no change number, no event
    with atomic():
        change = _reserve_change(conversation.pk)
        current = _locked(message)
        if current.deleted_at is not None:
            raise MessageDeleted()
        summary = with_reaction(current.reactions, emoji, who, on=on)
        if summary is None:
            return current  # someone else's request did it meanwhile (the number stays unused)
        current.reactions, current.change_seq = summary, change
        current.save(update_fields=["reactions", "change_seq"])
        _announce(current, reaction_updated_frame(current), EventType.MESSAGE_UPDATED)
    return current
