"""JSON shapes of messages (camelCase, as the seed's data model) and the one validator of a new message,
used by REST now and by WebSocket `message` frames."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from chatservice.ids import ID_PATTERN
from chatservice.validation import (
    MetadataField,
    QueryIntegerField,
    StrictCharField,
    is_attachment_reference,
    is_file_metadata,
)
from conversations.models import Participant
from messaging.models import CLIENT_MESSAGE_ID_MAX_LENGTH, Message, MessageType
from messaging.replies import quoted_messages
from realtime.events import Reaction, ReplyTo, iso, reactions_of, reply_to


class ReadBySerializer(serializers.Serializer):
    userId = serializers.CharField()
    readAt = serializers.DateTimeField()


class ReactionSerializer(serializers.Serializer):
    emoji = serializers.CharField()
    count = serializers.IntegerField()
    userIds = serializers.ListField(child=serializers.CharField())


class ReplyToSerializer(serializers.Serializer):
    messageId = serializers.CharField()
    senderName = serializers.CharField()
    senderRole = serializers.CharField()
    preview = serializers.CharField(help_text="The quoted message's first line or two; empty once it was deleted.")
    deletedAt = serializers.DateTimeField(allow_null=True)


def message_context(messages: Iterable[Message], participants: Iterable[Participant]) -> dict[str, Any]:
    """What MessageSerializer needs besides the messages: watermarks (readBy) and quoted messages (replyTo)."""
    return {"participants": list(participants), "quoted": quoted_messages(messages)}


class MessageSerializer(serializers.Serializer):
    """Output. `readBy` is derived from the participants' watermarks, passed in context["participants"];
    `replyTo` from context["quoted"] (message_context builds both)."""

    messageId = serializers.CharField(source="id")
    conversationId = serializers.CharField(source="conversation_id")
    senderId = serializers.CharField(source="sender_id")
    senderRole = serializers.CharField(source="sender_role")
    senderName = serializers.CharField(source="sender_name")
    content = serializers.CharField()
    messageType = serializers.CharField(source="message_type")
    readBy = serializers.SerializerMethodField()
    metadata = serializers.JSONField()
    clientMessageId = serializers.CharField(source="client_message_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    editedAt = serializers.DateTimeField(source="edited_at", allow_null=True, help_text="Null: never edited.")
    deletedAt = serializers.DateTimeField(
        source="deleted_at", allow_null=True, help_text="Set: a tombstone (content and metadata are empty)."
    )
    reactions = serializers.SerializerMethodField()
    replyTo = serializers.SerializerMethodField()

    def get_readBy(self, message: Message) -> list[dict[str, Any]]:
        return read_by(message, self.context.get("participants", ()))

    @extend_schema_field(ReactionSerializer(many=True))
    def get_reactions(self, message: Message) -> list[Reaction]:
        return reactions_of(message)

    @extend_schema_field(ReplyToSerializer(allow_null=True))
    def get_replyTo(self, message: Message) -> ReplyTo | None:
        if not message.reply_to_id:
            return None
        quoted = self.context.get("quoted", {}).get(message.reply_to_id)
        return reply_to(quoted) if quoted is not None else None


def read_by(message: Message, participants: Iterable[Participant]) -> list[dict[str, Any]]:
    """Everyone but the sender whose watermark covers the message; readAt is when that watermark last
    moved (the service stores one watermark per participant, not one row per message)."""
    return [
        # Rendered here: webhook bodies are json.dumps'd, not passed through DRF's encoder.
        {"userId": p.user_id, "readAt": iso(p.last_read_at)}
        for p in participants
        if (p.user_id, p.role) != (message.sender_id, message.sender_role)
        and p.last_read_seq >= message.seq
        and p.last_read_at is not None
    ]


class MessageContentField(StrictCharField):
    """Message content: not blank, at most CHAT_MAX_MESSAGE_LENGTH characters as sent (read per message, so
    the setting can change under a running process, as tests do)."""

    default_error_messages = {"content_too_long": "Must be at most {max_length} characters (got {length})."}
    length_code = "content_too_long"

    def length_limit(self) -> int:
        return settings.CHAT["MAX_MESSAGE_LENGTH"]


FILE_METADATA_ERROR = (
    "A FILE message needs metadata.attachmentId (an upload to this conversation) "
    "or metadata.url (http or https) and metadata.name."
)


class MessageInput(serializers.Serializer):
    """A new message. FILE messages need metadata describing the file (chatservice.schema publishes the
    two shapes as a oneOf, so the schema refuses what this refuses)."""

    content = MessageContentField(trim_whitespace=False)
    messageType = serializers.ChoiceField(choices=MessageType.choices, required=False, default=MessageType.TEXT)
    metadata = MetadataField(required=False, default=dict)
    clientMessageId = StrictCharField(required=False, allow_null=True, max_length=CLIENT_MESSAGE_ID_MAX_LENGTH)
    replyTo = serializers.RegexField(
        rf"^{ID_PATTERN}$",
        required=False,
        allow_null=True,
        help_text="The messageId this message answers, in the same conversation (400 `invalid_reply_to` otherwise).",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        attrs = super().to_internal_value(data)
        # Checked on the metadata as sent, which is what the schema describes, and as stored: stripping control
        # characters from keys can merge two of them. (Here rather than in validate(): the WebSocket shares one
        # instance of this serializer, so only the `data` argument is this message's.)
        if attrs["messageType"] == MessageType.FILE and not (
            (is_file_metadata(data.get("metadata")) and is_file_metadata(attrs["metadata"]))
            or (is_attachment_reference(data.get("metadata")) and is_attachment_reference(attrs["metadata"]))
        ):
            raise serializers.ValidationError({"metadata": [FILE_METADATA_ERROR]}, code="file_metadata_required")
        return attrs


class MessageEditInput(serializers.Serializer):
    """An edit: new content, validated as a new message's is."""

    content = MessageContentField(trim_whitespace=False)


# A cursor is a message id: what an id in a URL may look like (chatservice.ids), whole.
CURSOR_PATTERN = rf"^{ID_PATTERN}$"
# A change cursor is the number of a conversation's change (messaging.edits), as digits.
CHANGE_CURSOR_PATTERN = r"^[0-9]{1,18}$"


class MessageListQuery(serializers.Serializer):
    # Out-of-range limits are clamped by the view, as DRF pagination does; non-numbers are refused.
    limit = QueryIntegerField(
        required=False, min_value=1, help_text="Messages per page (default 50); more than 200 count as 200."
    )
    before = serializers.RegexField(
        CURSOR_PATTERN,
        required=False,
        help_text="A messageId: the messages just older than it. Not together with `after` (400 `invalid_cursor`).",
    )
    after = serializers.RegexField(
        CURSOR_PATTERN,
        required=False,
        help_text="A messageId: the messages just newer than it. Not together with `before` (400 `invalid_cursor`).",
    )

    changedSince = serializers.RegexField(
        CHANGE_CURSOR_PATTERN,
        required=False,
        help_text=(
            "A changeCursor (from a page or a frame): the messages edited, deleted or reacted to since, oldest "
            "change first, as they are now. Not together with `before` or `after` (400 `invalid_cursor`)."
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if sum(bool(attrs.get(name)) for name in ("before", "after", "changedSince")) > 1:
            raise serializers.ValidationError(
                "Use one of before, after and changedSince, not several.", code="invalid_cursor"
            )
        return attrs


@extend_schema_serializer(many=False)  # one object per page, although the operation is a list
class MessagePageSerializer(serializers.Serializer):
    """A page of history: chronological `results`, links to older (`next`) and newer (`previous`) pages."""

    results = MessageSerializer(many=True)
    next = serializers.URLField(
        allow_null=True, help_text="Older messages (with changedSince: the changes after these)."
    )
    previous = serializers.URLField(allow_null=True, help_text="Newer messages.")
    changeCursor = serializers.CharField(
        help_text=(
            "Every change up to this one is reflected in what you have read: pass it as changedSince (REST) "
            "or on the socket to learn of later edits, deletions and reactions."
        )
    )


class MessageVersionSerializer(serializers.Serializer):
    """What a message said before an edit (staff only)."""

    content = serializers.CharField()
    metadata = serializers.JSONField()
    writtenAt = serializers.DateTimeField(source="written_at", help_text="When this text was written.")
    replacedAt = serializers.DateTimeField(source="replaced_at", help_text="When an edit replaced it.")
    replacedById = serializers.CharField(source="replaced_by_id")
    replacedByRole = serializers.CharField(source="replaced_by_role")


class MessageVersionListSerializer(serializers.Serializer):
    results = MessageVersionSerializer(many=True, help_text="Newest first; empty for a message never edited.")
