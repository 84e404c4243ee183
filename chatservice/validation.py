"""Input rules shared by every transport (REST serializers now, WebSocket frames later).

Each failure is a DRF ValidationError with a stable code, so REST answers 400 with that code and the
WebSocket consumer can send an `error` frame carrying the same code.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rest_framework import serializers

from chatservice.ids import ID_PATTERN

# Metadata is a small bag of client data (file descriptors, UI hints), not a storage channel.
METADATA_MAX_BYTES = 8 * 1024
# Deeper metadata is not a descriptor but a payload, and deep nesting is how parsers are attacked.
METADATA_MAX_DEPTH = 16
# Numbers in metadata: JSON parsers in browsers are exact only up to 2^53, and MongoDB stores integers as
# BSON int64. A larger number would be stored and then fail to encode (for Redis, for BSON) far from here.
METADATA_MAX_NUMBER = 2**53
# C0 controls except tab and newline, DEL, C1 controls (invisible, break terminals and log lines) and
# lone UTF-16 surrogates, which JSON can carry but no database text column can store.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# A character that is neither a control character nor whitespace (Python's str.isspace): text without one is
# blank. Spelled out rather than `\S` because the OpenAPI schema publishes it as a `pattern`, and the
# regex engines that read schemas (ECMA, Rust) disagree with Python about `\s`; with an explicit class all
# three agree. Lone surrogates are left out: Rust's regexes cannot name them, and clean_text removes them
# before this is applied.
VISIBLE_CHAR_PATTERN = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
VISIBLE_CHAR = re.compile(VISIBLE_CHAR_PATTERN)
# A FILE message's metadata.url: http or https, then a host whose first character is visible. Published in
# the schema as is, so a URL the schema accepts is one this service accepts (urlsplit's own leniency, such as
# leading spaces or tabs inside the scheme, is not the rule). A URL matching it still matches once control
# characters are stripped: none can be in the prefix, and the host's first character is not one.
HTTP_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\x00-\x20\x7f-\x9f]"
HTTP_URL = re.compile(HTTP_URL_PATTERN)
# Longest metadata.url of a FILE message: browsers and proxies handle URLs up to about this length.
HTTP_URL_MAX_LENGTH = 2048


def clean_text(value: str) -> str:
    """Normalise newlines and strip control characters (tab and newline survive)."""
    return CONTROL_CHARS.sub("", value.replace("\r\n", "\n"))


def number_is_safe(value: Any) -> bool:
    """False for a JSON number beyond ±METADATA_MAX_NUMBER or not finite; True for anything else."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return True
    return math.isfinite(value) and -METADATA_MAX_NUMBER <= value <= METADATA_MAX_NUMBER


def json_is_safe(value: Any) -> bool:
    """Whether every number in a JSON value is one `_clean_json` accepts (for values that did not pass
    through it)."""
    if isinstance(value, dict):
        return all(json_is_safe(item) for item in value.values())
    if isinstance(value, list):
        return all(json_is_safe(item) for item in value)
    return number_is_safe(value)


def _clean_json(value: Any, depth: int = 0) -> Any:
    """Apply clean_text to every string (keys too) of a JSON value, refusing excessive nesting."""
    if depth > METADATA_MAX_DEPTH:
        raise serializers.ValidationError(
            f"Must not nest deeper than {METADATA_MAX_DEPTH} levels.", code="metadata_too_deep"
        )
    if isinstance(value, str):
        return clean_text(value)
    if not number_is_safe(value):
        raise serializers.ValidationError(
            f"Numbers must be finite and between -2^53 and 2^53 (got {value!r:.40}).",
            code="metadata_number_out_of_range",
        )
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v, depth + 1) for v in value]
    return value


class StrictIntegerField(serializers.IntegerField):
    """An integer as JSON sends it: `"3"`, `3.0` and `true` are not integers (DRF takes all three)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryIntegerField(serializers.IntegerField):
    """An integer in a query string: digits, optionally signed. DRF also takes "0.0" and " 7", which the
    schema (type integer) does not allow."""

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, str) or not _QUERY_INTEGER.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)


_QUERY_INTEGER = re.compile(r"-?[0-9]+")


class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean: `"true"`, `1` and `"on"` are not booleans (DRF takes all three)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    """A CharField that refuses non-strings instead of coercing 42 into "42", and cleans controls.

    The length limit counts the text as sent, before control characters are stripped: that is what the
    schema's `maxLength` says, and stripping only ever shortens text, so what is stored is within the limit
    too. (Counting after stripping accepted 201 characters as a 200-character subject.) Text with no
    visible character once cleaned (e.g. only control characters) is blank, like text of only spaces.
    """

    default_error_messages = {"not_a_string": "Must be a string."}
    # The error code of a text over its limit; subclasses with a limit of their own name theirs.
    length_code = "max_length"

    def length_limit(self) -> int | None:
        """The most characters this field takes (None: no limit). Also what the schema publishes."""
        return self.max_length

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        limit = self.length_limit()
        if limit is not None and len(data) > limit:
            self.fail(self.length_code, max_length=limit, length=len(data))
        value = super().to_internal_value(clean_text(data))
        if not self.allow_blank and not VISIBLE_CHAR.search(value):
            self.fail("blank")
        return value


def validate_metadata(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be a JSON object.", code="metadata_not_object")
    value = _clean_json(value)
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
    return isinstance(value, str) and len(value) <= HTTP_URL_MAX_LENGTH and HTTP_URL.match(value) is not None


def is_file_metadata(metadata: Any) -> bool:
    """Whether metadata describes a file: an http(s) `url` and a `name` with a visible character."""
    if not isinstance(metadata, dict):
        return False
    name = metadata.get("name")
    return is_http_url(metadata.get("url")) and isinstance(name, str) and VISIBLE_CHAR.search(name) is not None


# metadata.attachmentId of a FILE message: an id as this service makes them (chatservice.ids), whole.
ATTACHMENT_ID_PATTERN = rf"^{ID_PATTERN}$"
ATTACHMENT_ID = re.compile(ATTACHMENT_ID_PATTERN)


def is_attachment_reference(metadata: Any) -> bool:
    """Whether metadata references an upload: `attachmentId`, a well-formed id (the server describes the file)."""
    if not isinstance(metadata, dict):
        return False
    value = metadata.get("attachmentId")
    return isinstance(value, str) and ATTACHMENT_ID.fullmatch(value) is not None
