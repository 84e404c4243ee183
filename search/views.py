"""REST transport of message search: parse, call the one selector, render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from chatservice.schema import ALWAYS_ERRORS, error_responses
from conversations.views import query_of
from search import selectors
from search.serializers import SearchPageSerializer, SearchQuery, SearchResultSerializer


class MessageSearchView(APIView):
    """Full-text search of the messages the caller may see."""

    @extend_schema(
        operation_id="search_messages",
        parameters=[SearchQuery],
        responses={
            200: SearchPageSerializer,
            **error_responses(
                ALWAYS_ERRORS,
                (
                    "invalid",
                    "blank",
                    "max_length",
                    "min_value",
                    "max_string_length",
                    "null_characters_not_allowed",
                    "invalid_cursor",
                ),
                ("not_found",),
            ),
        },
    )
    def get(self, request: Request) -> Response:
        query = SearchQuery(data=query_of(request))
        query.is_valid(raise_exception=True)
        data = query.validated_data
        page = selectors.search_messages(
            viewer=request.user,
            query=data["q"],
            conversation_id=data.get("conversationId"),
            before=data.get("before"),
            limit=data.get("limit", selectors.DEFAULT_LIMIT),
        )
        next_url = None
        if page.next_cursor is not None:
            next_url = replace_query_param(request.build_absolute_uri(), "before", page.next_cursor)
        return Response({"results": SearchResultSerializer(page.results, many=True).data, "next": next_url})
