"""GET /api/me/export (a person's own data) and GET /api/conversations/:id/transcript (staff)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from chatservice.errors import PermissionDenied
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


def _download(chunks: object, *, content_type: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=content_type)
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
        return _download(chunks, content_type="application/json", filename="careforall-chat-export.json")


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
            return _download(chunks, content_type="application/json", filename=f"{conversation.pk}.json")
        chunks = selectors.transcript_text(conversation=conversation, notes=notes)
        return _download(chunks, content_type="text/plain; charset=utf-8", filename=f"{conversation.pk}.txt")
