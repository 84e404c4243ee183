"""JSON shapes of message search: its query and its page of results."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from chatservice.ids import ID_PATTERN
from chatservice.validation import StrictCharField
from search.selectors import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY_LENGTH, SearchResult

_CURSOR = re.compile(CURSOR_PATTERN)


@extend_schema_field({"type": "string", "pattern": CURSOR_PATTERN, "maxLength": 86})
class CursorField(serializers.CharField):
    """A search cursor: refused with `invalid_cursor` (not the generic `invalid`) when it is not one."""

    default_error_messages = {"invalid_cursor": "Not a cursor this search returned: pass `next` as it is."}

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not _CURSOR.match(value):
            self.fail("invalid_cursor")
        return value


class SearchQuery(serializers.Serializer):
    q = StrictCharField(
        max_length=MAX_QUERY_LENGTH,
        help_text=(
            f"The words to find, at most {MAX_QUERY_LENGTH} characters. A message matches when it contains every "
            "word, in any case (accents of Latin letters ignored, except by PostgreSQL's default configuration); "
            "punctuation, symbols and emoji separate words. A query without any word matches nothing."
        ),
    )
    conversationId = serializers.RegexField(
        rf"^{ID_PATTERN}$",
        required=False,
        help_text="Only this conversation (404 `not_found` if the caller may not see it).",
    )
    before = CursorField(
        required=False,
        trim_whitespace=False,
        help_text="The `next` cursor of the previous page: the results after it.",
    )
    # Out-of-range limits are clamped by the selector, as message history does; non-numbers are refused.
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text=f"Results per page (default {DEFAULT_LIMIT}); more than {MAX_LIMIT} count as {MAX_LIMIT}.",
    )


class SnippetSerializer(serializers.Serializer):
    text = serializers.CharField(
        help_text="Plain text (never HTML): the message, or an excerpt around its first match, a cut end shown as `…`."
    )
    matches = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(min_value=0), min_length=2, max_length=2),
        help_text="Each matched word as [start, end) offsets into `text`, in UTF-16 code units (JavaScript's "
        "`text.slice(start, end)`), in order, never overlapping.",
    )


class SearchResultSerializer(serializers.Serializer):
    messageId = serializers.CharField(source="message.id")
    conversationId = serializers.CharField(source="message.conversation_id")
    messageType = serializers.CharField(
        source="message.message_type", help_text="TEXT, FILE, or NOTE (an internal note: staff only)."
    )
    snippet = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="message.created_at")
    senderName = serializers.CharField(source="message.sender_name")

    @extend_schema_field(SnippetSerializer)
    def get_snippet(self, result: SearchResult) -> dict[str, Any]:
        return {"text": result.snippet.text, "matches": [list(span) for span in result.snippet.matches]}


@extend_schema_serializer(many=False)
class SearchPageSerializer(serializers.Serializer):
    """A page of search results: phrase matches first, then the other matches; newest first within each."""

    results = SearchResultSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page (null: this is the last one).")
