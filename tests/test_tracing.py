"""Tracing with an in-memory exporter: REST request spans through the ASGI path, a WebSocket message's
span tree from the sender's frame through storage and a real Redis to the receiving socket, and no
token or message content in any span."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from websockets.sync.client import connect as ws_connect

from chatservice import telemetry
from chatservice.config import TracingConfig
from conversations import services as conversation_services
from realtime import tracing
from realtime.dbpool import close_db_pool
from tests.helpers import USER
from tests.servers import daphne, migrate, redis_server, server_env
from tests.test_realtime import connect

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_CONTENT = "my card number is 4242 4242 4242 4242"
STORED_CONTENT = "my card number is **** **** **** 4242"  # as stored (messaging.redaction); traced neither


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


async def next_of(socket: Any, frame_type: str) -> dict[str, Any]:
    """The next frame of `frame_type`, past presence frames (whose order across sockets is not fixed)."""
    while True:
        frame = await socket.receive()
        if frame["type"] not in {"user_joined", "user_left"}:
            assert frame["type"] == frame_type, frame
            return frame


@pytest.fixture
def redis_layer(settings) -> Iterator[None]:
    """The production channel layer (Redis pub/sub) on a real redis-server, for Redis spans and a real
    trip through Redis between the two sockets."""
    from channels.layers import channel_layers

    with redis_server() as redis:
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [{"address": redis.url}]},
            }
        }
        channel_layers.backends.clear()
        yield
        channel_layers.backends.clear()


@pytest.mark.asyncio
async def test_a_websocket_message_is_one_trace_from_sender_to_receiver(exporter, redis_layer, make_token):
    conversation = await sync_to_async(conversation_services.conversation_create)(creator=USER, subject="Refund")
    donor_token, agent_token = make_token("u1", "USER"), make_token("agent1", "ADMIN")
    donor, agent = await connect(conversation.pk, donor_token), await connect(conversation.pk, agent_token)
    await donor.send({"type": "message", "content": SECRET_CONTENT, "clientMessageId": "c1"})
    assert (await next_of(donor, "message_sent"))["content"] == STORED_CONTENT
    assert (await next_of(agent, "message_received"))["content"] == STORED_CONTENT
    await agent.send({"type": "read"})
    assert (await next_of(donor, "read_receipt"))["userId"] == "agent1"
    await agent.send({"type": "typing", "isTyping": True})
    assert (await next_of(donor, "typing_start"))["userId"] == "agent1"
    await donor.close()
    await agent.close()

    spans = list(exporter.get_finished_spans())
    connections_ = {s.attributes["enduser.id"]: s for s in spans if s.name == "chat.ws.connection"}
    sender, receiver = connections_["u1"], connections_["agent1"]
    assert sender.kind == SpanKind.SERVER and sender.attributes["url.path"] == f"/ws/conversations/{conversation.pk}"
    assert sender.attributes["chat.ws.close_code"] == 1000

    frame = one(spans, "chat.ws.frame message")
    assert frame.parent.span_id == sender.context.span_id
    store = one(spans, "chat.messages.store")
    assert store.parent.span_id == frame.context.span_id
    inserts = [s for s in children(spans, store) if "INSERT" in str(s.attributes.get("db.statement", ""))]
    assert inserts, [s.name for s in children(spans, store)]

    publish = one([s for s in children(spans, frame)], f"chat.publish conv.{conversation.pk}")
    assert publish.kind == SpanKind.PRODUCER
    # Redis, beneath the fan-out.
    assert [s.name for s in children(spans, publish) if s.kind == SpanKind.CLIENT] == ["PUBLISH"]

    # On both sockets (the sender's drops its own message): the same trace, continued from the
    # publish, each linked to its own connection.
    delivered = [s for s in children(spans, publish) if s.name == "chat.ws.deliver"]
    assert len(delivered) == 2 and all(s.kind == SpanKind.CONSUMER for s in delivered)
    assert all(s.context.trace_id == frame.context.trace_id for s in delivered)
    links = {link.context.span_id for s in delivered for link in s.links}
    assert links == {receiver.context.span_id, sender.context.span_id}

    # A read frame: its database update and its receipt's fan-out beneath it; typing: the fan-out.
    read = one(spans, "chat.ws.frame read")
    assert read.parent.span_id == receiver.context.span_id
    assert any("UPDATE" in str(s.attributes.get("db.statement", "")) for s in children(spans, read))
    assert any(s.name.startswith("chat.publish") for s in children(spans, read))
    typing = one(spans, "chat.ws.frame typing")
    assert [s.name for s in children(spans, typing)] == [f"chat.publish conv.{conversation.pk}"]

    text = attribute_text(spans)
    for secret in (donor_token, agent_token, donor_token.split(".")[2], SECRET_CONTENT, STORED_CONTENT):
        assert secret not in text


class Collector:
    """An OTLP/HTTP trace receiver: records every export request the service posts."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.requests.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def spans(self) -> list[Any]:
        found = []
        for _, body in self.requests:
            request = ExportTraceServiceRequest.FromString(body)
            found += [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
        return found


@pytest.fixture
def collector() -> Iterator[Collector]:
    collector = Collector()
    collector.thread.start()
    yield collector
    collector.server.shutdown()


@pytest.mark.django_db(transaction=False)
def test_a_real_worker_exports_over_otlp_http_and_flushes_on_shutdown(collector, keypair, make_token, tmp_path):
    token = make_token("u1", "USER")
    env = server_env(
        keypair[1].decode(),
        f"sqlite:///{tmp_path / 'chat.sqlite3'}",
        OTEL_TRACES_ENABLED="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,  # the standard's base-URL form: /v1/traces is appended
        OTEL_SERVICE_NAME="chat-e2e",
    )
    migrate(env)
    with daphne(env) as worker:
        created = httpx.post(
            f"{worker.url}/api/conversations?token={token}",
            json={"subject": SECRET_CONTENT},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201
        conversation_id = created.json()["conversationId"]
        with ws_connect(f"ws://127.0.0.1:{worker.port}/ws/conversations/{conversation_id}?token={token}") as socket:
            socket.send(json.dumps({"type": "message", "content": SECRET_CONTENT}))
            assert json.loads(socket.recv(timeout=10))["type"] == "message_sent"
        # The connection's span ends when the worker has handled the close; another process's log is
        # the only sign of that, so it is polled (bounded).
        deadline = time.monotonic() + 10
        while "websocket closed" not in worker.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Leaving the block stops the worker with SIGTERM: what the batch processor still holds is
        # exported on the way out.
    assert collector.requests and {path for path, _ in collector.requests} == {"/v1/traces"}
    names = {span.name for span in collector.spans()}
    assert {"chat.ws.connection", "chat.ws.frame message", "chat.messages.store"} <= names, names
    assert any(name.startswith("POST api/conversations") for name in names), names
    raw = b"".join(body for _, body in collector.requests)
    for secret in (token, token.split(".")[2], SECRET_CONTENT):
        assert secret.encode() not in raw
