"""Operating the service: liveness (/live) against readiness (/health) with real dependencies going
away, Prometheus metrics at /metrics (protection and the values real traffic produces) and structured
JSON logs (their fields, trace ids, and what they must never contain).

Real Daphne processes and a real redis-server (tests.servers) where a dependency has to fail for real;
the full ASGI application through Channels' WebsocketCommunicator where exact metric values are asserted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.test import AsyncClient, Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect as ws_connect

from chatservice import logs, metrics
from chatservice.config import BASE_DIR
from conversations import services as conversation_services
from conversations.models import Conversation
from realtime import broadcast
from tests.helpers import USER
from tests.servers import DAPHNE, STARTUP_TIMEOUT_S, daphne, free_port, migrate, redis_server, server_env
from tests.test_realtime import _store_without_event, close_code, connect

METRICS_TOKEN = "metrics-token-for-the-tests-0123456789"
# Long enough for a loaded 2-core machine; a passing test never waits this long.
FRAME_TIMEOUT_S = 15
# How long Redis may take to be usable again after a restart, as /health sees it.
RECOVERY_TIMEOUT_S = 30


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign(keypair: tuple[bytes, bytes], sub: str, role: str = "USER") -> str:
    return jwt.encode({"sub": sub, "role": role, "exp": int(time.time()) + 900}, keypair[0], algorithm="RS256")


# ==== liveness and readiness, with real servers =====================================================


def test_live_answers_while_the_database_and_redis_are_down(keypair):
    """/live needs nothing but the process: it is 200 while /health names both dependencies as down."""
    with redis_server() as redis:
        # Nothing listens on a port that was just free: the database is down too.
        env = server_env(keypair[1].decode(), f"postgres://chat:pw@127.0.0.1:{free_port()}/chat", REDIS_URL=redis.url)
        redis.stop()
        with daphne(env, expect_healthy=False) as worker:
            live = httpx.get(f"{worker.url}/live", timeout=10)
            health = httpx.get(f"{worker.url}/health", timeout=10)
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert health.status_code == 503
    assert health.json()["failing"] == ["database", "channelLayer", "jobs"]  # the queue is read from the database


def test_health_names_the_channel_layer_while_redis_is_stopped_and_recovers(keypair, tmp_path):
    with redis_server() as redis:
        env = server_env(keypair[1].decode(), f"sqlite:///{tmp_path / 'chat.sqlite3'}", REDIS_URL=redis.url)
        migrate(env)
        with daphne(env) as worker:
            assert httpx.get(f"{worker.url}/health", timeout=10).status_code == 200
            redis.stop()
            down = httpx.get(f"{worker.url}/health", timeout=10)
            assert down.status_code == 503
            assert down.json()["failing"] == ["channelLayer"]
            assert down.json()["checks"]["database"] == "ok"
            assert httpx.get(f"{worker.url}/live", timeout=10).status_code == 200

            redis.start()
            deadline = time.monotonic() + RECOVERY_TIMEOUT_S
            while (up := httpx.get(f"{worker.url}/health", timeout=10)).status_code != 200:
                assert time.monotonic() < deadline, up.json()
                time.sleep(0.2)  # bounded poll: the worker's reconnection is not an event we can await
            assert up.json() == {"status": "ok", "checks": {"database": "ok", "channelLayer": "ok", "jobs": "ok"}}


# ==== /metrics protection ===========================================================================


@pytest.fixture
def metrics_on(settings) -> str:
    settings.CHAT = {**settings.CHAT, "METRICS_TOKEN": METRICS_TOKEN}
    return METRICS_TOKEN


def test_metrics_are_404_when_no_token_is_configured(settings):
    settings.CHAT = {**settings.CHAT, "METRICS_TOKEN": None}
    for headers in ({}, bearer(METRICS_TOKEN), bearer("")):
        response = Client().get("/metrics", headers=headers)
        assert (response.status_code, response.json()) == (404, {"detail": "Not found.", "code": "not_found"})


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 401, "not_authenticated"),
        ("", 401, "not_authenticated"),
        ("Bearer", 401, "not_authenticated"),
        ("Bearer   ", 401, "not_authenticated"),
        (f"Basic {METRICS_TOKEN}", 401, "not_authenticated"),
        (METRICS_TOKEN, 401, "not_authenticated"),
        ("Bearer wrong-token-of-some-length", 403, "permission_denied"),
        (f"Bearer {METRICS_TOKEN}x", 403, "permission_denied"),
        (f"Bearer {METRICS_TOKEN[:-1]}", 403, "permission_denied"),
        ("Bearer tökén", 403, "permission_denied"),
    ],
)
def test_metrics_refuse_missing_or_wrong_credentials(metrics_on, caplog, authorization, status, code):
    headers = {} if authorization is None else {"Authorization": authorization}
    with caplog.at_level(logging.DEBUG):
        response = Client().get("/metrics", headers=headers)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert "# HELP" not in response.content.decode()
    if status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    logged = caplog.text + "".join(logs.JsonFormatter().format(r) for r in caplog.records)
    assert METRICS_TOKEN not in logged
    if authorization:
        assert authorization.split()[-1] not in logged


def test_metrics_with_the_token_are_prometheus_text(metrics_on, caplog):
    with caplog.at_level(logging.DEBUG):
        for authorization in (f"Bearer {METRICS_TOKEN}", f"bearer  {METRICS_TOKEN} "):
            response = Client().get("/metrics", headers={"Authorization": authorization})
            assert response.status_code == 200
            assert response["Content-Type"].startswith("text/plain")
            names = {family.name for family in text_string_to_metric_families(response.content.decode())}
            assert {
                "chat_ws_connections",
                "chat_messages_persisted",
                "chat_fanout_latency_seconds",
                "chat_ws_error_frames",
                "chat_ws_rate_limited_frames",
                "chat_channel_layer_drops",
            } <= names
    assert METRICS_TOKEN not in caplog.text


# ==== metric values from real traffic ===============================================================

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape() -> Samples:
    response = await AsyncClient().get("/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def conversation(transactional_db) -> Conversation:
    return conversation_services.conversation_create(creator=USER, subject="Metrics")


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_sockets_messages_and_fanout_latency_are_counted(conversation, make_token, metrics_on):
    start = await scrape()
    donor = await connect(conversation.pk, make_token("u1"))
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    opened = await scrape()
    assert delta(start, opened, "chat_ws_connections") == 2
    # A refused socket is never counted as open.
    assert await close_code(conversation.pk, make_token("u2")) == 4403
    assert delta(start, await scrape(), "chat_ws_connections") == 2

    for n in range(3):
        await donor.send({"type": "message", "content": f"counted {n}"})
    for n in range(3):
        assert (await donor.expect("message_sent"))["content"] == f"counted {n}"
        assert (await agent.expect("message_received"))["content"] == f"counted {n}"
    await agent.assert_alive_and_quiet()  # the agent's socket has finished handling the events
    sent = await scrape()
    assert delta(opened, sent, "chat_messages_persisted_total") == 3
    # One observation per live delivery to another socket (the agent's); the sender's own
    # acknowledgements are not fan-out.
    assert delta(opened, sent, "chat_fanout_latency_seconds_count") == 3
    assert delta(opened, sent, "chat_fanout_latency_seconds_bucket", le="+Inf") == 3
    assert 0 < delta(opened, sent, "chat_fanout_latency_seconds_sum") < 3 * FRAME_TIMEOUT_S

    # A REST write counts the same way, and reaches both sockets.
    posted = await sync_to_async(Client().post)(
        f"/api/conversations/{conversation.pk}/messages",
        {"content": "via REST"},
        content_type="application/json",
        headers=bearer(make_token("u1")),
    )
    assert posted.status_code == 201
    await donor.expect("message_received")
    await agent.expect("message_received")
    await donor.assert_alive_and_quiet()
    await agent.assert_alive_and_quiet()
    rest = await scrape()
    assert delta(sent, rest, "chat_messages_persisted_total") == 1
    assert delta(sent, rest, "chat_fanout_latency_seconds_count") == 2

    await donor.close()
    await agent.close()
    assert delta(start, await scrape(), "chat_ws_connections") == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_message_filled_from_the_database_is_not_a_fanout_sample(conversation, make_token, metrics_on):
    donor = await connect(conversation.pk, make_token("u1"))
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    before = await scrape()
    await sync_to_async(_store_without_event)(conversation, "lost in transit")
    await agent.send({"type": "message", "content": "next"})
    assert (await donor.expect("message_received"))["content"] == "lost in transit"
    assert (await donor.expect("message_received"))["content"] == "next"
    await donor.assert_alive_and_quiet()
    after = await scrape()
    assert delta(before, after, "chat_messages_persisted_total") == 2
    assert delta(before, after, "chat_fanout_latency_seconds_count") == 1  # "next" only
    await donor.close()
    await agent.close()


# Buckets that never refill during a test: every refusal below is deterministic.
NO_REFILL = 0.001


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_error_and_rate_limited_frames_are_counted_by_code_and_kind(
    conversation, make_token, metrics_on, settings
):
    settings.CHAT = {
        **settings.CHAT,
        **{"WS_MESSAGE_RATE": NO_REFILL, "WS_MESSAGE_BURST": 2, "WS_USER_RATE": NO_REFILL, "WS_USER_BURST": 10},
        **{"WS_TYPING_RATE": NO_REFILL, "WS_TYPING_BURST": 1},
    }
    before = await scrape()
    donor = await connect(conversation.pk, make_token("u1"))
    await donor.send("{not json")
    assert (await donor.expect("error"))["code"] == "invalid_json"
    await donor.send({"type": "shout"})
    assert (await donor.expect("error"))["code"] == "unknown_type"
    for _ in range(2):  # spends the socket's two message tokens
        await donor.send({"type": "message", "content": "   "})
        assert (await donor.expect("error"))["code"] == "blank"
    await donor.send({"type": "message", "content": "one too many"})
    assert (await donor.expect("error"))["code"] == "rate_limited"
    await donor.send({"type": "read"})  # read frames share the socket's message bucket
    assert (await donor.expect("error"))["code"] == "rate_limited"
    await donor.send({"type": "typing", "isTyping": True})
    await donor.send({"type": "typing", "isTyping": True})
    assert (await donor.expect("error"))["code"] == "rate_limited"
    await donor.assert_alive_and_quiet()
    await donor.close()

    # The per-user bucket, shared by a user's sockets, refuses before the socket's own does.
    settings.CHAT = {**settings.CHAT, "WS_MESSAGE_BURST": 10, "WS_USER_BURST": 1}
    first = await connect(conversation.pk, make_token("u1"))
    second = await connect(conversation.pk, make_token("u1"))
    await first.send({"type": "message", "content": "spends the user's token"})
    await first.expect("message_sent")
    await second.send({"type": "message", "content": "refused"})
    assert (await second.expect("error"))["code"] == "rate_limited"
    await first.close()
    await second.close()

    after = await scrape()
    errors = {
        code: delta(before, after, "chat_ws_error_frames_total", code=code)
        for code in ("invalid_json", "unknown_type", "blank", "rate_limited")
    }
    assert errors == {"invalid_json": 1, "unknown_type": 1, "blank": 2, "rate_limited": 4}
    limited = {
        kind: delta(before, after, "chat_ws_rate_limited_frames_total", kind=kind) for kind in metrics.RATE_LIMIT_KINDS
    }
    assert limited == {"message": 1, "read": 1, "typing": 1, "user": 1}


def redis_layer(url: str, **config: Any) -> dict[str, Any]:
    return {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url], **config}}}


@pytest.mark.asyncio
async def test_a_publish_that_fails_after_its_retry_is_a_layer_drop(settings, metrics_on, caplog):
    with redis_server() as redis:
        settings.CHANNEL_LAYERS = redis_layer(redis.url)
        before = await scrape()
        await broadcast.publish_now("conv.conv_x", {"type": "chat.frame", "frame": {}, "skipUserId": None})
        assert delta(before, await scrape(), "chat_channel_layer_drops_total", reason="publish_failed") == 0
        redis.stop()
        await broadcast.publish_now("conv.conv_x", {"type": "chat.frame", "frame": {}, "skipUserId": None})
        after = await scrape()
    assert delta(before, after, "chat_channel_layer_drops_total", reason="publish_failed") == 1
    assert "publish to group conv.conv_x failed" in caplog.text


@pytest.mark.asyncio
async def test_deliveries_redis_refuses_at_capacity_are_layer_drops(settings, metrics_on, caplog):
    """RedisChannelLayer reports a full channel only in its log; the handler in settings.LOGGING counts it,
    once per refused delivery as the layer counts them (its channels of one process share a Redis list)."""
    with redis_server() as redis:
        settings.CHANNEL_LAYERS = redis_layer(redis.url, capacity=1)
        layer = get_channel_layer()
        channels = [await layer.new_channel("drop-test.") for _ in range(3)]
        for channel in channels:
            await layer.group_add("conv.drop-test", channel)
        before = await scrape()
        await broadcast.publish_now("conv.drop-test", {"type": "chat.frame", "frame": {}, "skipUserId": None})
        assert delta(before, await scrape(), "chat_channel_layer_drops_total", reason="over_capacity") == 0
        with caplog.at_level(logging.INFO, logger="channels_redis.core"):
            await broadcast.publish_now("conv.drop-test", {"type": "chat.frame", "frame": {}, "skipUserId": None})
        after = await scrape()
        for channel in channels:  # the first event reached every channel, with its publication time
            received = await asyncio.wait_for(layer.receive(channel), FRAME_TIMEOUT_S)
            assert abs(received[broadcast.PUBLISHED_AT] - time.time()) < FRAME_TIMEOUT_S
        await layer.flush()
    (report,) = [r for r in caplog.records if r.msg == metrics.CHANNELS_REDIS_OVER_CAPACITY]
    refused = report.args[0]
    assert refused >= 1
    assert delta(before, after, "chat_channel_layer_drops_total", reason="over_capacity") == refused


def over_capacity_drops() -> float:
    return REGISTRY.get_sample_value("chat_channel_layer_drops_total", {"reason": "over_capacity"})


def test_the_drop_counter_reads_only_the_over_capacity_report():
    counter = metrics.ChannelLayerDropCounter()
    before = over_capacity_drops()
    counter.handle(logging.makeLogRecord({"msg": metrics.CHANNELS_REDIS_OVER_CAPACITY, "args": (2, 5, "conv.x")}))
    assert over_capacity_drops() == before + 2
    counter.handle(logging.makeLogRecord({"msg": "something else %s", "args": (7,)}))
    assert over_capacity_drops() == before + 2


def test_records_below_log_level_are_not_printed_even_from_loggers_opened_lower(keypair, tmp_path):
    """channels_redis.core is opened to INFO for the drop counter: with LOG_LEVEL=warning its INFO records
    are still counted but not printed."""
    env = {**server_env(keypair[1].decode(), f"sqlite:///{tmp_path / 'chat.sqlite3'}"), "LOG_LEVEL": "warning"}
    script = (
        "import django, logging; django.setup(); "
        "from chatservice import metrics; "
        "logging.getLogger('channels_redis.core').info(metrics.CHANNELS_REDIS_OVER_CAPACITY, 4, 9, 'conv.x'); "
        "logging.getLogger('channels_redis.core').warning('printed'); "
        "from prometheus_client import REGISTRY; "
        "print(REGISTRY.get_sample_value('chat_channel_layer_drops_total', {'reason': 'over_capacity'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": "chatservice.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4.0"
    assert [json.loads(line)["message"] for line in result.stderr.splitlines()] == ["printed"]


# ==== structured logs ================================================================================


def format_json(record: logging.LogRecord) -> dict[str, Any]:
    handler_filter = logs.TraceContextFilter()
    handler_filter.filter(record)
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)


def test_json_lines_carry_the_standard_and_extra_fields():
    record = logging.LogRecord("chat.test", logging.WARNING, __file__, 1, "two\nlines %s", ("here",), None)
    record.user_id, record.request, record.ids = "u1", object(), ("a", 1)
    entry = format_json(record)
    assert entry["level"] == "WARNING" and entry["logger"] == "chat.test"
    assert entry["message"] == "two\nlines here"
    assert entry["timestamp"].endswith("Z") and len(entry["timestamp"]) == len("2026-01-01T00:00:00.000Z")
    # Extras: plain data as is; anything else (a request, whose repr has the query string) by type only.
    assert (entry["user_id"], entry["request"], entry["ids"]) == ("u1", "<object>", ["a", 1])
    assert "trace_id" not in entry and "span_id" not in entry

    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("chat.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in format_json(failed)["exception"]


def test_log_records_inside_a_span_carry_its_trace_and_span_ids():
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")  # not installed globally: the current span is contextual
    with tracer.start_as_current_span("work") as span:
        entry = format_json(logging.makeLogRecord({"msg": "inside", "levelno": logging.INFO}))
    context = span.get_span_context()
    assert entry["trace_id"] == f"{context.trace_id:032x}"
    assert entry["span_id"] == f"{context.span_id:016x}"
    outside = format_json(logging.makeLogRecord({"msg": "outside", "levelno": logging.INFO}))
    assert "trace_id" not in outside


def test_without_opentelemetry_the_filter_adds_nothing(monkeypatch):
    monkeypatch.setattr(logs, "_current_span", logs._UNSET)
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # `import` now raises ImportError
    entry = format_json(logging.makeLogRecord({"msg": "plain", "levelno": logging.INFO}))
    assert entry["message"] == "plain" and "trace_id" not in entry
    assert logs._current_span is None  # the import is tried once, not per record


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_connection_logs_name_user_conversation_and_close_code(conversation, make_token, caplog):
    token = make_token("u1")
    with caplog.at_level(logging.INFO, logger="realtime.consumers"):
        donor = await connect(conversation.pk, token)
        await donor.send({"type": "message", "content": "private words 7f3a"})
        await donor.expect("message_sent")
        await donor.communicator.disconnect(code=4000)
        assert await close_code(conversation.pk, make_token("u2")) == 4403
    entries = [format_json(r) for r in caplog.records if r.name == "realtime.consumers"]
    fields = [(e["message"], e["user_id"], e["conversation_id"], e.get("close_code")) for e in entries]
    assert fields == [
        ("websocket opened", "u1", conversation.pk, None),
        ("websocket closed", "u1", conversation.pk, 4000),
        ("websocket refused", "u2", conversation.pk, 4403),
    ]
    everything = caplog.text + json.dumps(entries)
    assert token not in everything and "private words 7f3a" not in everything


# ---- a real Daphne's output -------------------------------------------------------------------------


@dataclass
class Output:
    stdout: str
    stderr: str


@contextmanager
def daphne_with_separate_streams(env: dict[str, str]) -> Iterator[tuple[str, Output]]:
    """A Daphne worker whose stdout (Daphne's access log) and stderr (the logging handler) are kept
    apart; the Output is filled in once the worker has exited and flushed both."""
    port = free_port()
    output = Output("", "")
    with tempfile.TemporaryDirectory() as directory:
        out_path, err_path = Path(directory) / "stdout.log", Path(directory) / "stderr.log"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(
                [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "chatservice.asgi:application"],
                cwd=BASE_DIR,
                env=env,
                stdout=out,
                stderr=err,
            )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                assert process.poll() is None, err_path.read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, err_path.read_text()
                time.sleep(0.1)  # bounded start-up poll: there is no event to await from another process
            yield f"127.0.0.1:{port}", output
        finally:
            process.terminate()
            process.wait(timeout=30)
            output.stdout, output.stderr = out_path.read_text(), err_path.read_text()


@pytest.mark.asyncio
async def test_a_real_worker_logs_json_lines_without_tokens_or_message_content(keypair, tmp_path):
    env = {
        **server_env(keypair[1].decode(), f"sqlite:///{tmp_path / 'chat.sqlite3'}", METRICS_TOKEN=METRICS_TOKEN),
        "LOG_LEVEL": "debug",  # the most a worker writes: still no token, no content
    }
    await asyncio.to_thread(migrate, env)
    secret_content = "my card number is 4111-1111-1111-1111"
    donor_token, stranger_token = sign(keypair, "donor-log"), sign(keypair, "stranger-log")
    with daphne_with_separate_streams(env) as (address, output):
        async with httpx.AsyncClient(base_url=f"http://{address}", timeout=30) as client:
            created = await client.post("/api/conversations", json={"subject": "Logs"}, headers=bearer(donor_token))
            conversation = created.json()["conversationId"]
            path = f"/api/conversations/{conversation}/messages"
            assert (await client.post(path, json={"content": secret_content}, headers=bearer(donor_token))).is_success
            assert (await client.get("/nowhere?token=query-secret")).status_code == 404
            assert (await client.get("/metrics", headers=bearer("not-the-metrics-token"))).status_code == 403
            assert (await client.get("/metrics", headers=bearer(METRICS_TOKEN))).status_code == 200

        url = f"ws://{address}/ws/conversations/{conversation}"
        async with ws_connect(f"{url}?token={donor_token}") as ws:
            await ws.send(json.dumps({"type": "message", "content": secret_content + " again"}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))
            assert ack["type"] == "message_sent"
            await ws.send(json.dumps({"type": "message", "content": secret_content, "messageType": "NOPE"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S))["code"] == "invalid_choice"
            await ws.close(code=4000)
        async with ws_connect(f"{url}?token={stranger_token}") as refused:
            await asyncio.wait_for(refused.wait_closed(), FRAME_TIMEOUT_S)

    lines = [line for line in output.stderr.splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    entries = [json.loads(line) for line in lines]  # every line of stderr is one JSON object
    for entry in entries:
        assert {"timestamp", "level", "logger", "message"} <= set(entry), entry
    loggers = {entry["logger"] for entry in entries}
    assert "django.request" in loggers  # Django's own records ("Not Found: /nowhere") are JSON too
    assert any(name.startswith("daphne") for name in loggers), loggers
    assert "trace_id" not in json.dumps(entries)  # tracing is off in this worker

    sockets = [
        (e["message"], e["user_id"], e.get("close_code")) for e in entries if e["logger"] == "realtime.consumers"
    ]
    assert sockets == [
        ("websocket opened", "donor-log", None),
        ("websocket closed", "donor-log", 4000),
        ("websocket refused", "stranger-log", 4403),
    ]
    assert all(e["conversation_id"] == conversation for e in entries if e["logger"] == "realtime.consumers")

    everything = output.stdout + output.stderr
    assert "WSCONNECT" in output.stdout  # Daphne's access log went to stdout
    for secret in (donor_token, stranger_token, METRICS_TOKEN, "not-the-metrics-token"):
        assert secret not in everything
        assert secret.split(".")[-1] not in everything  # not even a JWT's signature
    assert "4111-1111" not in everything
    # Daphne's access log (stdout) records HTTP query strings as sent; the JSON records never do, not
    # even through Django's `request` (written as its type name).
    assert "query-secret" not in output.stderr
