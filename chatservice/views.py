"""Service-level endpoints: liveness, health (readiness) and metrics; Django's error handlers and CSRF failure view."""

from __future__ import annotations

import hmac
from pathlib import Path

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from chatservice.errors import json_error, wants_html_errors
from chatservice.health import failing, late, run_checks

# Django's error handlers (chatservice.urls) and CSRF failure view (settings.CSRF_FAILURE_VIEW), with DEBUG
# off: `{"detail", "code"}` JSON like every other API error, Django's own pages in admin and on the donor page.
# Messages of SuspiciousOperation are never echoed: they quote what the client sent (a Host header, say).


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_html_errors(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        # The same answer as the ASGI body limit (chatservice.asgi_middleware), which normally acts first.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return json_error(413, "request_too_large", f"Request body is larger than {limit} bytes.")
    if isinstance(exception, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return json_error(400, "too_many_fields", f"Too many fields in the query string or form (at most {limit}).")
    return json_error(400, "bad_request", "Bad request.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_html_errors(request):
        return defaults.permission_denied(request, exception)
    return json_error(403, "permission_denied", "You do not have permission to perform this action.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if wants_html_errors(request):
        return csrf.csrf_failure(request, reason=reason)
    # Worded as DRF words the same refusal for staff sessions (SessionAuthentication), with the same code.
    return json_error(403, "permission_denied", f"CSRF Failed: {reason}")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_html_errors(request):
        return defaults.page_not_found(request, exception)
    return json_error(404, "not_found", "Not found.")


def server_error(request: HttpRequest) -> HttpResponse:
    if wants_html_errors(request):
        return defaults.server_error(request)
    return json_error(500, "server_error", "Internal server error.")


FAVICON = Path(__file__).resolve().parent / "static" / "favicon.ico"
FAVICON_MAX_AGE_S = 86400  # browsers ask for it on every page of every origin that shows the service


def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which every browser asks for: an icon rather than a 404 in the log each time."""
    response = HttpResponse(FAVICON.read_bytes(), content_type="image/x-icon")
    response["Cache-Control"] = f"public, max-age={FAVICON_MAX_AGE_S}"
    return response


def live(request: HttpRequest) -> JsonResponse:
    """Liveness: this process runs and answers HTTP. It touches no dependency on purpose: restarting
    workers does not cure a database or Redis outage, so the probe that decides restarts must not fail
    with one. /health reports dependencies, for readiness and monitoring."""
    return JsonResponse({"status": "ok"})


async def health(request: HttpRequest) -> JsonResponse:
    """200 when every dependency answers a round trip in time; 503 naming those that do not."""
    results = await run_checks()
    down = failing(results)
    body: dict[str, object] = {"status": "ok" if not down else "error", "checks": results}
    if down:
        body["failing"] = down
    if behind := late(results):
        body["late"] = behind
    return JsonResponse(body, status=503 if down else 200)


def metrics(request: HttpRequest) -> HttpResponse:
    """This worker's metrics in Prometheus' text format (chatservice.metrics).

    Private by default: without METRICS_TOKEN the endpoint does not exist (404, the same answer as any
    unknown path). With it, the request must carry `Authorization: Bearer <METRICS_TOKEN>`: 401 without
    bearer credentials, 403 with other ones. The comparison takes the same time whatever the token sent.
    """
    expected = settings.CHAT["METRICS_TOKEN"]
    if not expected:
        return not_found(request)
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        response = JsonResponse(
            {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        return JsonResponse({"detail": "Invalid metrics token.", "code": "permission_denied"}, status=403)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
