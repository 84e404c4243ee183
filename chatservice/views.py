"""Service-level endpoints: liveness, health (readiness) and metrics."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from chatservice.health import failing, run_checks


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)


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
