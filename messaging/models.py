"""Messages. Portable across SQL and django-mongodb-backend (see conversations.models)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from chatservice.ids import ID_MAX_LENGTH, MESSAGE_PREFIX, MESSAGE_VERSION_PREFIX, new_id
from conversations.models import USER_ID_MAX_LENGTH, Conversation, Role

CLIENT_MESSAGE_ID_MAX_LENGTH = 64
# Every idempotency key sorts above this (keys are never empty): the partial index condition.
IDEMPOTENCY_KEY_FLOOR = ""


class MessageType(models.TextChoices):
    TEXT = "TEXT"
    SYSTEM = "SYSTEM"
    FILE = "FILE"
    # An internal note: staff only, never shown to a donor by any path (messaging.visibility).
    NOTE = "NOTE"


# What a person writes to the other side (not notices, not notes): a staff one answers a donor (it stops the
# waiting clock, may be the first response, and is what a donor is notified of).
RESPONSE_TYPES = frozenset({MessageType.TEXT, MessageType.FILE})


def new_message_id() -> str:
    return new_id(MESSAGE_PREFIX)


class Message(models.Model):
    id = models.CharField(
        primary_key=True, max_length=ID_MAX_LENGTH, db_column="_id", default=new_message_id, editable=False
    )
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    # Position in the conversation (1, 2, 3, … in commit order; see Conversation.last_seq). History
    # pages, cursors, unread counts and readBy all key on it, so no ordering depends on clocks.
    seq = models.PositiveBigIntegerField(editable=False)
    sender_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    sender_role = models.CharField(max_length=8, choices=Role.choices)
    # The sender's display name when it was written (staff: their profile's, never the username).
    sender_name = models.CharField(max_length=80, blank=True, default="")
    content = models.TextField()
    message_type = models.CharField(max_length=8, choices=MessageType.choices, default=MessageType.TEXT)
    metadata = models.JSONField(default=dict, blank=True)
    # Idempotency key chosen by the sending client: a retried send returns the original message.
    client_message_id = models.CharField(max_length=CLIENT_MESSAGE_ID_MAX_LENGTH, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    # The message it answers (same conversation; rendered as replyTo with that message as it is now).
    reply_to_id = models.CharField(max_length=ID_MAX_LENGTH, null=True, blank=True)  # noqa: DJ001
    edited_at = models.DateTimeField(null=True, blank=True)
    # A tombstone: content, metadata and reactions are gone, the row (and its seq) stays.
    deleted_at = models.DateTimeField(null=True, blank=True)
    # [{"emoji": str, "users": [[role, userId], ...]}] in order of first use (messaging.reactions).
    reactions = models.JSONField(default=list, blank=True)
    # The number of this message's latest change (Conversation.last_change_seq); null: never changed.
    change_seq = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            # Changes since a cursor: a range scan per conversation (messaging.changes).
            models.Index(fields=["conversation", "change_seq"], name="message_change_idx"),
            # Reports (reports.selectors): a period's messages of one sender role, counted per bucket from
            # the index alone, and the agents' "replied" (distinct conversations per staff sender) read from
            # it too. Role first: "replied" reads only the staff entries (a year on the bench: 0.3 s of
            # index for every role -> 0.1 s); the per-bucket counts read one range per role. Costs every
            # send one index entry of about 90 bytes (bench/results/reports_bench.md).
            models.Index(
                fields=["sender_role", "created_at", "message_type", "sender_id", "conversation"],
                name="message_report_idx",
            ),
        ]
        # No default ordering: every read names its order (seq), so no query sorts or joins by accident.
        constraints = [
            # Also the index behind every history page: (conversation, seq) range scans.
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_conversation_seq_uniq"),
            # The client's key first: a batch looks its keys up with one IN list on this index. Only
            # messages with a key are indexed; the condition is `> ''` rather than `IS NOT NULL` because
            # MongoDB's partial indexes take no null test (keys are never empty: the API refuses that).
            # Per person: id *and* role (a donor and a staff member with the same id are two people).
            models.UniqueConstraint(
                fields=["client_message_id", "conversation", "sender_id", "sender_role"],
                condition=models.Q(client_message_id__gt=IDEMPOTENCY_KEY_FLOOR),
                name="message_idempotency_key_uniq",
            ),
        ]

    def __str__(self) -> str:
        return self.id


def new_version_id() -> str:
    return new_id(MESSAGE_VERSION_PREFIX)


class MessageVersion(models.Model):
    """What a message said before an edit, for staff: who replaced it and when. Deleted with the message's
    content when it becomes a tombstone (a deletion must not leave the text behind)."""

    id = models.CharField(
        primary_key=True, max_length=ID_MAX_LENGTH, db_column="_id", default=new_version_id, editable=False
    )
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="versions")
    conversation_id = models.CharField(max_length=ID_MAX_LENGTH)
    content = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    # Written at this moment (the message's createdAt or the previous edit's time) ...
    written_at = models.DateTimeField()
    # ... and replaced by this edit, by this person.
    replaced_at = models.DateTimeField(default=timezone.now)
    replaced_by_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    replaced_by_role = models.CharField(max_length=8, choices=Role.choices)

    class Meta:
        indexes = [models.Index(fields=["message", "replaced_at"], name="message_version_idx")]

    def __str__(self) -> str:
        return self.id
