"""Every query the chat apps run in the SQL test lanes is also compiled by django-mongodb-backend.

While the suite runs on SQLite or PostgreSQL, each ORM query on a chat model (select, update, delete,
insert) is handed, before it executes, to the MongoDB backend's compiler too, which turns it into MQL
and sends it to the offline client (tests.mongo_offline.base). A query the backend rejects
(NotSupportedError for an ORM feature MongoDB lacks, an expression without MQL, …) is recorded, and the
test that ran it fails. This guards the queries the tests exercise: raw-SQL fast paths, which are
vendor-gated, are not covered, nor ORM queries marked chatservice.db.sql_only (MongoDB runs its own
path for those), and nothing about results is checked (that needs a real server).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections
from django.db.models.sql import compiler as sql_compiler
from django.db.models.sql.constants import MULTI

from chatservice.db import SQL_ONLY_ATTRIBUTE

ALIAS = "mongo_offline"
CHAT_APPS = frozenset({"conversations", "messaging", "identity", "desk", "audit", "csat"})
SETTINGS: dict[str, Any] = {
    "ENGINE": "tests.mongo_offline",
    "HOST": "mongodb://offline.invalid:27017/chat_offline",
    "NAME": "chat_offline",
    "USER": "",
    "PASSWORD": "",
    "PORT": "",
    "OPTIONS": {},
    "TIME_ZONE": None,
    "CONN_MAX_AGE": 0,
    "CONN_HEALTH_CHECKS": False,
    "AUTOCOMMIT": True,
    "ATOMIC_REQUESTS": False,
    "TEST": {},
}

_local = threading.local()
_lock = threading.Lock()
rejections: list[str] = []
compiled = 0


def register() -> None:
    """Make ALIAS a connection Django knows (nested queries look their compiler up by alias). Tests
    that did not ask for that database get its `connect` replaced by one that fails, so the connection
    of this thread is opened now; other threads open their own, unwrapped."""
    connections.settings[ALIAS] = dict(SETTINGS)
    connections[ALIAS].ensure_connection()


def _check(query: Any, result_type: Any) -> None:
    global compiled
    model = getattr(query, "model", None)
    if model is None or model._meta.app_label not in CHAT_APPS or getattr(_local, "busy", False):
        return
    if getattr(query, SQL_ONLY_ATTRIBUTE, None):  # chatservice.db.sql_only: MongoDB takes another path
        return
    _local.busy = True
    try:
        result = query.chain().get_compiler(using=ALIAS).execute_sql(result_type)
        if result_type == MULTI and result is not None:
            for _ in result:  # compilation of a select can be lazy
                pass
        with _lock:
            compiled += 1
    except Exception as exc:  # every rejection, whatever its type, is reported with the query's model
        with _lock:
            rejections.append(f"{model.__name__} {type(query).__name__}: {type(exc).__name__}: {exc}")
    finally:
        _local.busy = False


@contextmanager
def installed() -> Iterator[None]:
    select, insert = sql_compiler.SQLCompiler.execute_sql, sql_compiler.SQLInsertCompiler.execute_sql

    def checked_select(self, result_type=MULTI, *args: Any, **kwargs: Any):
        if self.connection.vendor != "mongodb":
            _check(self.query, result_type)
        return select(self, result_type, *args, **kwargs)

    def checked_insert(self, *args: Any, **kwargs: Any):
        if self.connection.vendor != "mongodb":
            _check(self.query, None)
        return insert(self, *args, **kwargs)

    sql_compiler.SQLCompiler.execute_sql = checked_select
    sql_compiler.SQLInsertCompiler.execute_sql = checked_insert
    try:
        yield
    finally:
        sql_compiler.SQLCompiler.execute_sql, sql_compiler.SQLInsertCompiler.execute_sql = select, insert


def take_rejections() -> list[str]:
    with _lock:
        taken = rejections[:]
        rejections.clear()
    return taken
