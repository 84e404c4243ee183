"""The service as deployed: real Daphne processes over HTTP, including two workers sharing one database."""

from __future__ import annotations

import threading
import time

import httpx
import jwt
import pytest

from chatservice.devkeys import generate_rsa_keypair
from tests.servers import daphne, free_port, migrate, server_env

BODY_LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_rsa_keypair()


def token(keys, sub: str, role: str = "USER") -> str:
    return jwt.encode({"sub": sub, "role": role, "exp": int(time.time()) + 600}, keys[0], algorithm="RS256")


def auth(keys, sub: str, role: str = "USER") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(keys, sub, role)}"}


@pytest.fixture(scope="module")
def sqlite_env(keys, tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "chat.sqlite3"
    env = server_env(keys[1].decode(), f"sqlite:///{path}")
    migrate(env)
    return env


@pytest.fixture(scope="module")
def server(sqlite_env):
    with daphne(sqlite_env) as running:
        yield running


def test_served_by_daphne_end_to_end(server, keys):
    health = httpx.get(f"{server.url}/health")
    assert health.json() == {"status": "ok", "checks": {"database": "ok", "channelLayer": "ok", "jobs": "ok"}}
    donor_token = token(keys, "donor-1")
    headers = {"Authorization": f"Bearer {donor_token}"}
    created = httpx.post(f"{server.url}/api/conversations", json={"subject": "Hi"}, headers=headers)
    assert created.status_code == 201
    conversation = created.json()["conversationId"]
    sent = httpx.post(f"{server.url}/api/conversations/{conversation}/messages", json={"content": "x"}, headers=headers)
    assert sent.status_code == 201
    page = httpx.get(f"{server.url}/api/conversations/{conversation}/messages", headers=headers).json()
    assert [m["content"] for m in page["results"]] == ["x"]
    assert httpx.get(f"{server.url}/api/conversations").status_code == 401
    assert donor_token not in server.log()  # the access log never carries the credential


def test_oversized_body_is_refused_before_parsing(server, keys):
    headers = {**auth(keys, "donor-big"), "Content-Type": "application/json"}
    declared = httpx.post(f"{server.url}/api/conversations", content=b"{" + b" " * BODY_LIMIT + b"}", headers=headers)
    assert declared.status_code == 413
    assert declared.json() == {
        "detail": f"Request body is larger than {BODY_LIMIT} bytes.",
        "code": "request_too_large",
    }

    def chunks():  # no Content-Length: sent chunked, refused as soon as it passes the limit
        for _ in range(40):
            yield b" " * 65536

    chunked = httpx.post(f"{server.url}/api/conversations", content=chunks(), headers=headers)
    assert (chunked.status_code, chunked.json()["code"]) == (413, "request_too_large")
    listing = httpx.get(f"{server.url}/api/conversations", headers=auth(keys, "donor-big")).json()
    assert listing["count"] == 0  # nothing stored

    small_chunked = httpx.post(
        f"{server.url}/api/conversations", content=iter([b'{"subj', b'ect": "ok"}']), headers=headers
    )
    assert small_chunked.status_code == 201 and small_chunked.json()["subject"] == "ok"


def test_health_is_503_naming_the_database_when_it_is_down(keys):
    env = server_env(keys[1].decode(), f"postgres://chat:pw@127.0.0.1:{free_port()}/chat")
    with daphne(env, expect_healthy=False) as broken:
        response = httpx.get(f"{broken.url}/health", timeout=10)
    assert response.status_code == 503
    assert response.json()["failing"] == ["database", "jobs"]  # the job queue is read from the database
    assert response.json()["checks"]["channelLayer"] == "ok"


WRITERS = 4
MESSAGES_PER_WRITER = 25


def test_two_workers_writing_concurrently_never_skip_a_message_for_a_reader(sqlite_env, keys):
    """Writers post to two Daphne processes sharing one database while a reader follows `after`
    cursors on both: it must receive every message exactly once, in sequence order."""
    with daphne(sqlite_env) as worker_a, daphne(sqlite_env) as worker_b:
        workers = [worker_a.url, worker_b.url]
        donor = auth(keys, "donor-race")
        conversation = httpx.post(f"{workers[0]}/api/conversations", json={}, headers=donor).json()["conversationId"]
        agent = auth(keys, "agent-race", "ADMIN")
        httpx.post(f"{workers[1]}/api/conversations/{conversation}/assign", json={}, headers=agent)
        path = f"/api/conversations/{conversation}/messages"
        first_id = httpx.get(f"{workers[0]}{path}", headers=donor).json()["results"][0]["messageId"]

        errors: list[str] = []

        def write(index: int) -> None:
            headers = donor if index % 2 else agent
            with httpx.Client(timeout=30) as client:
                for n in range(MESSAGES_PER_WRITER):
                    url = workers[(index + n) % 2] + path
                    response = client.post(url, json={"content": f"w{index}-{n}"}, headers=headers)
                    if response.status_code != 201:
                        errors.append(f"{response.status_code} {response.text}")

        writers = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
        for thread in writers:
            thread.start()
        received: list[dict] = []
        cursor = first_id
        with httpx.Client(timeout=30) as client:
            polls = 0
            while True:
                done = not any(thread.is_alive() for thread in writers)
                url = workers[polls % 2] + path
                page = client.get(url, params={"after": cursor, "limit": 7}, headers=donor).json()
                polls += 1
                received += page["results"]
                if page["results"]:
                    cursor = page["results"][-1]["messageId"]
                elif done:
                    break
                assert polls < 10_000
        for thread in writers:
            thread.join()

        assert errors == []
        contents = [m["content"] for m in received]
        expected = {f"w{i}-{n}" for i in range(WRITERS) for n in range(MESSAGES_PER_WRITER)}
        assert len(contents) == len(set(contents)) == WRITERS * MESSAGES_PER_WRITER
        assert set(contents) == expected
        # The history agrees: the SYSTEM "joined" message, then exactly what the reader received.
        history = httpx.get(f"{workers[1]}{path}", params={"limit": 200}, headers=donor).json()
        assert history["next"] is None
        assert [m["messageId"] for m in history["results"][1:]] == [m["messageId"] for m in received]
