"""The WebSocket consumers' database threads: ORM calls from the event loop run here.

Each worker has a pool of CHAT_WS_DB_THREADS threads rather than asgiref's single shared thread
(thread_sensitive=True), so one socket's slow query does not queue every other socket's database work
behind it (measured in bench/ws_bench.py). Each pool thread keeps one database connection between calls
(chatservice.dbthreads): a new connection per frame cost more than the frame's queries. With
CHAT_WS_DB_THREADS=0 the consumers use Channels' database_sync_to_async instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings

from chatservice.dbthreads import DatabaseThreads

P = ParamSpec("P")
R = TypeVar("R")

_threads = DatabaseThreads("ws-db", lambda: settings.CHAT["WS_DB_THREADS"])


def db(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`fn` as a coroutine function that runs on this worker's database threads."""
    if settings.CHAT["WS_DB_THREADS"] == 0:
        return database_sync_to_async(fn)
    return _threads.wrap(fn)


def close_db_pool() -> None:
    """Close every pool thread's database connection and stop the pool (see DatabaseThreads.close)."""
    _threads.close()
