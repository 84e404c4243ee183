"""The one way services open a transaction, so the MongoDB backend can swap in its own later."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from django.db import OperationalError, connection, transaction

from chatservice.config import SQLITE_BUSY_TIMEOUT_S

# SQLite allows one writer at a time. Writers of one process queue here, in order. Writers of other
# processes meet at BEGIN IMMEDIATE, where SQLite's own busy handler would sleep in a coarse ladder
# (1, 2, 5, 10, 15, 20, 25, … ms) and retry: with two workers writing, that ladder was the slow tail of
# WebSocket latency. So the BEGIN is tried without SQLite's wait and retried here after short sleeps.
_sqlite_writers = threading.RLock()
SQLITE_BEGIN_BACKOFF_S = (0.00025, 0.0005, 0.001, 0.002)


@contextmanager
def atomic() -> Iterator[None]:
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    with _sqlite_writers, ExitStack() as stack:
        _begin_sqlite(stack)
        yield


def _begin_sqlite(stack: ExitStack) -> None:
    connection.ensure_connection()
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    attempt = 0
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    stack.enter_context(transaction.atomic())
                    return
                except OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(SQLITE_BEGIN_BACKOFF_S[min(attempt, len(SQLITE_BEGIN_BACKOFF_S) - 1)])
                attempt += 1
        finally:
            # Statements inside the transaction never wait (it holds the write lock); writes outside
            # one keep SQLite's own busy handler.
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")


# A transaction the database aborted to break a deadlock or a serialization conflict did nothing and
# can simply run again; a few attempts cover any realistic pile-up.
TRANSIENT_ATTEMPTS = 3
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


def is_transient(exc: Exception) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in TRANSIENT_SQLSTATES
