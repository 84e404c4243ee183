"""The one way services open a transaction, so the MongoDB backend can swap in its own later."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

# SQLite allows one writer at a time. Left to SQLite, a writer that finds the database locked sleeps in
# its busy handler in growing steps (1, 2, 5, … up to 100 ms) and retries; under a burst of WebSocket
# sends that turned milliseconds into seconds. Writers of one process queue here instead, in order,
# and only writers of *other* processes meet SQLite's busy handler.
_sqlite_writers = threading.RLock()


@contextmanager
def atomic() -> Iterator[None]:
    if connection.vendor == "sqlite":
        with _sqlite_writers, transaction.atomic():
            yield
    else:
        with transaction.atomic():
            yield


# A transaction the database aborted to break a deadlock or a serialization conflict did nothing and
# can simply run again; a few attempts cover any realistic pile-up.
TRANSIENT_ATTEMPTS = 3
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


def is_transient(exc: Exception) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in TRANSIENT_SQLSTATES
