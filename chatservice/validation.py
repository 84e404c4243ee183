"""Input rules shared by every transport (REST serializers now, WebSocket frames later).

Each failure is a DRF ValidationError with a stable code, so REST answers 400 with that code and the
WebSocket consumer can send an `error` frame carrying the same code.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from rest_framework import serializers

# Metadata is a small bag of client data (file descriptors, UI hints), not a storage channel.
METADATA_MAX_BYTES = 8 * 1024
# C0 controls except tab and newline, DEL, and C1 controls: invisible, break terminals and log lines.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(value: str) -> str:
    """Normalise newlines and strip control characters (tab and newline survive)."""
    return CONTROL_CHARS.sub("", value.replace("\r\n", "\n"))


class StrictCharField(serializers.CharField):
    """A CharField that refuses non-strings instead of coercing 42 into "42", and cleans controls."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(clean_text(data))


def validate_metadata(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be a JSON object.", code="metadata_not_object")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > METADATA_MAX_BYTES:
        raise serializers.ValidationError(
            f"Must be at most {METADATA_MAX_BYTES} bytes as JSON (got {size}).", code="metadata_too_large"
        )
    return value


class MetadataField(serializers.JSONField):
    def to_internal_value(self, data: Any) -> dict[str, Any]:
        return validate_metadata(super().to_internal_value(data))


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 2048:
        return False
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)
