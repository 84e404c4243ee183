"""Fuzzing the WebSocket with hypothesis: arbitrary JSON, near-miss chat frames, random text and binary
frames against the full ASGI application. Every frame gets its normal handling or an `error` frame, the
socket answers a ping after each one and is never closed by the server (no 1011), no handler fails, and
once the socket closes the connection gauge is back where it was."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from conversations import services as conversation_services
from tests.helpers import USER
from tests.test_realtime import RECEIVE_TIMEOUT_S, open_socket

pytestmark = pytest.mark.django_db(transaction=True)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
near_miss = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "typing", "read", "ping"]) | json_values},
    optional={
        key: json_values for key in ("content", "messageType", "metadata", "clientMessageId", "isTyping", "messageId")
    },
)
Frame = tuple[str | None, bytes | None]
frames = st.one_of(
    json_values.map(lambda value: (json.dumps(value), None)),
    near_miss.map(lambda value: (json.dumps(value), None)),
    st.text(max_size=100).map(lambda text: (text, None)),
    st.integers(min_value=1, max_value=5_000).map(lambda depth: ("[" * depth + "]" * depth, None)),
    st.integers(min_value=1, max_value=5_000).map(lambda depth: ('{"type":' * depth, None)),
    st.binary(max_size=64).map(lambda data: (None, data)),
)


def connections() -> float:
    return REGISTRY.get_sample_value("chat_ws_connections") or 0.0


async def exchange(conversation_id: str, token: str, sent: list[Frame]) -> list[dict[str, Any]]:
    """Send each frame then a ping; return every frame the server sent. Fails on any close."""
    communicator, _ = await open_socket(conversation_id, token)
    received: list[dict[str, Any]] = []
    for text, data in sent:
        # send_input rather than send_to, which refuses empty frames (Daphne delivers them).
        await communicator.send_input(
            {"type": "websocket.receive", **({"text": text} if data is None else {"bytes": data})}
        )
        await communicator.send_to(text_data='{"type":"ping"}')
        while True:
            output = await communicator.receive_output(timeout=RECEIVE_TIMEOUT_S)
            assert output["type"] == "websocket.send", f"the server closed the socket: {output}"
            frame = json.loads(output["text"])
            received.append(frame)
            if frame["type"] == "pong":
                break
    await communicator.disconnect()
    return received


@pytest.fixture
def fuzz_target(transactional_db, settings, make_token, caplog):
    # Fuzzing sends far faster than a person; the limiter has its own tests.
    settings.CHAT = {
        **settings.CHAT,
        **dict.fromkeys(("WS_MESSAGE_RATE", "WS_MESSAGE_BURST", "WS_USER_RATE", "WS_USER_BURST"), 10_000),
        **dict.fromkeys(("WS_TYPING_RATE", "WS_TYPING_BURST"), 10_000),
    }
    caplog.set_level(logging.WARNING)
    conversation = conversation_services.conversation_create(creator=USER, subject="fuzz")
    return conversation.pk, make_token("u1"), caplog


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sent=st.lists(frames, min_size=1, max_size=6))
def test_no_frame_closes_the_socket_or_breaks_a_handler(fuzz_target, sent):
    conversation_id, token, caplog = fuzz_target
    caplog.clear()
    baseline = connections()
    received = async_to_sync(exchange)(conversation_id, token, sent)
    errors = [frame for frame in received if frame["type"] == "error"]
    assert all(frame["code"] != "internal_error" for frame in errors), errors
    assert sum(frame["type"] == "pong" for frame in received) >= len(sent)
    assert connections() == baseline
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not failures, [r.getMessage() for r in failures]
