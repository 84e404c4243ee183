"""REST transport for message history and the REST fallback for sending."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from audit.services import conversation_read
from chatservice.errors import NotFound
from chatservice.schema import ALWAYS_ERRORS, BODY_ERRORS, METADATA_ERRORS, UNSAFE_ERRORS, error_responses
from conversations.models import Participant
from conversations.selectors import conversation_get
from conversations.views import query_of
from messaging import selectors, services
from messaging.serializers import MessageInput, MessageListQuery, MessagePageSerializer, MessageSerializer


def _page_link(request: Request, param: str, message_id: str) -> str:
    url = request.build_absolute_uri()
    url = remove_query_param(url, "before" if param == "after" else "after")
    return replace_query_param(url, param, message_id)


class MessageViewSet(viewsets.GenericViewSet):
    serializer_class = MessageSerializer

    @extend_schema(
        operation_id="conversations_messages_list",
        parameters=[MessageListQuery],
        responses={
            200: MessagePageSerializer,
            **error_responses(
                ALWAYS_ERRORS,
                ("invalid", "blank", "null_characters_not_allowed", "min_value", "max_string_length", "invalid_cursor"),
                ("not_found", "message_not_found"),
            ),
        },
    )
    def list(self, request: Request, conversation_id: str) -> Response:
        conversation = conversation_get(viewer=request.user, conversation_id=conversation_id)
        query = MessageListQuery(data=query_of(request))
        query.is_valid(raise_exception=True)
        try:
            page = selectors.message_page(
                conversation=conversation,
                limit=query.validated_data.get("limit", selectors.DEFAULT_PAGE_SIZE),
                before=query.validated_data.get("before"),
                after=query.validated_data.get("after"),
                viewer=request.user,
            )
        except selectors.InvalidCursor:
            # A cursor is a message id, well formed (the serializer checked); one that names no message of
            # this conversation is a missing resource, as an unknown messageId is for PUT …/read, not bad input.
            raise NotFound("No such message in this conversation.", code="message_not_found") from None
        conversation_read(reader=request.user, conversation_id=conversation.pk)  # staff: audited once a day
        context = {"participants": list(conversation.participants.all())}
        results = MessageSerializer(page.messages, many=True, context=context).data
        body: dict[str, Any] = {"results": results, "next": None, "previous": None}
        if page.messages and page.has_older:
            body["next"] = _page_link(request, "before", page.messages[0].id)
        if page.messages and page.has_newer:
            body["previous"] = _page_link(request, "after", page.messages[-1].id)
        return Response(body)

    @extend_schema(
        request=MessageInput,
        responses={
            201: MessageSerializer,
            200: MessageSerializer,
            **error_responses(
                ALWAYS_ERRORS,
                BODY_ERRORS,
                UNSAFE_ERRORS,
                METADATA_ERRORS,
                ("required", "blank", "not_a_string", "content_too_long", "max_length", "invalid_choice"),
                (
                    "file_metadata_required",
                    "system_message_forbidden",
                    "note_forbidden",
                    "not_found",
                    "attachment_not_found",
                ),
                ("conversation_closed", "idempotency_key_reused"),
            ),
        },
    )
    def create(self, request: Request, conversation_id: str) -> Response:
        conversation = conversation_get(viewer=request.user, conversation_id=conversation_id)
        data = MessageInput(data=request.data)
        data.is_valid(raise_exception=True)
        message, created = services.message_send(
            conversation=conversation,
            sender=request.user,
            content=data.validated_data["content"],
            message_type=data.validated_data["messageType"],
            metadata=data.validated_data["metadata"],
            client_message_id=data.validated_data.get("clientMessageId"),
        )
        # Fresh watermarks: an admin may just have joined, and a retried send may already have been read.
        context = {"participants": list(Participant.objects.filter(conversation_id=conversation.pk))}
        # 200 for a retried send that returns the original message, 201 when a message was stored.
        return Response(
            MessageSerializer(message, context=context).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
