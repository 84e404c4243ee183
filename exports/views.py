"""GET /api/me/export (a person's own data) and GET /api/conversations/:id/transcript (staff)."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from chatservice.asgi_handler import streamed
from chatservice.errors import PermissionDenied
from chatservice.flow_control import flow_of
from chatservice.schema import ALWAYS_ERRORS, error_responses
from conversations.selectors import conversation_get
from conversations.views import query_of
from exports import selectors, services


class TranscriptQuery(serializers.Serializer):
    # Not `format`: DRF reads that one itself (URL_FORMAT_OVERRIDE) to pick a renderer.
    type = serializers.ChoiceField(choices=["text", "json"], required=False, default="text")
    notes = serializers.BooleanField(
        required=False, default=False, help_text="Include internal notes (marked as such). Default: without."
    )


def _download(request: Request, chunks: Iterator[str], *, content_type: str, filename: str) -> StreamingHttpResponse:
    """A download that streams: under ASGI (a request with a scope) pulled a batch at a time on the HTTP
    threads, so memory stays at a batch however long the export; under WSGI (tests) as it is."""
    scope = getattr(request._request, "scope", None)
    body = streamed(chunks, flow_of(scope)) if scope is not None else chunks
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


class MyExportView(APIView):
    @extend_schema(
        operation_id="me_export",
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description=(
                    "`{format, exportedAt, user, conversations: [conversation + readState, ratings, attachments "
                    "(signed links), messages]}`. Never internal notes."
                ),
            ),
            **error_responses(ALWAYS_ERRORS),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        """Everything the caller may see of their own conversations, as one JSON download."""
        services.user_export_recorded(person=request.user, actor=request.user)
        chunks = selectors.user_export(person=request.user, base_url=request.build_absolute_uri("/"))
        return _download(request, chunks, content_type="application/json", filename="careforall-chat-export.json")


class TranscriptView(APIView):
    @extend_schema(
        operation_id="conversations_transcript",
        parameters=[TranscriptQuery],
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="One line per message."),
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT, description="`{format, exportedAt, includesNotes, conversation, messages}`."
            ),
            **error_responses(ALWAYS_ERRORS, ("invalid_choice", "invalid", "admin_only", "not_found")),
        },
    )
    def get(self, request: Request, conversation_id: str) -> StreamingHttpResponse:
        """Staff: the conversation's transcript as a download (recorded in the audit log)."""
        if not request.user.is_admin:
            raise PermissionDenied("Only support staff may download transcripts.", code="admin_only")
        conversation = conversation_get(viewer=request.user, conversation_id=conversation_id)
        query = TranscriptQuery(data=query_of(request))
        query.is_valid(raise_exception=True)
        fmt, notes = query.validated_data["type"], query.validated_data["notes"]
        services.transcript_recorded(conversation=conversation, actor=request.user, format=fmt, notes=notes)
        if fmt == "json":
            chunks = selectors.transcript_json(conversation=conversation, viewer=request.user, notes=notes)
            return _download(request, chunks, content_type="application/json", filename=f"{conversation.pk}.json")
        chunks = selectors.transcript_text(conversation=conversation, notes=notes)
        return _download(request, chunks, content_type="text/plain; charset=utf-8", filename=f"{conversation.pk}.txt")
