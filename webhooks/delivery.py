"""Delivering one webhook event to one endpoint (the job kind webhook.deliver).

Standard Webhooks: the body is {type, timestamp, data}; headers webhook-id (the event's id, the same on
every retry, so receivers deduplicate), webhook-timestamp and webhook-signature, signed with the maintained
`standardwebhooks` package. `data` is exactly the REST representation, rendered at the first attempt and
kept, so every retry sends the same bytes. Events of one conversation reach an endpoint in order (the
job's ordering key): a later one waits while an earlier one is being retried.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

import httpx
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from jobs.models import Job
from jobs.registry import job_kind
from webhooks.models import EventType, WebhookEndpoint
from webhooks.services import DELIVER_KIND
from webhooks.ssrf import check_url

TIMEOUT_S = 10.0  # per attempt, connect to last byte
RESPONSE_MAX_BYTES = 64 * 1024  # of a receiver's answer we read (for the error shown in admin)
# With CHAT_JOB_RETRY_BASE_S=30 doubling up to 6 h: the last of 18 attempts comes 1.5 to 3 days after the
# first, so a receiver down for a day still gets the event.
DELIVER_ATTEMPTS = 18
USER_AGENT = "CareForAll-Chat-Webhooks/1"


class DeliveryFailed(Exception):
    pass


def _data(payload: dict[str, Any]) -> Any:
    from conversations import selectors as conversation_selectors
    from conversations.models import Conversation, Participant
    from conversations.rendering import render_conversations
    from messaging.models import Message
    from messaging.serializers import MessageSerializer, message_context

    event_type, conversation_id = payload["type"], payload["conversationId"]
    if event_type in (EventType.MESSAGE_CREATED, EventType.MESSAGE_UPDATED, EventType.MESSAGE_DELETED):
        # As it is at the first attempt: an edit made meanwhile shows in both events (each says what happened).
        message = Message.objects.get(pk=payload["messageId"])
        participants = list(Participant.objects.filter(conversation_id=conversation_id))
        return MessageSerializer(message, context=message_context([message], participants)).data
    if event_type == EventType.CSAT_SUBMITTED:
        from csat.models import CsatResponse
        from csat.services import csat_json

        return csat_json(CsatResponse.objects.get(pk=payload["csatId"]))
    if event_type == EventType.NOTIFICATION_PENDING:
        from notifications.models import Notification
        from notifications.selectors import notification_json

        return notification_json(Notification.objects.get(pk=payload["notificationId"]))
    if event_type == EventType.CONVERSATION_READ:
        return {key: payload.get(key) for key in ("conversationId", "userId", "role", "lastReadAt")}
    conversation = conversation_selectors.conversations_for_inbox([conversation_id])
    if not conversation:
        raise Conversation.DoesNotExist(conversation_id)
    return render_conversations(conversation, viewer=None, role="ADMIN")[0]


def _body(job: Job) -> str:
    """The event's body, rendered once and kept on the job."""
    payload = job.payload
    if "body" not in payload:
        body = {"type": payload["type"], "timestamp": payload["timestamp"], "data": _data(payload)}
        payload = {**payload, "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False)}
        Job.objects.filter(pk=job.pk).update(payload=payload)
        job.payload = payload
    return payload["body"]


def signed_headers(endpoint: WebhookEndpoint, event_id: str, body: str, at: datetime) -> dict[str, str]:
    signature = Webhook(endpoint.secret).sign(event_id, at, body)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _http() -> httpx.Client:
    """One client per process, shared by the runner's threads: a new one per delivery loaded the CA
    bundle each time (30 ms of CPU per delivery, bench/webhook_bench.py) and kept no connection."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False)
        return _client


@job_kind(DELIVER_KIND, max_attempts=DELIVER_ATTEMPTS)
def deliver(job: Job) -> None:
    endpoint = WebhookEndpoint.objects.filter(pk=job.payload["endpointId"]).first()
    if endpoint is None or not endpoint.active:
        return  # removed or switched off since: nothing to deliver to
    body = _body(job)
    target = check_url(endpoint.url)  # again: the name may resolve elsewhere now
    headers = {**signed_headers(endpoint, job.payload["eventId"], body, timezone.now()), "Host": target.host}
    unreachable: httpx.ConnectError | None = None
    # Each checked address in turn, as a connection to the name would (an IPv6 address first, then IPv4).
    for url in target.urls:
        try:
            status, answer = _post(url, body, headers, target.sni_hostname)
            break
        except httpx.ConnectError as exc:
            unreachable = exc
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    else:
        raise DeliveryFailed(f"ConnectError: {unreachable}")
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status}: {answer[:500].decode(errors='replace')}")


def _post(url: str, body: str, headers: dict[str, str], sni_hostname: str) -> tuple[int, bytes]:
    """POST to one address; the status and at most RESPONSE_MAX_BYTES of the answer."""
    extensions = {"sni_hostname": sni_hostname}
    with _http().stream("POST", url, content=body.encode(), headers=headers, extensions=extensions) as response:
        answer = b""
        for chunk in response.iter_bytes():
            answer += chunk[: RESPONSE_MAX_BYTES - len(answer)]
            if len(answer) >= RESPONSE_MAX_BYTES:
                break
    return response.status_code, answer
