"""JSON shapes of the desk (camelCase): agents and canned responses."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chatservice.validation import StrictCharField, StrictIntegerField
from conversations.models import DISPLAY_NAME_MAX_LENGTH
from desk.models import CANNED_CONTENT_MAX_LENGTH, MAX_CAPACITY, SHORT_CODE_MAX_LENGTH, Availability


class AgentCsatSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Ratings of conversations last assigned to this agent.")
    average = serializers.FloatField(help_text="Their average, 1 to 5.")


class AgentSerializer(serializers.Serializer):
    agentId = serializers.CharField(source="agent_id")
    displayName = serializers.CharField(source="display_name")
    availability = serializers.CharField()
    openAssigned = serializers.IntegerField(source="open_assigned")
    capacity = serializers.IntegerField()
    csat = AgentCsatSerializer(allow_null=True, help_text="Null before the first rating.")


class AgentUpdateInput(serializers.Serializer):
    availability = serializers.ChoiceField(choices=Availability.choices, required=False)
    capacity = StrictIntegerField(required=False, min_value=0, max_value=MAX_CAPACITY)
    displayName = StrictCharField(required=False, allow_blank=True, max_length=DISPLAY_NAME_MAX_LENGTH)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(
                "Nothing to update: send availability, capacity or displayName.", code="empty_update"
            )
        if "displayName" in attrs:
            attrs["display_name"] = attrs.pop("displayName").strip()
        return attrs


# A short code is what follows "/" in the reply box: letters, digits, "-" and "_".
SHORT_CODE_PATTERN = r"^[A-Za-z0-9_\-]+$"


@extend_schema_field(
    {"type": "string", "pattern": SHORT_CODE_PATTERN, "minLength": 1, "maxLength": SHORT_CODE_MAX_LENGTH}
)
class ShortCodeField(StrictCharField):
    """What follows `/` in the reply box: letters, digits, - and _."""


class CannedResponseSerializer(serializers.Serializer):
    id = serializers.CharField(read_only=True)
    shortCode = ShortCodeField(
        source="short_code",
        max_length=SHORT_CODE_MAX_LENGTH,
        validators=[RegexValidator(SHORT_CODE_PATTERN, "Letters, digits, - and _ only.", code="invalid")],
        help_text="What follows `/` in the reply box: letters, digits, - and _.",
    )
    content = StrictCharField(max_length=CANNED_CONTENT_MAX_LENGTH)
    shared = serializers.BooleanField(required=False, default=False)
    ownerId = serializers.CharField(source="owner_id", read_only=True)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict) and "shared" in data and not isinstance(data["shared"], bool):
            raise serializers.ValidationError({"shared": ["Must be true or false."]}, code="invalid")
        return super().to_internal_value(data)
