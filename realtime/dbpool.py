"""The WebSocket consumers' database threads: ORM calls from the event loop run here.

Each worker has a pool of CHAT_WS_DB_THREADS threads rather than asgiref's single shared thread
(thread_sensitive=True), so one socket's slow query does not queue every other socket's database work
behind it (measured in bench/ws_bench.py). Each pool thread keeps one database connection between calls:
a new connection per frame cost more than the frame's queries. With CHAT_WS_DB_THREADS=0 the consumers
use Channels' database_sync_to_async instead.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections

P = ParamSpec("P")
R = TypeVar("R")

# How long closing the pool may wait for each thread to take its closing task: longer than any query.
CLOSE_WAIT_S = 10
_executor: ThreadPoolExecutor | None = None


def _keeping_connection(fn: Callable[P, R]) -> Callable[P, R]:
    """A connection that failed is closed, so the thread's next call reconnects instead of reusing it."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (InterfaceError, OperationalError):
            for conn in connections.all(initialized_only=True):
                conn.close()
            raise

    return run


def db(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`fn` as a coroutine function that runs on this worker's database threads."""
    global _executor
    threads = settings.CHAT["WS_DB_THREADS"]
    if threads == 0:
        return database_sync_to_async(fn)
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ws-db")
    return sync_to_async(_keeping_connection(fn), thread_sensitive=False, executor=_executor)


def close_db_pool() -> None:
    """Close every pool thread's database connection and stop the pool (tests drop the test database
    after this, and PostgreSQL refuses to drop one with open sessions; a worker process simply exits)."""
    global _executor
    executor, _executor = _executor, None
    if executor is None:
        return
    threads = executor._max_workers
    barrier = threading.Barrier(threads)

    def close_this_threads_connections() -> None:
        barrier.wait(timeout=CLOSE_WAIT_S)  # one task per thread: each waits until every thread holds one
        connections.close_all()

    for future in [executor.submit(close_this_threads_connections) for _ in range(threads)]:
        future.result(timeout=3 * CLOSE_WAIT_S)
    executor.shutdown(wait=True)
