"""JSON shapes of conversations (camelCase, as the seed's data model) and the inputs that change them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from chatservice.validation import MetadataField, StrictCharField
from conversations.models import SUBJECT_MAX_LENGTH, USER_ID_MAX_LENGTH, Conversation, ConversationStatus
from conversations.selectors import unread_for


class ParticipantSerializer(serializers.Serializer):
    userId = serializers.CharField(source="user_id")
    role = serializers.CharField()
    joinedAt = serializers.DateTimeField(source="joined_at")
    lastReadAt = serializers.DateTimeField(source="last_read_at", allow_null=True)


class ConversationSerializer(serializers.Serializer):
    """Output. `unreadCount` is for the viewer (null when the viewer is not a participant)."""

    conversationId = serializers.CharField(source="id")
    participants = ParticipantSerializer(many=True, source="participants.all")
    createdBy = serializers.CharField(source="created_by")
    status = serializers.CharField()
    subject = serializers.CharField(allow_null=True)
    metadata = serializers.JSONField()
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    lastMessageAt = serializers.DateTimeField(source="last_message_at", allow_null=True)
    unreadCount = serializers.SerializerMethodField()

    def get_unreadCount(self, conversation: Conversation) -> int | None:
        # participants.all() is prefetched: no query per conversation.
        return unread_for(conversation, self.context["principal"])


class ConversationCreateInput(serializers.Serializer):
    subject = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=SUBJECT_MAX_LENGTH)
    metadata = MetadataField(required=False, default=dict)

    def validate_subject(self, value: str | None) -> str | None:
        return value or None  # blank clears the subject


class ConversationUpdateInput(ConversationCreateInput):
    metadata = MetadataField(required=False)
    status = serializers.ChoiceField(choices=ConversationStatus.choices, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(
                "Nothing to update: send subject, metadata or status.", code="empty_update"
            )
        return attrs


# Conversations per page of GET /api/conversations, unless `limit` says otherwise, and the most it may say.
CONVERSATION_PAGE_SIZE = 20
CONVERSATION_PAGE_MAX = 100
# The largest offset every database takes (SQL OFFSET and MongoDB $skip are 64-bit integers); a larger one
# failed in the database, a 500 instead of a 400.
CONVERSATION_OFFSET_MAX = 2**63 - 1


class ConversationListQuery(serializers.Serializer):
    """The list's query string. Paging is validated here too: DRF's paginator silently replaced a `limit` or
    `offset` that is not a number with the default, which the schema (integers) does not allow."""

    status = serializers.ChoiceField(choices=ConversationStatus.choices, required=False)
    assigned = serializers.ChoiceField(choices=["me", "none"], required=False, help_text="Staff only; donors: ignored.")
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text=f"Conversations per page (default {CONVERSATION_PAGE_SIZE}); "
        f"more than {CONVERSATION_PAGE_MAX} count as {CONVERSATION_PAGE_MAX}.",
    )
    offset = serializers.IntegerField(
        required=False, min_value=0, max_value=CONVERSATION_OFFSET_MAX, help_text="Conversations to skip."
    )


class AssignInput(serializers.Serializer):
    adminId = StrictCharField(required=False, max_length=USER_ID_MAX_LENGTH)


class ReadInput(serializers.Serializer):
    messageId = StrictCharField(required=False, allow_null=True, max_length=64)


class ReadStateSerializer(serializers.Serializer):
    conversationId = serializers.CharField(source="conversation_id")
    userId = serializers.CharField(source="user_id")
    lastReadAt = serializers.DateTimeField(source="last_read_at", allow_null=True)
    unreadCount = serializers.IntegerField(source="unread_count")
