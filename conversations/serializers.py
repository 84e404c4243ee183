"""JSON shapes of conversations (camelCase, as the seed's data model) and the inputs that change them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chatservice.validation import MetadataField, QueryIntegerField, StrictCharField, StrictIntegerField
from conversations.models import (
    LABEL_MAX_LENGTH,
    MAX_LABELS,
    SUBJECT_MAX_LENGTH,
    USER_ID_MAX_LENGTH,
    Conversation,
    ConversationStatus,
    Participant,
    Priority,
    Role,
)
from conversations.rendering import STAFF_ONLY_FIELDS, display_name
from conversations.selectors import unread_for


class ParticipantSerializer(serializers.Serializer):
    userId = serializers.CharField(source="user_id")
    role = serializers.CharField()
    displayName = serializers.SerializerMethodField()
    assigned = serializers.BooleanField()
    joinedAt = serializers.DateTimeField(source="joined_at")
    lastReadAt = serializers.DateTimeField(source="last_read_at", allow_null=True)

    def get_displayName(self, participant: Participant) -> str:
        return display_name(participant)


class LastMessageSerializer(serializers.Serializer):
    messageId = serializers.CharField(source="id")
    senderId = serializers.CharField(source="sender_id")
    senderRole = serializers.CharField(source="sender_role")
    senderName = serializers.CharField(source="sender_name")
    messageType = serializers.CharField(source="message_type")
    preview = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")

    def get_preview(self, message: Any) -> str:
        from realtime.inbox_events import preview_of

        return preview_of(message)


class CsatSerializer(serializers.Serializer):
    """A donor's rating of a closed conversation (POST …/csat's answer; a conversation's `csat`)."""

    conversationId = serializers.CharField()
    rating = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(allow_blank=True)
    submittedAt = serializers.DateTimeField()


class PurgedSerializer(serializers.Serializer):
    """An ARCHIVED conversation purged by retention (CHAT_RETENTION_DAYS): what it had, now gone."""

    purgedAt = serializers.DateTimeField()
    messages = serializers.IntegerField()
    attachments = serializers.IntegerField()
    participants = serializers.IntegerField()


class ConversationSerializer(serializers.Serializer):
    """Output: the shape the schema publishes. `unreadCount` is for the viewer (null when the viewer is not
    a participant). Responses are built by conversations.rendering, which tests hold equal to this."""

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
    labels = serializers.ListField(child=serializers.CharField(), required=False, help_text="Staff only.")
    priority = serializers.CharField(required=False, help_text="Staff only.")
    snoozedUntil = serializers.DateTimeField(
        source="snoozed_until", allow_null=True, required=False, help_text="Staff only."
    )
    firstResponseAt = serializers.DateTimeField(source="first_response_at", allow_null=True)
    waitingSince = serializers.DateTimeField(source="waiting_since", allow_null=True)
    lastMessage = serializers.SerializerMethodField()
    csat = CsatSerializer(allow_null=True, read_only=True, help_text="The donor's latest rating, or null.")
    purged = serializers.SerializerMethodField()

    def get_unreadCount(self, conversation: Conversation) -> int | None:
        # participants.all() is prefetched: no query per conversation.
        principal = self.context.get("principal")
        return None if principal is None else unread_for(conversation, principal)

    @extend_schema_field(PurgedSerializer(allow_null=True))
    def get_purged(self, conversation: Conversation) -> dict[str, Any] | None:
        from conversations.rendering import purged_json

        return purged_json(conversation)

    @extend_schema_field(LastMessageSerializer(allow_null=True))
    def get_lastMessage(self, conversation: Conversation) -> dict[str, Any] | None:
        latest = self.context.get("last_messages", {}).get(conversation.pk)
        return None if latest is None else LastMessageSerializer(latest).data

    def to_representation(self, conversation: Conversation) -> dict[str, Any]:
        data = super().to_representation(conversation)
        if self.context.get("role", Role.ADMIN) != Role.ADMIN:
            for name in STAFF_ONLY_FIELDS:
                data.pop(name, None)
        return data


class CsatInput(serializers.Serializer):
    rating = StrictIntegerField(min_value=1, max_value=5)
    comment = StrictCharField(required=False, allow_blank=True, max_length=1000, default="")


class ConversationCreateInput(serializers.Serializer):
    subject = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=SUBJECT_MAX_LENGTH)
    metadata = MetadataField(required=False, default=dict)

    def validate_subject(self, value: str | None) -> str | None:
        return value or None  # blank clears the subject


class LabelField(StrictCharField):
    """A label: a short tag, trimmed and lower-cased so "VIP" and "vip " are one label."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        return value.strip().lower()


class LabelListField(serializers.ListField):
    """A list of labels, refused as a whole with the first bad item's error (flat, like every other
    field's: `labels.2: Must be a string.`), so the error body keeps its one shape."""

    default_error_messages = {
        "not_a_list": "Expected a list of labels.",
        "max_length": "At most {max_length} labels.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=LabelField(max_length=LABEL_MAX_LENGTH, allow_blank=False), **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        if not isinstance(data, list):
            self.fail("not_a_list")
        if len(data) > MAX_LABELS:
            self.fail("max_length", max_length=MAX_LABELS)
        labels = []
        for index, item in enumerate(data):
            try:
                labels.append(self.child.run_validation(item))
            except serializers.ValidationError as exc:
                detail = exc.detail[0] if isinstance(exc.detail, list) else exc.detail
                raise serializers.ValidationError(f"Label {index + 1}: {detail}", code=detail.code) from None
        return list(dict.fromkeys(labels))  # one of each, in the order given


class ConversationUpdateInput(ConversationCreateInput):
    metadata = MetadataField(required=False)
    status = serializers.ChoiceField(choices=ConversationStatus.choices, required=False)
    labels = LabelListField(
        required=False,
        max_length=MAX_LABELS,
        help_text=f"Staff only. Up to {MAX_LABELS} labels of up to {LABEL_MAX_LENGTH} characters; replaces the list.",
    )
    priority = serializers.ChoiceField(choices=Priority.choices, required=False, help_text="Staff only.")
    snoozedUntil = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Staff only. Hidden from the staff list until then; null wakes it."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(
                "Nothing to update: send subject, metadata, status, labels, priority or snoozedUntil.",
                code="empty_update",
            )
        if "snoozedUntil" in attrs:
            attrs["snoozed_until"] = attrs.pop("snoozedUntil")
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
    label = LabelField(required=False, max_length=LABEL_MAX_LENGTH, help_text="Staff only; donors: ignored.")
    priority = serializers.ChoiceField(choices=Priority.choices, required=False, help_text="Staff only.")
    snoozed = serializers.BooleanField(
        required=False, help_text="Staff only: true lists only snoozed conversations; the default hides them."
    )
    q = StrictCharField(
        required=False,
        max_length=SUBJECT_MAX_LENGTH,
        help_text="Staff only: the conversation id or donor id (exact), or words of the subject.",
    )
    limit = QueryIntegerField(
        required=False,
        min_value=1,
        help_text=f"Conversations per page (default {CONVERSATION_PAGE_SIZE}); "
        f"more than {CONVERSATION_PAGE_MAX} count as {CONVERSATION_PAGE_MAX}.",
    )
    offset = QueryIntegerField(
        required=False, min_value=0, max_value=CONVERSATION_OFFSET_MAX, help_text="Conversations to skip."
    )


class AssignInput(serializers.Serializer):
    adminId = StrictCharField(required=False, max_length=USER_ID_MAX_LENGTH)


class UnassignInput(serializers.Serializer):
    adminId = StrictCharField(required=False, max_length=USER_ID_MAX_LENGTH, help_text="Default: the caller.")


class TransferInput(serializers.Serializer):
    adminId = StrictCharField(max_length=USER_ID_MAX_LENGTH)


class ReadInput(serializers.Serializer):
    messageId = StrictCharField(required=False, allow_null=True, max_length=64)


class ReadStateSerializer(serializers.Serializer):
    conversationId = serializers.CharField(source="conversation_id")
    userId = serializers.CharField(source="user_id")
    lastReadAt = serializers.DateTimeField(source="last_read_at", allow_null=True)
    unreadCount = serializers.IntegerField(source="unread_count")
