"""Middleware of the service itself."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class SyncMiddlewareChain:
    """Keeps Django's middleware chain synchronous under ASGI; must be the last entry of MIDDLEWARE.

    Django builds the chain from the innermost entry outwards and gives each async-capable middleware the
    mode of the one inside it. Left to itself, every MiddlewareMixin in an ASGI chain runs async and hops
    to the sync thread twice per request (process_request and process_response): about fifteen thread
    switches per REST request. A sync-only innermost entry turns the whole chain sync: one switch in,
    one out, one for the (sync) DRF view. Measured in bench/: see README.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)
