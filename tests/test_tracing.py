"""Tracing with an in-memory exporter: REST request spans through the ASGI path, a WebSocket message's
span tree from the sender's frame through storage and a real Redis to the receiving socket, and no
token or message content in any span."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.db import connections
from django.test import AsyncClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chatservice import telemetry
from chatservice.config import TracingConfig
from realtime import tracing
from realtime.consumers import close_db_pool

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_CONTENT = "my card number is 4242 4242 4242 4242"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    # Connections opened before instrumentation are not traced: start from none.
    close_db_pool()
    connections.close_all()
    exporter = InMemorySpanExporter()
    config = TracingConfig(True, "http://collector.invalid/v1/traces", "chat-test")
    telemetry.configure(config, processor=SimpleSpanProcessor(exporter))
    yield exporter
    telemetry.shutdown()
    close_db_pool()
    connections.close_all()


def attribute_text(spans: list[ReadableSpan]) -> str:
    """Everything a span exporter would send, as text to search."""
    return json.dumps(
        [
            {
                "name": span.name,
                "attributes": dict(span.attributes or {}),
                "events": [dict(event.attributes or {}) for event in span.events],
                "resource": dict(span.resource.attributes),
            }
            for span in spans
        ],
        default=str,
    )


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


@pytest.mark.asyncio
async def test_rest_request_is_traced_with_database_spans_and_no_token(exporter, make_token):
    token = make_token("u1", "USER")
    client = AsyncClient()
    response = await client.post(
        f"/api/conversations?token={token}&x=1",
        data={"subject": SECRET_CONTENT},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.content
    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.kind == SpanKind.SERVER)
    assert request.name.startswith("POST ")
    attributes = dict(request.attributes)
    assert attributes["http.route"].startswith("api/conversations")
    assert attributes.get("http.response.status_code", attributes.get("http.status_code")) == 201
    urls = [attributes[name] for name in telemetry.URL_ATTRIBUTES if name in attributes]
    assert any("token=REDACTED" in url for url in urls), urls
    # The inserts of the conversation and its participant, beneath the request.
    statements = [s for s in spans if s.kind == SpanKind.CLIENT and s.context.trace_id == request.context.trace_id]
    assert any("INSERT" in str(s.attributes.get("db.statement", s.name)) for s in statements), [s.name for s in spans]
    text = attribute_text(spans)
    assert token not in text and token.split(".")[2] not in text
    assert SECRET_CONTENT not in text  # no parameters, no bodies


@pytest.mark.asyncio
async def test_probes_are_not_traced(exporter):
    client = AsyncClient()
    await client.get("/health")
    assert [s.name for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER] == []


@pytest.mark.asyncio
async def test_database_calls_outside_any_request_are_dropped(exporter):
    # What the gap sweep and presence refreshes do every few seconds: no trace of their own.
    from asgiref.sync import sync_to_async

    from conversations.models import Conversation

    await sync_to_async(lambda: Conversation.objects.count(), thread_sensitive=False)()
    assert exporter.get_finished_spans() == ()


def test_tracing_off_installs_nothing():
    assert telemetry.configure(TracingConfig(False, "http://unused/v1/traces", "x")) is False
    assert tracing._tracer is None
    assert tracing.frame_started(None) is None
    assert tracing.storing([None]) is tracing.active(None)  # one shared no-op
