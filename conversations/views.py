"""REST transport for conversations: parse, authorize, call one service or selector, render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from chatservice.ids import ID_PATTERN
from conversations import selectors, services
from conversations.models import Conversation
from conversations.serializers import (
    AssignInput,
    ConversationCreateInput,
    ConversationListQuery,
    ConversationSerializer,
    ConversationUpdateInput,
    ReadInput,
    ReadStateSerializer,
)


class IsSupportStaff(permissions.BasePermission):
    """Checked before the conversation is looked up, so the answer (403) says nothing about the id."""

    message = "Only support staff may do this."

    def has_permission(self, request: Request, view: object) -> bool:
        return bool(request.user and request.user.is_admin)


class ConversationPagination(LimitOffsetPagination):
    default_limit = 20
    max_limit = 100


def _validated(serializer_class: type, data: object, **context: object) -> dict:
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ConversationViewSet(viewsets.GenericViewSet):
    serializer_class = ConversationSerializer
    pagination_class = ConversationPagination
    lookup_value_regex = ID_PATTERN
    queryset = Conversation.objects.none()  # the browsable API asks for one; reads go through selectors

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "principal": self.request.user}

    def _render(self, conversation, status_code: int = status.HTTP_200_OK) -> Response:
        # Re-read with participants so the answer shows the state after the write.
        fresh = selectors.conversation_get(viewer=self.request.user, conversation_id=conversation.pk)
        return Response(self.get_serializer(fresh).data, status=status_code)

    @extend_schema(parameters=[ConversationListQuery])
    def list(self, request: Request) -> Response:
        query = _validated(ConversationListQuery, request.query_params)
        qs = selectors.conversation_list(
            viewer=request.user, status=query.get("status"), assigned=query.get("assigned")
        )
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=ConversationCreateInput, responses={201: ConversationSerializer})
    def create(self, request: Request) -> Response:
        data = _validated(ConversationCreateInput, request.data)
        conversation = services.conversation_create(creator=request.user, **data)
        return self._render(conversation, status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        conversation = selectors.conversation_get(viewer=request.user, conversation_id=pk)
        return Response(self.get_serializer(conversation).data)

    @extend_schema(request=ConversationUpdateInput, responses=ConversationSerializer)
    def update(self, request: Request, pk: str) -> Response:
        conversation = selectors.conversation_get(viewer=request.user, conversation_id=pk)
        data = _validated(ConversationUpdateInput, request.data)
        services.conversation_update(conversation=conversation, actor=request.user, **data)
        return self._render(conversation)

    partial_update = update

    @extend_schema(request=AssignInput, responses=ConversationSerializer)
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated, IsSupportStaff])
    def assign(self, request: Request, pk: str) -> Response:
        conversation = selectors.conversation_get(viewer=request.user, conversation_id=pk)
        data = _validated(AssignInput, request.data)
        services.conversation_assign(
            conversation=conversation, actor=request.user, admin_id=data.get("adminId") or request.user.user_id
        )
        return self._render(conversation)

    @extend_schema(request=ReadInput, responses=ReadStateSerializer)
    @action(detail=True, methods=["put"])
    def read(self, request: Request, pk: str) -> Response:
        conversation = selectors.conversation_get(viewer=request.user, conversation_id=pk)
        data = _validated(ReadInput, request.data)
        state = services.participant_mark_read(
            conversation=conversation, reader=request.user, message_id=data.get("messageId")
        )
        return Response(ReadStateSerializer(state).data)
