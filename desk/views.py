"""REST transport of the desk: agents' availability and canned responses. Staff only."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from chatservice.schema import ALWAYS_ERRORS, BODY_ERRORS, UNSAFE_ERRORS, error_responses
from conversations.views import IsSupportStaff
from desk import assignment, selectors, services
from desk.serializers import AgentSerializer, AgentUpdateInput, CannedResponseSerializer

STAFF = [permissions.IsAuthenticated, IsSupportStaff]


class AgentViewSet(viewsets.ViewSet):
    permission_classes = STAFF

    @extend_schema(responses={200: AgentSerializer(many=True), **error_responses(ALWAYS_ERRORS, "permission_denied")})
    def list(self, request: Request) -> Response:
        assignment.mark_away()  # availability as of now, not as of the last assignment attempt
        return Response(AgentSerializer(selectors.agent_list(), many=True).data)

    @extend_schema(
        methods=["GET"], responses={200: AgentSerializer, **error_responses(ALWAYS_ERRORS, "permission_denied")}
    )
    @extend_schema(
        methods=["PUT"],
        request=AgentUpdateInput,
        responses={
            200: AgentSerializer,
            **error_responses(
                ALWAYS_ERRORS,
                BODY_ERRORS,
                UNSAFE_ERRORS,
                ("permission_denied", "invalid_choice", "min_value", "max_value", "empty_update"),
                ("not_a_string", "max_length"),
            ),
        },
    )
    @action(detail=False, methods=["get", "put"], url_path="me")
    def me(self, request: Request) -> Response:
        if request.method == "PUT":
            data = AgentUpdateInput(data=request.data)
            data.is_valid(raise_exception=True)
            services.agent_update(actor=request.user, **data.validated_data)
        else:
            services.agent_ensure(request.user.user_id)
        return Response(AgentSerializer(selectors.agent_get(request.user.user_id)).data)


class CannedResponseViewSet(viewsets.ViewSet):
    permission_classes = STAFF
    lookup_value_regex = r"[A-Za-z0-9_\-]{1,64}"
    lookup_url_kwarg = "canned_response_id"  # one parameter name per resource in the OpenAPI paths

    @extend_schema(
        responses={200: CannedResponseSerializer(many=True), **error_responses(ALWAYS_ERRORS, "permission_denied")}
    )
    def list(self, request: Request) -> Response:
        return Response(CannedResponseSerializer(selectors.canned_for(request.user), many=True).data)

    @extend_schema(
        request=CannedResponseSerializer,
        responses={
            201: CannedResponseSerializer,
            **error_responses(
                ALWAYS_ERRORS,
                BODY_ERRORS,
                UNSAFE_ERRORS,
                ("permission_denied", "required", "blank", "not_a_string", "max_length", "short_code_taken"),
            ),
        },
    )
    def create(self, request: Request) -> Response:
        data = CannedResponseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        canned = services.canned_create(actor=request.user, **data.validated_data)
        return Response(CannedResponseSerializer(canned).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=CannedResponseSerializer,
        responses={
            200: CannedResponseSerializer,
            **error_responses(
                ALWAYS_ERRORS,
                BODY_ERRORS,
                UNSAFE_ERRORS,
                ("permission_denied", "blank", "not_a_string", "max_length", "short_code_taken", "not_found"),
            ),
        },
    )
    def update(self, request: Request, canned_response_id: str) -> Response:
        data = CannedResponseSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        canned = services.canned_update(actor=request.user, canned_id=canned_response_id, **data.validated_data)
        return Response(CannedResponseSerializer(canned).data)

    @extend_schema(
        responses={204: None, **error_responses(ALWAYS_ERRORS, UNSAFE_ERRORS, "permission_denied", "not_found")}
    )
    def destroy(self, request: Request, canned_response_id: str) -> Response:
        services.canned_delete(actor=request.user, canned_id=canned_response_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
