"""JSON shapes of messages (camelCase, as the seed's data model) and the one validator of a new message,
used by REST now and by WebSocket `message` frames."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from rest_framework import serializers

from chatservice.validation import MetadataField, StrictCharField, is_http_url
from conversations.models import Participant
from messaging.models import CLIENT_MESSAGE_ID_MAX_LENGTH, Message, MessageType


class ReadBySerializer(serializers.Serializer):
    userId = serializers.CharField()
    readAt = serializers.DateTimeField()


class MessageSerializer(serializers.Serializer):
    """Output. `readBy` is derived from the participants' watermarks, passed in context["participants"]."""

    messageId = serializers.CharField(source="id")
    conversationId = serializers.CharField(source="conversation_id")
    senderId = serializers.CharField(source="sender_id")
    senderRole = serializers.CharField(source="sender_role")
    content = serializers.CharField()
    messageType = serializers.CharField(source="message_type")
    readBy = serializers.SerializerMethodField()
    metadata = serializers.JSONField()
    clientMessageId = serializers.CharField(source="client_message_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    def get_readBy(self, message: Message) -> list[dict[str, Any]]:
        return read_by(message, self.context.get("participants", ()))


def read_by(message: Message, participants: Iterable[Participant]) -> list[dict[str, Any]]:
    """Everyone but the sender whose watermark covers the message; readAt is when that watermark last
    moved (the service stores one watermark per participant, not one row per message)."""
    return [
        {"userId": p.user_id, "readAt": p.last_read_at}
        for p in participants
        if p.user_id != message.sender_id and p.last_read_seq >= message.seq and p.last_read_at is not None
    ]


class MessageInput(serializers.Serializer):
    content = StrictCharField(trim_whitespace=False)
    messageType = serializers.ChoiceField(choices=MessageType.choices, required=False, default=MessageType.TEXT)
    metadata = MetadataField(required=False, default=dict)
    clientMessageId = StrictCharField(required=False, allow_null=True, max_length=CLIENT_MESSAGE_ID_MAX_LENGTH)

    def validate_content(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Must not be blank.", code="blank")
        limit = settings.CHAT["MAX_MESSAGE_LENGTH"]
        if len(value) > limit:
            raise serializers.ValidationError(
                f"Must be at most {limit} characters (got {len(value)}).", code="content_too_long"
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["messageType"] == MessageType.FILE:
            metadata = attrs["metadata"]
            name = metadata.get("name")
            if not is_http_url(metadata.get("url")) or not isinstance(name, str) or not name.strip():
                raise serializers.ValidationError(
                    {"metadata": ["A FILE message needs metadata.url (http or https) and metadata.name."]},
                    code="file_metadata_required",
                )
        return attrs


class MessageListQuery(serializers.Serializer):
    # Out-of-range limits are clamped by the view, as DRF pagination does; non-numbers are refused.
    limit = serializers.IntegerField(required=False, min_value=1)
    before = serializers.CharField(required=False, max_length=64)
    after = serializers.CharField(required=False, max_length=64)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("before") and attrs.get("after"):
            raise serializers.ValidationError("Use either before or after, not both.", code="invalid_cursor")
        return attrs
