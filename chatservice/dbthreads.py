"""Pools of threads that run synchronous Django code for the event loop, each thread keeping its
database connection between calls.

Django's own ways run each HTTP request in a new thread (ASGIHandler's per-request executor) and each
Channels call in asgiref's one shared thread. A new thread is a new database connection: on SQLite that is
a connect, the WAL pragmas, a schema parse and every statement prepared again, which measured 2.5 to 4 ms
per request, more than the staff list's own queries. A thread of a pool connects once and keeps it; a
connection that fails is closed, so the thread's next call reconnects instead of reusing it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, connections

P = ParamSpec("P")
R = TypeVar("R")

# How long closing a pool may wait for each thread to take its closing task: longer than any query.
CLOSE_WAIT_S = 10


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


class DatabaseThreads:
    """A lazily started pool of `size` threads named `name-N`."""

    def __init__(self, name: str, size: Callable[[], int]) -> None:
        self._name = name
        self._size = size  # read when the pool starts: settings may change between tests
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._size(), thread_name_prefix=self._name)
            return self._executor

    def submit(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Run `fn` on one of the pool's threads, from synchronous code."""
        return self._pool().submit(_keeping_connection(fn), *args, **kwargs)

    def wrap(self, fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
        """`fn` as a coroutine function that runs on one of the pool's threads."""
        return sync_to_async(_keeping_connection(fn), thread_sensitive=False, executor=self._pool())

    def close(self) -> None:
        """Close every thread's database connection and stop the pool (tests drop the test database
        after this, and PostgreSQL refuses to drop one with open sessions; a worker process simply
        exits). The pool starts again on its next use."""
        with self._lock:
            executor, self._executor = self._executor, None
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
