"""REST transport for conversations: parse, authorize, call one service or selector, render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from audit.services import conversation_read
from chatservice.ids import ID_PATTERN
from chatservice.schema import ALWAYS_ERRORS, BODY_ERRORS, METADATA_ERRORS, UNSAFE_ERRORS, error_responses
from conversations import selectors, services
from conversations.models import Conversation
from conversations.rendering import render_conversations
from conversations.serializers import (
    CONVERSATION_PAGE_MAX,
    CONVERSATION_PAGE_SIZE,
    AssignInput,
    ConversationCreateInput,
    ConversationListQuery,
    ConversationSerializer,
    ConversationUpdateInput,
    CsatInput,
    CsatSerializer,
    ReadInput,
    ReadStateSerializer,
    TransferInput,
    UnassignInput,
)
from desk import assignment


class IsSupportStaff(permissions.BasePermission):
    """Checked before the conversation is looked up, so the answer (403) says nothing about the id."""

    message = "Only support staff may do this."

    def has_permission(self, request: Request, view: object) -> bool:
        return bool(request.user and request.user.is_admin)


class ConversationPagination(LimitOffsetPagination):
    """Reads `limit` and `offset` once ConversationListQuery has validated them."""

    default_limit = CONVERSATION_PAGE_SIZE
    max_limit = CONVERSATION_PAGE_MAX


def _validated(serializer_class: type, data: object, **context: object) -> dict:
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def query_of(request: Request) -> dict[str, str]:
    """The query string as a plain dict (the last value of a repeated key). Not the QueryDict itself: DRF
    reads a QueryDict as an HTML form, where an empty value means "not given", so `?status=` passed as no
    filter although the schema (like the choices) does not allow an empty status."""
    return request.query_params.dict()


# What the operations answer besides their result (chatservice.schema.ERROR_CODES says what each code means).
UPDATE_ERRORS = error_responses(
    ALWAYS_ERRORS,
    BODY_ERRORS,
    UNSAFE_ERRORS,
    METADATA_ERRORS,
    ("not_a_string", "max_length", "invalid_choice", "empty_update", "status_forbidden", "not_found"),
    ("not_a_list", "max_length", "blank", "invalid", "staff_only_field"),
)


class ConversationViewSet(viewsets.GenericViewSet):
    serializer_class = ConversationSerializer
    pagination_class = ConversationPagination
    lookup_value_regex = ID_PATTERN
    # Named like every other path under /api/conversations/ (messages, attachments, transcript): one name
    # per resource in the OpenAPI paths, whichever view serves them.
    lookup_url_kwarg = "conversation_id"
    queryset = Conversation.objects.none()  # the browsable API asks for one; reads go through selectors

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "principal": self.request.user}

    def _render(self, conversation, status_code: int = status.HTTP_200_OK) -> Response:
        # Re-read with participants so the answer shows the state after the write.
        fresh = selectors.conversation_get(viewer=self.request.user, conversation_id=conversation.pk)
        return Response(render_conversations([fresh], viewer=self.request.user)[0], status=status_code)

    @extend_schema(
        parameters=[ConversationListQuery],
        responses={
            200: ConversationSerializer(many=True),
            **error_responses(
                ALWAYS_ERRORS,
                ("invalid", "invalid_choice", "min_value", "max_value", "max_string_length"),
                ("max_length", "blank", "not_a_string"),
            ),
        },
    )
    def list(self, request: Request) -> Response:
        query = _validated(ConversationListQuery, query_of(request))
        qs = selectors.conversation_list(
            viewer=request.user,
            status=query.get("status"),
            assigned=query.get("assigned"),
            label=query.get("label"),
            priority=query.get("priority"),
            snoozed=query.get("snoozed"),
            q=query.get("q"),
        )
        page = list(self.paginate_queryset(qs))
        participants = selectors.participants_of([c.pk for c in page])
        return self.get_paginated_response(render_conversations(page, viewer=request.user, participants=participants))

    @extend_schema(
        request=ConversationCreateInput,
        responses={
            201: ConversationSerializer,
            **error_responses(ALWAYS_ERRORS, BODY_ERRORS, UNSAFE_ERRORS, METADATA_ERRORS, "not_a_string", "max_length"),
        },
    )
    def create(self, request: Request) -> Response:
        data = _validated(ConversationCreateInput, request.data)
        conversation = services.conversation_create(creator=request.user, **data)
        return self._render(conversation, status.HTTP_201_CREATED)

    @extend_schema(responses={200: ConversationSerializer, **error_responses(ALWAYS_ERRORS, "not_found")})
    def retrieve(self, request: Request, conversation_id: str) -> Response:
        conversation = selectors.conversation_get(viewer=request.user, conversation_id=conversation_id)
        conversation_read(reader=request.user, conversation_id=conversation.pk)  # staff: audited once a day
        return Response(render_conversations([conversation], viewer=request.user)[0])

    @extend_schema(request=ConversationUpdateInput, responses={200: ConversationSerializer, **UPDATE_ERRORS})
    def update(self, request: Request, conversation_id: str) -> Response:
        conversation = selectors.conversation_get(viewer=request.user, conversation_id=conversation_id)
        data = _validated(ConversationUpdateInput, request.data)
        services.conversation_update(conversation=conversation, actor=request.user, **data)
        return self._render(conversation)

    partial_update = update

    @extend_schema(
        request=AssignInput,
        responses={
            200: ConversationSerializer,
            **error_responses(
                ALWAYS_ERRORS,
                BODY_ERRORS,
                UNSAFE_ERRORS,
                ("blank", "not_a_string", "max_length", "not_found", "participant_is_user"),
            ),
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated, IsSupportStaff])
    def assign(self, request: Request, conversation_id: str) -> Response:
        conversation = selectors.conversation_get(viewer=request.user, conversation_id=conversation_id)
        data = _validated(AssignInput, request.data)
        services.conversation_assign(
            conversation=conversation, actor=request.user, admin_id=data.get("adminId") or request.user.user_id
        )
        return self._render(conversation)

    @extend_schema(
        request=UnassignInput,
        responses={
            200: ConversationSerializer,
            **error_responses(
                ALWAYS_ERRORS, BODY_ERRORS, UNSAFE_ERRORS, ("not_a_string", "max_length", "not_found", "not_assigned")
            ),
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated, IsSupportStaff])
    def unassign(self, request: Request, conversation_id: str) -> Response:
        conversation = selectors.conversation_get(viewer=request.user, conversation_id=conversation_id)
        data = _validated(UnassignInput, request.data)
        assignment.unassign(
            conversation=conversation, actor=request.user, agent_id=data.get("adminId") or request.user.user_id
        )
        return self._render(conversation)

    @extend_schema(
        request=TransferInput,
        responses={
            200: ConversationSerializer,
            **error_responses(
                ALWAYS_ERRORS,
                BODY_ERRORS,
                UNSAFE_ERRORS,
                ("required", "blank", "not_a_string", "max_length", "not_found", "not_staff", "transfer_to_self"),
                ("participant_is_user",),
            ),
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated, IsSupportStaff])
    def transfer(self, request: Request, conversation_id: str) -> Response:
        conversation = selectors.conversation_get(viewer=request.user, conversation_id=conversation_id)
        data = _validated(TransferInput, request.data)
        assignment.transfer(conversation=conversation, actor=request.user, agent_id=data["adminId"])
        return self._render(conversation)

    @extend_schema(
        request=CsatInput,
        responses={
            201: CsatSerializer,
            **error_responses(
                ALWAYS_ERRORS,
                BODY_ERRORS,
                UNSAFE_ERRORS,
                ("required", "invalid", "min_value", "max_value", "not_a_string", "max_length", "not_found"),
                ("csat_donor_only", "conversation_not_closed", "csat_already_submitted"),
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def csat(self, request: Request, conversation_id: str) -> Response:
        """The donor rates the conversation they took part in, once per closing (1 to 5, an optional comment)."""
        from csat.services import csat_json, csat_submit

        conversation = selectors.conversation_get(viewer=request.user, conversation_id=conversation_id)
        data = _validated(CsatInput, request.data)
        rating = csat_submit(
            conversation=conversation, donor=request.user, rating=data["rating"], comment=data["comment"]
        )
        return Response(csat_json(rating), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ReadInput,
        responses={
            200: ReadStateSerializer,
            **error_responses(
                ALWAYS_ERRORS,
                BODY_ERRORS,
                UNSAFE_ERRORS,
                ("blank", "not_a_string", "max_length", "not_found", "message_not_found"),
            ),
        },
    )
    @action(detail=True, methods=["put"])
    def read(self, request: Request, conversation_id: str) -> Response:
        conversation = selectors.conversation_get(viewer=request.user, conversation_id=conversation_id)
        data = _validated(ReadInput, request.data)
        state = services.participant_mark_read(
            conversation=conversation, reader=request.user, message_id=data.get("messageId")
        )
        return Response(ReadStateSerializer(state).data)
