"""REST transport for message history and the REST fallback for sending."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from conversations.models import Participant
from conversations.selectors import conversation_get
from messaging import selectors, services
from messaging.serializers import MessageInput, MessageListQuery, MessageSerializer

MessagePageSerializer = inline_serializer(
    "MessagePage",
    {
        "results": MessageSerializer(many=True),
        "next": serializers.URLField(allow_null=True, help_text="Older messages."),
        "previous": serializers.URLField(allow_null=True, help_text="Newer messages."),
    },
)


def _page_link(request: Request, param: str, message_id: str) -> str:
    url = request.build_absolute_uri()
    url = remove_query_param(url, "before" if param == "after" else "after")
    return replace_query_param(url, param, message_id)


class MessageViewSet(viewsets.GenericViewSet):
    serializer_class = MessageSerializer

    @extend_schema(parameters=[MessageListQuery], responses=MessagePageSerializer)
    def list(self, request: Request, conversation_id: str) -> Response:
        conversation = conversation_get(viewer=request.user, conversation_id=conversation_id)
        query = MessageListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = selectors.message_page(
            conversation=conversation,
            limit=query.validated_data.get("limit", selectors.DEFAULT_PAGE_SIZE),
            before=query.validated_data.get("before"),
            after=query.validated_data.get("after"),
        )
        context = {"participants": list(conversation.participants.all())}
        results = MessageSerializer(page.messages, many=True, context=context).data
        body: dict[str, Any] = {"results": results, "next": None, "previous": None}
        if page.messages and page.has_older:
            body["next"] = _page_link(request, "before", page.messages[0].id)
        if page.messages and page.has_newer:
            body["previous"] = _page_link(request, "after", page.messages[-1].id)
        return Response(body)

    @extend_schema(request=MessageInput, responses={201: MessageSerializer, 200: MessageSerializer})
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
