"""The one way services open a transaction: Django's atomic() on SQL databases (with a faster start
on SQLite), django-mongodb-backend's on MongoDB, where Django's own is a no-op."""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, ParamSpec, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, OperationalError, connection, transaction
from pymongo.errors import PyMongoError

from chatservice.config import SQLITE_BUSY_TIMEOUT_S

QuerySetT = TypeVar("QuerySetT", bound=Any)

# SQLite allows one writer at a time. Writers of one process queue here, in order. Writers of other
# processes meet at BEGIN IMMEDIATE, where SQLite's own busy handler would sleep in a coarse ladder
# (1, 2, 5, 10, 15, 20, 25, … ms) and retry: with two workers writing, that ladder was the slow tail of
# WebSocket latency. So the BEGIN is tried without SQLite's wait and retried here after short sleeps.
_sqlite_writers = threading.RLock()
SQLITE_BEGIN_BACKOFF_S = (0.00025, 0.0005, 0.001, 0.002)


@contextmanager
def atomic() -> Iterator[None]:
    if connection.vendor == "mongodb":
        with _mongodb_atomic():
            yield
        return
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    with _sqlite_writers, ExitStack() as stack:
        _begin_sqlite(stack)
        yield


@contextmanager
def _mongodb_atomic() -> Iterator[None]:
    from django_mongodb_backend import transaction as mongodb_transaction

    # Without a replica set MongoDB refuses transactions; going on without one would let two workers
    # number messages alike. Refuse clearly instead (the compose stack runs a one-node replica set).
    if not connection.features._supports_transactions:
        raise ImproperlyConfigured(
            "MongoDB transactions need a replica set or sharded cluster: start mongod with --replSet "
            "and rs.initiate() (README, 'MongoDB')"
        )
    with mongodb_transaction.atomic():
        yield


def in_transaction() -> bool:
    return connection.in_atomic_block_mongo if connection.vendor == "mongodb" else connection.in_atomic_block


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


# A transaction the database aborted to break a deadlock (PostgreSQL) or a write conflict (MongoDB, which
# aborts the later of two transactions writing one document instead of making it wait) did nothing and
# can simply run again; a few attempts cover any realistic pile-up.
TRANSIENT_ATTEMPTS = 5
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
TRANSIENT_BACKOFF_S = 0.001  # doubled per attempt: at most ~16 ms before the fifth
MONGODB_TRANSIENT_LABELS = ("TransientTransactionError", "UnknownTransactionCommitResult")


def is_transient(exc: BaseException) -> bool:
    cause = exc if isinstance(exc, PyMongoError) else exc.__cause__
    if isinstance(cause, PyMongoError):
        return any(cause.has_error_label(label) for label in MONGODB_TRANSIENT_LABELS)
    return getattr(cause, "sqlstate", None) in TRANSIENT_SQLSTATES


P = ParamSpec("P")
R = TypeVar("R")


def retry_transient(func: Callable[P, R]) -> Callable[P, R]:
    """Run `func` again when the database aborted its transaction as transient. Only the outermost
    call retries: inside a caller's transaction the whole transaction is lost, so the error goes up to
    whoever opened it. `func` must be safe to re-run: it opens its transactions with atomic(), and
    what it registered with on_commit during a failed attempt is discarded with that attempt."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if in_transaction():
            return func(*args, **kwargs)
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                return func(*args, **kwargs)
            except (DatabaseError, PyMongoError) as exc:
                if attempt == TRANSIENT_ATTEMPTS or not is_transient(exc):
                    raise
            # Two writers that just collided would collide again at once: spread their next attempts.
            time.sleep(random.uniform(0, TRANSIENT_BACKOFF_S * 2**attempt))  # noqa: S311 - not security
        raise AssertionError("unreachable")

    return wrapper


# The attribute that marks a query as run on SQL databases only (see sql_only).
SQL_ONLY_ATTRIBUTE = "sql_only_because"


def sql_only(queryset: QuerySetT, *, because: str) -> QuerySetT:
    """Mark an ORM query that only SQL databases run, its caller taking another path on MongoDB (say which
    in `because`). The offline MongoDB compile check of the test suite (tests/mongo_offline) skips it,
    as it skips vendor-gated raw SQL; the MongoDB path gets its own tests."""
    setattr(queryset.query, SQL_ONLY_ATTRIBUTE, because)
    return queryset
