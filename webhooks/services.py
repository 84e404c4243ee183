"""Writes of webhooks: endpoints, and the events recorded with the changes they announce."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.utils import timezone

from audit.models import AuditAction, AuditTarget
from audit.services import audit_record
from chatservice.authentication import Principal
from chatservice.db import atomic
from chatservice.errors import ServiceError
from chatservice.ids import new_id
from jobs.services import jobs_enqueue
from webhooks.models import EventType, WebhookEndpoint
from webhooks.selectors import active_endpoints
from webhooks.ssrf import UnsafeURL, check_url

DELIVER_KIND = "webhook.deliver"


def endpoint_create(
    *,
    url: str,
    events: list[str],
    secret: str | None = None,
    include_notes: bool = False,
    description: str = "",
    actor: Principal | None = None,
) -> WebhookEndpoint:
    """A new endpoint; refused (ServiceError) for an unsafe URL, an unknown event type or a malformed secret.
    Audited as `actor`'s (None: the operator, e.g. `webhook_add`)."""
    unknown = sorted(set(events) - set(EventType.values))
    if not events or unknown:
        raise ServiceError(
            f"Unknown event types: {', '.join(unknown)}." if unknown else "Name at least one event type.",
            code="invalid_event_type",
        )
    if secret is not None and not secret.startswith("whsec_"):
        raise ServiceError("A secret is whsec_ followed by base64.", code="invalid_secret")
    try:
        check_url(url)
    except UnsafeURL as exc:
        raise ServiceError(str(exc), code=UnsafeURL.code) from None
    fields: dict[str, Any] = {"secret": secret} if secret else {}
    with atomic():
        endpoint = WebhookEndpoint.objects.create(
            url=url, events=sorted(set(events)), include_notes=include_notes, description=description, **fields
        )
        endpoint_audit(actor=actor, endpoint=endpoint, action=AuditAction.WEBHOOK_CREATE)
    return endpoint


def endpoint_audit(
    *, actor: Principal | None, endpoint: WebhookEndpoint, action: str, changed: Iterable[str] = ()
) -> None:
    """Record `action` (webhook.create, .update, .delete) on `endpoint` as it stands, in the change's
    transaction; `changed` names the fields an update changed. The secret is never recorded (only that it
    changed), nor the URL's query, which may carry a receiver's token."""
    parts = urlsplit(endpoint.url)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, "…" if parts.query else "", ""))
    details: dict[str, Any] = {
        "url": url,
        "events": sorted(endpoint.events),
        "includeNotes": endpoint.include_notes,
        "active": endpoint.active,
        "description": endpoint.description,
    }
    if changed:
        details["changed"] = sorted(changed)
    audit_record(
        actor=actor, action=action, target_type=AuditTarget.WEBHOOK_ENDPOINT, target_id=endpoint.pk, details=details
    )


def events_record(
    event_type: str, conversation_id: str, *, refs: dict[str, str] | None = None, note: bool = False
) -> None:
    """Record `event_type` about a conversation for every active endpoint that takes it, as delivery jobs
    in the caller's transaction. The body's data is rendered when first delivered (webhooks.delivery)."""
    events_record_many([(event_type, conversation_id, refs or {}, note)])


def events_record_many(events: Iterable[tuple[str, str, dict[str, str], bool]]) -> None:
    """events_record for several (type, conversation id, refs, is a note) at once: one read (cached) and
    one insert. With no endpoint subscribed this costs a cached list lookup."""
    endpoints = active_endpoints()
    if not endpoints:
        return
    now = timezone.now().isoformat()
    jobs: list[tuple[str, dict[str, Any], str]] = []
    for event_type, conversation_id, refs, note in events:
        for endpoint in endpoints:
            if event_type not in endpoint.events or (note and not endpoint.include_notes):
                continue
            payload = {
                "eventId": new_id("evt_"),  # webhook-id: the same on every attempt
                "endpointId": endpoint.pk,
                "type": event_type,
                "timestamp": now,
                "conversationId": conversation_id,
                **refs,
            }
            jobs.append((DELIVER_KIND, payload, f"{endpoint.pk}:{conversation_id}"))
    if jobs:
        jobs_enqueue(jobs)
