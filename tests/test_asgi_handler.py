"""The HTTP side of the ASGI application: each request's synchronous work runs in one hop to a pooled
thread that keeps its database connection (chatservice.asgi_handler)."""

from __future__ import annotations

import threading

import httpx
import pytest
from django.db.backends.signals import connection_created

from chatservice.asgi import application
from conversations import views as conversation_views
from conversations.models import Conversation

REQUESTS = 8  # sequential requests: each one opened a connection of its own before


async def _get(path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        return await client.get(path, headers=headers)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_sequential_requests_share_a_pooled_thread_and_its_connection(make_token, monkeypatch):
    token = make_token("u1", "USER")
    threads: list[str] = []
    created: list[str] = []
    original_list = conversation_views.ConversationViewSet.list

    def recording_list(self, request):
        threads.append(threading.current_thread().name)
        return original_list(self, request)

    def on_connect(sender, connection, **kwargs):
        if connection.alias == "default":  # not the suite's offline MongoDB compile check (conftest)
            created.append(threading.current_thread().name)

    monkeypatch.setattr(conversation_views.ConversationViewSet, "list", recording_list)
    connection_created.connect(on_connect)
    try:
        for _ in range(REQUESTS):
            response = await _get("/api/conversations", token)
            assert response.status_code == 200
            assert response.json()["count"] == 0
    finally:
        connection_created.disconnect(on_connect)

    assert len(threads) == REQUESTS
    assert all(name.startswith("http") for name in threads), threads
    # A thread connects once and keeps its connection: no thread connects twice, and far fewer connections
    # than requests. (Which thread takes a request is ThreadPoolExecutor's call: a request arriving before
    # the previous one's thread is back in the idle set starts another thread, more often on a busy machine.)
    assert len(created) == len(set(created)), created
    assert len(created) <= REQUESTS // 2, created


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_async_view_still_answers_through_the_synchronous_chain():
    response = await _get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_refused_request_leaves_nothing_and_the_thread_serves_the_next(make_token):
    donor = make_token("u1", "USER")
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        refused = await client.post(
            "/api/conversations", json={"subject": 5}, headers={"Authorization": f"Bearer {donor}"}
        )
        assert refused.status_code == 400
        assert refused.json()["code"] == "not_a_string"
        created = await client.post(
            "/api/conversations", json={"subject": "Receipt"}, headers={"Authorization": f"Bearer {donor}"}
        )
        assert created.status_code == 201
    assert await Conversation.objects.acount() == 1
