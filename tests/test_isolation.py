"""One message never fails the others stored with it, and background jobs say what went wrong.

The channel layer here is channels-redis on a real redis-server: it serialises events (msgpack), which
the in-memory layer does not, and that is where a number too large for an event used to fail a whole
group-commit batch's announcement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from conversations import services as conversation_services
from conversations.models import Conversation
from messaging.models import Message
from messaging.services import SendRequest, Sent
from realtime import broadcast, events
from realtime.batcher import SendBatcher
from realtime.presence import PresenceRefresher
from realtime.registry import PeriodicJob, SocketRegistry
from tests.helpers import ADMIN, USER
from tests.servers import Redis, redis_server
from tests.test_realtime import RECEIVE_TIMEOUT_S, Socket, connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def redis() -> Iterator[Redis]:
    with redis_server() as server:
        yield server


@pytest.fixture
def redis_layer(settings, redis):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": redis.url}]},
        }
    }
    # Nothing below may arrive through the gap sweep: only live events count.
    settings.CHAT = {**settings.CHAT, "WS_GAP_SWEEP_S": 3600}


async def next_message(socket: Socket) -> dict[str, Any]:
    """The next message_received; presence frames may come first (the layer delivers a join announced just
    before this socket joined the group, through Redis, after it)."""
    while (frame := await socket.receive())["type"] in {"user_joined", "user_left"}:
        pass
    assert frame["type"] == "message_received", frame
    return frame


@pytest.fixture
def conversation(transactional_db) -> Conversation:
    return conversation_services.conversation_create(creator=USER, subject="Refund")


async def test_a_number_no_event_can_carry_is_refused_and_its_batch_is_announced(conversation, make_token, redis_layer):
    """Such a number used to be stored; the batch's event then failed to serialise for Redis, and every
    other message stored with it waited for the gap sweep."""
    donor = await connect(conversation.pk, make_token("u1"))
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    await donor.expect("user_joined")
    frames: list[Any] = [
        {"type": "message", "content": "first"},
        {"type": "message", "content": "poison", "metadata": {"n": 1180591620717411303424}},
        {"type": "message", "content": "third"},
    ]
    for frame in frames:  # sent together: one batch
        await donor.send(frame)
    answers = [await donor.receive() for _ in frames]  # the refusal comes first: it needs no storage
    assert [(a["type"], a.get("code") or a["content"]) for a in answers] == [
        ("error", "metadata_number_out_of_range"),
        ("message_sent", "first"),
        ("message_sent", "third"),
    ]
    assert [(await next_message(agent))["content"] for _ in range(2)] == ["first", "third"]
    assert await sync_to_async(list)(Message.objects.values_list("content", flat=True).order_by("seq")) == [
        "first",
        "third",
    ]
    await donor.close()
    await agent.close()


async def test_a_message_that_breaks_its_batch_fails_alone(conversation, make_token, redis_layer):
    """A batch whose storage raised used to answer `unavailable` to every sender in it. Here one request
    carries metadata the database cannot encode (a set), as a caller that skipped validation could."""
    agent = await connect(conversation.pk, make_token("agent1", "ADMIN"))
    results: list[Any] = []
    batcher = SendBatcher()
    for content, metadata in (("first", {}), ("broken", {"bad": {1, 2}}), ("third", {})):
        batcher.submit(SendRequest(conversation.pk, USER, content, metadata=metadata), results.append)
    await asyncio.wait_for(batcher.task, RECEIVE_TIMEOUT_S)  # one batch: all three were queued before it ran
    assert [type(result) for result in results] == [Sent, TypeError, Sent]
    assert [(await next_message(agent))["content"] for _ in range(2)] == ["first", "third"]
    await agent.close()


async def test_the_service_refuses_unsafe_numbers_for_one_message_only(conversation):
    from messaging.services import messages_store

    results, *_ = await sync_to_async(messages_store)(
        [
            SendRequest(conversation.pk, ADMIN, "fine"),
            SendRequest(conversation.pk, ADMIN, "too big", metadata={"n": 2**63}),
            SendRequest(conversation.pk, ADMIN, "fine too", metadata={"n": float("inf")}),
        ]
    )
    assert isinstance(results[0], Sent)
    assert [r.code for r in results[1:]] == ["metadata_number_out_of_range"] * 2  # type: ignore[union-attr]


async def test_an_event_the_layer_cannot_serialise_is_split_so_the_others_go_out(redis_layer, caplog):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(broadcast.conversation_group("conv_split"), channel)

    def item(seq: int, metadata: dict[str, Any]) -> events.StoredMessage:
        payload = {"messageId": f"msg_{seq}", "seq": seq, "metadata": metadata}
        return {"seq": seq, "payload": payload}  # type: ignore[typeddict-item]

    batch = events.messages_event([item(1, {}), item(2, {"n": 2**70}), item(3, {})])
    await broadcast.publish_now(broadcast.conversation_group("conv_split"), batch)
    delivered = [await asyncio.wait_for(layer.receive(channel), RECEIVE_TIMEOUT_S) for _ in range(2)]
    assert [event["messages"][0]["seq"] for event in delivered] == [1, 3]
    failures = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "realtime.broadcast"]
    assert failures and all(r.exc_info for r in failures)


async def test_a_failing_background_job_logs_its_message_and_traceback(conversation, make_token, settings):
    """ "gap sweep failed (RuntimeError)" was all a failed sweep logged: no message, no traceback."""
    with redis_server() as redis:
        settings.CHAT = {**settings.CHAT, "REDIS_URL": redis.url}
        from realtime import presence

        presence._presence = None  # the Redis store, on this server
        registry = SocketRegistry([])
        donor = await connect(conversation.pk, make_token("u1"))
        registry.add(next(iter(consumers_open())))
        job = PeriodicJob("presence refresh", lambda: 30, PresenceRefresher(registry).refresh, registry)
        redis.stop()
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("realtime.registry").addHandler(handler)
        try:
            assert await job.run_once() is False
        finally:
            logging.getLogger("realtime.registry").removeHandler(handler)
        (record,) = records
        assert record.levelno == logging.WARNING
        assert record.exc_info is not None  # the traceback
        assert str(record.exc_info[1]) in record.getMessage()  # and the error's own message
        redis.start()
        await donor.close()


def consumers_open() -> list[Any]:
    from realtime import consumers

    return consumers.open_sockets().all()
