"""Domain errors raised by services and selectors, and the one JSON shape every API error takes.

Services raise `ServiceError` subclasses and never know about HTTP or WebSocket; each transport maps
them (`exception_handler` here for DRF; the realtime consumer turns the same `code` into an error frame).
Every error body is `{"detail": str, "code": str}`, plus `errors` (per field) for validation errors.
Django's own error paths (handler400/403/404/500, CSRF failures: chatservice.views) answer the same shape,
except on the pages people read in a browser (`wants_html_errors`).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

# The pages people read in a browser, the admin console and the donor page, keep Django's own error pages.
# Everything else answers for programs (the API, /live, /health, /metrics, unknown paths): JSON errors.
HTML_ERROR_PATH_PREFIXES = ("/admin/", "/chat/", "/notifications/")


class ServiceError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"
    default_detail = "Invalid request."

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        self.detail = detail or self.default_detail
        if code:
            self.code = code
        super().__init__(self.detail)


class NotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    default_detail = "Not found."


class PermissionDenied(ServiceError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"
    default_detail = "You do not have permission to perform this action."


class Conflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"
    default_detail = "The request conflicts with the current state."


class ConversationClosed(Conflict):
    code = "conversation_closed"
    default_detail = "The conversation is not active; messages can no longer be sent."


def first_error(detail: Any, path: str = "") -> tuple[str, str]:
    """Return (message, code) of the first leaf in a DRF error structure, prefixed by its field path."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            return first_error(value, f"{path}.{name}" if path and name else (name or path))
    if isinstance(detail, list) and detail:
        return first_error(detail[0], path)
    message = str(detail)
    code = getattr(detail, "code", None) or "invalid"
    return (f"{path}: {message}" if path else message), code


def _codes(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _codes(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_codes(item) for item in detail]
    return {"message": str(detail), "code": getattr(detail, "code", None) or "invalid"}


def error_body(detail: str, code: str, errors: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if errors is not None:
        body["errors"] = errors
    return body


def wants_html_errors(request: HttpRequest) -> bool:
    return request.path_info.startswith(HTML_ERROR_PATH_PREFIXES)


def json_error(status_code: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse(error_body(detail, code), status=status_code)


def _render_as_json(context: dict[str, Any]) -> None:
    """Errors of views whose renderers are not JSON (the OpenAPI schema's YAML, the Swagger page's HTML) are
    rendered as JSON: DRF would otherwise render a 405 in the view's own format. The browsable API keeps its
    HTML, which a browser asked for (Accept: text/html) and which shows staff the error in context."""
    request = context.get("request")
    if request is None or isinstance(getattr(request, "accepted_renderer", None), JSONRenderer | BrowsableAPIRenderer):
        return
    request.accepted_renderer = JSONRenderer()
    request.accepted_media_type = JSONRenderer.media_type


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ServiceError):
        _render_as_json(context)
        return Response(error_body(exc.detail, exc.code), status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    _render_as_json(context)
    if isinstance(exc, drf_exceptions.ValidationError):
        message, code = first_error(exc.detail)
        response.data = error_body(message, code, _codes(exc.detail))
    elif isinstance(exc, drf_exceptions.APIException):
        message, code = first_error(exc.detail)
        response.data = error_body(message, code)
    return response
