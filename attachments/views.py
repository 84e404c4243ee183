"""REST transport of attachments: upload (multipart), download (bearer token, staff session or a signed
link), and signed links for pages that cannot send a header (<img src>, <a href>)."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from attachments import links, selectors, services
from attachments.models import Attachment
from attachments.references import describe
from attachments.serializers import AttachmentLinkSerializer, AttachmentSerializer, DownloadQuery, UploadInput
from chatservice import metrics
from chatservice.errors import PermissionDenied, ServiceError
from chatservice.schema import ALWAYS_ERRORS, UNSAFE_ERRORS, error_responses
from conversations.selectors import conversation_get
from conversations.views import query_of

# Downloads are never run as a page: a PDF or text that carries a script has no origin to run it in.
DOWNLOAD_CSP = "default-src 'none'; sandbox"


class AnyAccept(BaseContentNegotiation):
    """A download answers the file whatever the Accept header says (browsers send image/* for <img>);
    errors are JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _refused(exc: ServiceError) -> ServiceError:
    metrics.attachment_refused(exc.code)
    return exc


class AttachmentUploadView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="conversations_attachments_create",
        request={"multipart/form-data": UploadInput},
        responses={
            201: AttachmentSerializer,
            **error_responses(
                ALWAYS_ERRORS,
                UNSAFE_ERRORS,
                ("parse_error", "unsupported_media_type", "file_required", "attachment_empty", "not_found"),
                ("conversation_closed", "attachment_too_large", "attachment_type_unsupported"),
                ("attachment_infected", "attachment_image_too_large", "attachment_unreadable"),
                ("attachment_drafts_limit", "attachment_scanner_unavailable", "attachment_busy"),
            ),
        },
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        conversation = conversation_get(viewer=request.user, conversation_id=conversation_id)
        upload = request.FILES.get("file")
        if upload is None:
            raise _refused(ServiceError("Send the file as the multipart field `file`.", code="file_required"))
        if upload.size is not None and upload.size > services.max_bytes():
            raise _refused(services.too_large(upload.size))
        try:
            attachment = services.attachment_upload(
                conversation=conversation,
                uploader=request.user,
                upload=services.Upload(name=upload.name or "", data=upload.read(services.max_bytes() + 1)),
            )
        except ServiceError as exc:
            raise _refused(exc) from None
        return Response(describe(attachment, base_url=request.build_absolute_uri("/")), status=status.HTTP_201_CREATED)


class AttachmentDownloadView(APIView):
    content_negotiation_class = AnyAccept
    permission_classes: list = []  # a signed link needs no credentials; without one, get() requires them

    @extend_schema(
        operation_id="attachments_retrieve",
        parameters=[DownloadQuery],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The file, with its type; `Content-Disposition: attachment` unless it is an image.",
            ),
            **error_responses(ALWAYS_ERRORS, ("invalid_choice", "attachment_link_expired", "attachment_not_found")),
        },
    )
    def get(self, request: Request, attachment_id: str) -> FileResponse:
        query = DownloadQuery(data=query_of(request))
        query.is_valid(raise_exception=True)
        variant, sig = query.validated_data["variant"], query.validated_data.get("sig")
        if sig is not None:
            try:
                links.check(attachment_id, variant, sig)
            except links.LinkInvalid:
                raise selectors.AttachmentNotFound() from None
            except links.LinkExpired:
                raise PermissionDenied(
                    "This link has expired; ask for a new one.", code="attachment_link_expired"
                ) from None
            attachment = selectors.attachment_by_id(attachment_id)
        else:
            if request.user is None:
                raise NotAuthenticated()
            attachment = selectors.attachment_get(viewer=request.user, attachment_id=attachment_id)
        return _file_response(attachment, variant, signed=sig is not None)


def _file_response(attachment: Attachment, variant: str, *, signed: bool) -> FileResponse:
    key = attachment.storage_key if variant == "original" else attachment.thumbnail_key
    if not key:
        raise selectors.AttachmentNotFound("This attachment has no thumbnail.")
    if variant == "thumbnail":
        content_type, name, inline = "image/webp", f"{attachment.name}.webp", True
    else:
        content_type, name, inline = attachment.content_type, attachment.name, attachment.is_image
    if content_type == "text/plain":
        content_type = "text/plain; charset=utf-8"
    response = FileResponse(
        services.attachment_storage().open(key, "rb"),
        content_type=content_type,
        as_attachment=not inline,
        filename=name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = DOWNLOAD_CSP
    # A signed link is the same bytes until it expires; a credentialed download is checked every time.
    response["Cache-Control"] = "private, max-age=300" if signed else "private, no-cache"
    return response


class AttachmentLinkView(APIView):
    @extend_schema(
        operation_id="attachments_link_retrieve",
        responses={200: AttachmentLinkSerializer, **error_responses(ALWAYS_ERRORS, ("attachment_not_found",))},
    )
    def get(self, request: Request, attachment_id: str) -> Response:
        attachment = selectors.attachment_get(viewer=request.user, attachment_id=attachment_id)
        path, expires = links.signed_path(attachment.id, "original")
        body = {"url": request.build_absolute_uri(path), "thumbnailUrl": None, "expiresAt": expires}
        if attachment.thumbnail_key:
            body["thumbnailUrl"] = request.build_absolute_uri(links.signed_path(attachment.id, "thumbnail")[0])
        return Response(AttachmentLinkSerializer(body).data)
