"""Reads of webhook endpoints. The send path asks on every batch, so active endpoints are kept per process
for ENDPOINT_CACHE_S; a change made in this process clears it at once, other processes see it within that."""

from __future__ import annotations

import threading
import time

from django.db.models.signals import post_delete, post_save

from webhooks.models import WebhookEndpoint

ENDPOINT_CACHE_S = 5.0

_cache: tuple[float, list[WebhookEndpoint]] | None = None
_lock = threading.Lock()


def active_endpoints() -> list[WebhookEndpoint]:
    global _cache
    now = time.monotonic()
    with _lock:
        if _cache is not None and now - _cache[0] < ENDPOINT_CACHE_S:
            return _cache[1]
    endpoints = list(WebhookEndpoint.objects.filter(active=True))
    with _lock:
        _cache = (now, endpoints)
    return endpoints


def subscribed(event_type: str) -> bool:
    """Whether any active endpoint takes `event_type` (from the kept list)."""
    return any(event_type in endpoint.events for endpoint in active_endpoints())


def forget_endpoints(**kwargs: object) -> None:
    global _cache
    with _lock:
        _cache = None


post_save.connect(forget_endpoints, sender=WebhookEndpoint, dispatch_uid="webhooks.forget_endpoints.save")
post_delete.connect(forget_endpoints, sender=WebhookEndpoint, dispatch_uid="webhooks.forget_endpoints.delete")
