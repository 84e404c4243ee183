"""Shared fixtures: a test key pair that the service trusts, token minting, API clients per caller."""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.test.utils import override_settings
from rest_framework.test import APIClient

from chatservice.devkeys import generate_rsa_keypair
from conversations import services as conversation_services
from conversations.models import Conversation
from tests.helpers import USER
from tests.mongo_offline import compile_check

# `kill -USR1 <pytest pid>` prints every thread's stack: what a hung run is waiting for.
faulthandler.register(signal.SIGUSR1, all_threads=True)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory) -> None:
    """SQLite tests use a file, not Django's in-memory default: the realtime consumers do their
    database work on pool threads, which must see one database with real (WAL) locking."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


# Attachments written by the tests go to a temporary directory, in this process and in the servers it starts
# (tests/servers.py passes the environment on), never to var/attachments.
ATTACHMENT_DIR = tempfile.mkdtemp(prefix="chat-test-attachments-")
os.environ["CHAT_ATTACHMENT_DIR"] = ATTACHMENT_DIR


@pytest.fixture(scope="session", autouse=True)
def attachment_storage_in_tmp() -> Iterator[None]:
    storage = settings.STORAGES["attachments"]
    if not storage["BACKEND"].endswith("FileSystemStorage"):
        yield
        return
    local = {**storage, "OPTIONS": {**storage["OPTIONS"], "location": ATTACHMENT_DIR}}
    with override_settings(STORAGES={**settings.STORAGES, "attachments": local}):
        yield
    shutil.rmtree(ATTACHMENT_DIR, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def close_websocket_db_pool(django_db_setup, django_db_blocker):
    """The consumers' and the HTTP handler's pool threads keep database connections open; close them
    before the test database is dropped (PostgreSQL refuses to drop a database with open sessions).
    Also stops the job scheduler that importing chatservice.asgi starts (embedded mode): a thread
    sweeping the test database every few seconds would race the tests; those that want it start it."""
    from jobs.runner import stop_embedded as stop_scheduler

    stop_scheduler()
    yield
    from chatservice.asgi_handler import close_http_threads
    from jobs.runner import stop_embedded
    from realtime.dbpool import close_db_pool

    close_db_pool()
    close_http_threads()
    stop_embedded()


@pytest.fixture(scope="session", autouse=True)
def mongo_compile_check(django_db_blocker) -> Iterator[None]:
    """On SQL databases, also compile every chat query with django-mongodb-backend (see compile_check);
    against a real MongoDB the suite itself is the check."""
    if settings.DATABASES["default"]["ENGINE"] == "django_mongodb_backend":
        yield
        return
    with django_db_blocker.unblock():
        compile_check.register()
    with compile_check.installed():
        yield


@pytest.fixture(autouse=True)
def no_query_that_mongodb_rejects(mongo_compile_check) -> Iterator[None]:
    compile_check.take_rejections()
    yield
    rejected = compile_check.take_rejections()
    assert not rejected, "django-mongodb-backend rejects queries this test ran:\n" + "\n".join(rejected)


@pytest.fixture(scope="session")
def keypair() -> tuple[bytes, bytes]:
    return generate_rsa_keypair()


@pytest.fixture(scope="session")
def other_keypair() -> tuple[bytes, bytes]:
    return generate_rsa_keypair()


# In-process tests wait for `user_left`; the production grace (5 s) would make each such wait that long.
TEST_PRESENCE_GRACE_S = 0.2


@pytest.fixture(autouse=True)
def trusted_key(settings, keypair) -> None:
    settings.CHAT = {
        **settings.CHAT,
        "JWT_PUBLIC_KEY": keypair[1].decode(),
        "JWT_ISSUER": None,
        "JWT_AUDIENCE": None,
        "WS_PRESENCE_GRACE_S": TEST_PRESENCE_GRACE_S,
    }


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """The in-process cache holds admin login attempts (django-axes): each test starts with none."""
    from django.core.cache import cache

    from desk.names import forget_staff_name
    from webhooks.selectors import forget_endpoints

    cache.clear()
    forget_staff_name()  # staff display names, kept per process
    forget_endpoints()  # webhook endpoints, kept per process (a flushed table sends no delete signal)
    yield


@pytest.fixture(autouse=True)
def fresh_presence() -> Iterator[None]:
    """Each test starts with nobody present and no sockets counted against any user's cap (the in-process
    store lives as long as the process; a test that leaves a socket open must not affect the next)."""
    from realtime import presence

    presence._presence = None
    yield
    presence._presence = None


@pytest.fixture
def make_token(keypair) -> Callable[..., str]:
    def make(
        sub: str | None = "u1",
        role: str | None = "USER",
        *,
        ttl: int = 3600,
        key: Any = None,
        algorithm: str = "RS256",
        **claims: Any,
    ) -> str:
        payload: dict[str, Any] = {"exp": int(time.time()) + ttl, **claims}
        if sub is not None:
            payload["sub"] = sub
        if role is not None:
            payload["role"] = role
        return jwt.encode(payload, key if key is not None else keypair[0], algorithm=algorithm)

    return make


@pytest.fixture
def client_for(make_token) -> Callable[..., APIClient]:
    def make(user_id: str = "u1", role: str = "USER") -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user_id, role)}")
        return client

    return make


@pytest.fixture
def donor(client_for) -> APIClient:
    return client_for("u1", "USER")


@pytest.fixture
def stranger(client_for) -> APIClient:
    return client_for("u2", "USER")


@pytest.fixture
def agent(client_for) -> APIClient:
    return client_for("agent1", "ADMIN")


@pytest.fixture
def conversation(db) -> Conversation:
    return conversation_services.conversation_create(creator=USER, subject="Refund", metadata={"campaign": "c1"})
