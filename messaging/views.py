"""REST transport for message history and the REST fallback for sending."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from audit.services import conversation_read
from chatservice.errors import NotFound
from chatservice.schema import ALWAYS_ERRORS, BODY_ERRORS, METADATA_ERRORS, UNSAFE_ERRORS, error_responses
from conversations.models import Conversation, Participant
from conversations.selectors import conversation_get
from conversations.views import query_of
from messaging import edits, selectors, services
from messaging.models import Message
from messaging.serializers import (
    MessageEditInput,
    MessageInput,
    MessageListQuery,
    MessagePageSerializer,
    MessageSerializer,
    MessageVersionListSerializer,
    MessageVersionSerializer,
    message_context,
)


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
        conversation_read(reader=request.user, conversation_id=conversation.pk)  # staff: audited once a day
        if "changedSince" in query.validated_data:
            return self._changes(request, conversation, int(query.validated_data["changedSince"]), query)
        # Read (with the conversation) before the page: a change made while the page is read is then still
        # after the cursor.
        cursor = conversation.last_change_seq
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
        context = message_context(page.messages, conversation.participants.all())
        results = MessageSerializer(page.messages, many=True, context=context).data
        body: dict[str, Any] = {"results": results, "next": None, "previous": None, "changeCursor": str(cursor)}
        if page.messages and page.has_older:
            body["next"] = _page_link(request, "before", page.messages[0].id)
        if page.messages and page.has_newer:
            body["previous"] = _page_link(request, "after", page.messages[-1].id)
        return Response(body)

    def _changes(self, request: Request, conversation: Conversation, after: int, query: MessageListQuery) -> Response:
        page = selectors.changes_since(
            conversation_id=conversation.pk,
            after=after,
            viewer=request.user,
            limit=query.validated_data.get("limit", selectors.CHANGES_PAGE_SIZE),
        )
        context = message_context(page.messages, conversation.participants.all())
        body: dict[str, Any] = {
            "results": MessageSerializer(page.messages, many=True, context=context).data,
            "next": replace_query_param(request.build_absolute_uri(), "changedSince", page.cursor)
            if page.more
            else None,
            "previous": None,
            "changeCursor": str(page.cursor),
        }
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
            reply_to=data.validated_data.get("replyTo"),
        )
        # Fresh watermarks: an admin may just have joined, and a retried send may already have been read.
        context = message_context([message], Participant.objects.filter(conversation_id=conversation.pk))
        # 200 for a retried send that returns the original message, 201 when a message was stored.
        return Response(
            MessageSerializer(message, context=context).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


MESSAGE_PATH_ERRORS = (ALWAYS_ERRORS, ("not_found", "message_not_found"))


def message_json(message: Message) -> dict[str, Any]:
    """One message as REST answers it, with fresh watermarks and its reply resolved."""
    participants = Participant.objects.filter(conversation_id=message.conversation_id)
    return MessageSerializer(message, context=message_context([message], participants)).data


class MessageChangeViewSet(viewsets.ViewSet):
    """Edit (PATCH), delete (DELETE) one message; its earlier versions (staff). (A plain ViewSet: DRF's
    OPTIONS answer would call a generic view's get_object for PUT, which these views do not have.)"""

    def _answer(self, message: Message) -> Response:
        return Response(message_json(message))

    @extend_schema(
        operation_id="conversations_messages_edit",
        request=MessageEditInput,
        responses={
            200: MessageSerializer,
            **error_responses(
                *MESSAGE_PATH_ERRORS,
                BODY_ERRORS,
                UNSAFE_ERRORS,
                ("required", "blank", "not_a_string", "content_too_long"),
                ("edit_forbidden", "edit_window_passed", "message_deleted"),
            ),
        },
    )
    def partial_update(self, request: Request, conversation_id: str, message_id: str) -> Response:
        conversation = conversation_get(viewer=request.user, conversation_id=conversation_id)
        data = MessageEditInput(data=request.data)
        data.is_valid(raise_exception=True)
        message = edits.message_edit(
            conversation=conversation,
            editor=request.user,
            message_id=message_id,
            content=data.validated_data["content"],
        )
        return self._answer(message)

    @extend_schema(
        operation_id="conversations_messages_delete",
        request=None,
        responses={204: None, **error_responses(*MESSAGE_PATH_ERRORS, UNSAFE_ERRORS, ("delete_forbidden",))},
    )
    def destroy(self, request: Request, conversation_id: str, message_id: str) -> Response:
        conversation = conversation_get(viewer=request.user, conversation_id=conversation_id)
        edits.message_delete(conversation=conversation, actor=request.user, message_id=message_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="conversations_messages_versions",
        responses={200: MessageVersionListSerializer, **error_responses(*MESSAGE_PATH_ERRORS)},
    )
    def versions(self, request: Request, conversation_id: str, message_id: str) -> Response:
        """Staff only: what the message said before each edit, newest first (a donor gets 404)."""
        conversation = conversation_get(viewer=request.user, conversation_id=conversation_id)
        versions = selectors.message_versions(conversation=conversation, viewer=request.user, message_id=message_id)
        return Response({"results": MessageVersionSerializer(versions, many=True).data})


def _emoji_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        "emoji",
        str,
        OpenApiParameter.PATH,
        enum=list(settings.CHAT["REACTIONS"]),
        description="One of the configured reactions (`CHAT_REACTIONS`), percent-encoded.",
    )


class ReactionViewSet(viewsets.ViewSet):
    """PUT adds the caller's reaction, DELETE removes it; both idempotent, both answer the message."""

    def _set(self, request: Request, conversation_id: str, message_id: str, emoji: str, *, on: bool) -> Response:
        conversation = conversation_get(viewer=request.user, conversation_id=conversation_id)
        message = edits.reaction_set(
            conversation=conversation, actor=request.user, message_id=message_id, emoji=emoji, on=on
        )
        return Response(message_json(message))

    @extend_schema(
        operation_id="conversations_messages_reactions_add",
        parameters=[_emoji_parameter()],
        request=None,
        responses={
            200: MessageSerializer,
            **error_responses(*MESSAGE_PATH_ERRORS, UNSAFE_ERRORS, ("reaction_not_allowed", "message_deleted")),
        },
    )
    def update(self, request: Request, conversation_id: str, message_id: str, emoji: str) -> Response:
        return self._set(request, conversation_id, message_id, emoji, on=True)

    @extend_schema(
        operation_id="conversations_messages_reactions_remove",
        parameters=[_emoji_parameter()],
        request=None,
        responses={
            200: MessageSerializer,
            **error_responses(*MESSAGE_PATH_ERRORS, UNSAFE_ERRORS, ("reaction_not_allowed", "message_deleted")),
        },
    )
    def destroy(self, request: Request, conversation_id: str, message_id: str, emoji: str) -> Response:
        return self._set(request, conversation_id, message_id, emoji, on=False)
