"""Service-level endpoints: health."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from chatservice.health import failing, run_checks


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)


async def health(request: HttpRequest) -> JsonResponse:
    """200 when every dependency answers a round trip in time; 503 naming those that do not."""
    results = await run_checks()
    down = failing(results)
    body: dict[str, object] = {"status": "ok" if not down else "error", "checks": results}
    if down:
        body["failing"] = down
    return JsonResponse(body, status=503 if down else 200)
