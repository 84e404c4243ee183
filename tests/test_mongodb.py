"""MongoDB mode, proven without a server (none can be installed here): the settings a mongodb:// URL
builds, `check`, `makemigrations --check` and every migration run by django-mongodb-backend against the
offline client (tests.mongo_offline), the indexes they create, the transaction helper, and the query
compile check that every other test runs under. Against a real server the whole suite runs instead:
DATABASE_URL=mongodb://localhost:27017/chat_test make test (README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import DatabaseError
from pymongo.errors import OperationFailure

from chatservice import db
from chatservice.config import BASE_DIR
from conversations.models import Participant
from messaging.models import Message
from messaging.selectors import message_page
from tests.helpers import USER, send
from tests.mongo_offline import base as offline
from tests.mongo_offline import compile_check

MONGODB_URL = "mongodb://offline.invalid:27017/chat?replicaSet=rs0"
OFFLINE_SETTINGS = "tests.mongo_offline.settings"


def manage(*args: str, settings: str = "chatservice.settings", **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": MONGODB_URL,
        "DJANGO_SETTINGS_MODULE": settings,
        "DJANGO_DEBUG": "true",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=environ, capture_output=True, text=True, timeout=120
    )


def shell(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return manage("shell", "-c", code, settings=OFFLINE_SETTINGS, **env)


# ---- settings ---------------------------------------------------------------------------------------


def test_a_mongodb_url_makes_mongodb_the_only_database():
    code = """
import json
from django.apps import apps
from django.conf import settings
from django.db import connection
print(json.dumps({
    "databases": list(settings.DATABASES),
    "engine": settings.DATABASES["default"]["ENGINE"],
    "host": settings.DATABASES["default"]["HOST"],
    "name": settings.DATABASES["default"]["NAME"],
    "apps": [app.__class__.__module__ + "." + app.__class__.__name__ for app in apps.get_app_configs()],
    "migration_modules": settings.MIGRATION_MODULES,
    "pks": {m._meta.label: type(m._meta.pk).__name__ for m in apps.get_models()},
    "session_engine": settings.SESSION_ENGINE,
}))
"""
    result = manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["databases"] == ["default"]
    assert (found["engine"], found["host"], found["name"]) == ("django_mongodb_backend", MONGODB_URL, "chat")
    for app in ("MongoAdminConfig", "MongoAuthConfig", "MongoContentTypesConfig", "MongoAxesConfig"):
        assert f"chatservice.mongo_apps.{app}" in found["apps"]
    assert found["migration_modules"] == {
        "admin": "mongo_migrations.admin",
        "auth": "mongo_migrations.auth",
        "contenttypes": "mongo_migrations.contenttypes",
        "axes": "mongo_migrations.axes",
    }
    # Admin users, the admin log and content types get ObjectId keys; the chat keeps its string keys;
    # sessions (database-backed) keep theirs.
    pks = found["pks"]
    assert pks["auth.User"] == pks["admin.LogEntry"] == pks["contenttypes.ContentType"] == "ObjectIdAutoField"
    assert pks["axes.AccessAttempt"] == "ObjectIdAutoField"
    assert pks["identity.StaffSubject"] == "CharField"
    assert pks["conversations.Conversation"] == pks["messaging.Message"] == "CharField"
    assert pks["sessions.Session"] == "CharField"
    assert found["session_engine"] == "django.contrib.sessions.backends.db"


def test_manage_check_passes_in_mongodb_mode():
    result = manage("check", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_no_migration_is_missing_in_mongodb_mode():
    result = manage("makemigrations", "--check", "--dry-run", settings=OFFLINE_SETTINGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout


def test_a_malformed_mongodb_url_stops_start_up_with_one_line():
    result = manage("check", DATABASE_URL="mongodb://localhost:27017/chat?connectTimeoutMS=soon")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "chat-service: configuration error: DATABASE_URL is malformed: connecttimeoutms must be an integer or float"
    ]


# ---- migrations and indexes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> list[dict]:
    log = tmp_path_factory.mktemp("mongo") / "operations.jsonl"
    result = manage("migrate", "--noinput", settings=OFFLINE_SETTINGS, MONGO_OFFLINE_LOG=str(log))
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in Path(log).read_text().splitlines()]


def _indexes(operations: list[dict], collection: str) -> dict[str, dict]:
    return {
        spec["name"]: spec
        for op in operations
        if op["target"] == collection and op["op"] == "create_indexes"
        for spec in op["args"][0]
    }


def test_every_migration_applies_on_mongodb_and_creates_the_collections(migrated):
    created = {op["target"] for op in migrated if op["op"] == "create_collection"}
    assert {
        "conversations_conversation",
        "conversations_participant",
        "messaging_message",
        "identity_staffsubject",
        "auth_user",
        "django_admin_log",
        "django_session",
        "django_content_type",
        "django_migrations",
    } <= created


def test_model_indexes_reach_mongodb(migrated):
    messages = _indexes(migrated, "messaging_message")
    # History pages and gap fills: a unique range index on (conversation, seq).
    assert messages["message_conversation_seq_uniq"]["key"] == {"conversation_id": 1, "seq": 1}
    assert messages["message_conversation_seq_uniq"]["unique"] is True
    # Idempotency: unique where a key is set, and only there (messages without one are not indexed).
    key = messages["message_idempotency_key_uniq"]
    assert key["key"] == {"client_message_id": 1, "conversation_id": 1, "sender_id": 1, "sender_role": 1}
    assert key["unique"] is True
    assert key["partialFilterExpression"]["client_message_id"] == {"$gt": "", "$type": "string"}

    participants = _indexes(migrated, "conversations_participant")
    assert participants["participant_conversation_user_uniq"]["key"] == {"conversation_id": 1, "user_id": 1}
    assert participants["participant_conversation_user_uniq"]["unique"] is True
    assert participants["participant_user_idx"]["key"] == {"user_id": 1, "conversation_id": 1}

    conversations = _indexes(migrated, "conversations_conversation")
    assert conversations["conv_queue_idx"]["key"] == {"status": 1, "admin_count": 1, "updated_at": -1}


# ---- transactions -----------------------------------------------------------------------------------

SEND = """
import json
from conversations.services import conversation_create
from messaging.services import message_send
from tests.helpers import USER
from tests.mongo_offline import base
conversation = conversation_create(creator=USER, subject="help")
try:
    message_send(conversation=conversation, sender=USER, content="hi")
except Exception as exc:
    print("refused:", type(exc).__name__, exc)
print(json.dumps(base.operations, default=repr))
"""


def test_services_write_in_mongodb_transactions():
    result = shell(SEND)
    assert result.returncode == 0, result.stderr
    operations = json.loads(result.stdout.splitlines()[-1])
    ops = [(op["target"], op["op"]) for op in operations]
    # conversation_create: both documents in one transaction, with the webhook endpoints read to record
    # its conversation.created event (none here; the list is then kept for 5 s).
    assert ops[:5] == [
        ("session", "start_transaction"),
        ("conversations_conversation", "insert_many"),
        ("conversations_participant", "insert_many"),
        ("webhooks_webhookendpoint", "aggregate"),
        ("session", "commit_transaction"),
    ]
    # message_send: the sequence is reserved by an update inside the transaction, numbered from the
    # document's own counter ($add), the activity time never going back ($max).
    # (between the two: reads after commit, for the inbox event and auto-assignment)
    second = ops.index(("session", "start_transaction"), 1)
    send_ops = ops[second:]
    assert send_ops[-1] == ("session", "commit_transaction")
    reserve = next(op for op in operations[second:] if op["op"] == "update_many")
    assert reserve["target"] == "conversations_conversation"
    update = json.dumps(reserve["args"][1])
    assert '"$add": ["$last_seq"' in update and '"$max"' in update
    # The offline client has no documents, so the conversation reads as gone and nothing is inserted.
    assert ("messaging_message", "insert_many") not in send_ops
    assert "refused: ConversationClosed" in result.stdout


def test_without_a_replica_set_writes_are_refused_with_a_clear_error():
    result = shell(SEND, MONGO_OFFLINE_STANDALONE="1")
    assert result.returncode != 0
    assert "MongoDB transactions need a replica set" in result.stderr
    assert '"insert_many"' not in result.stdout  # nothing was written outside a transaction


def _write_conflict() -> DatabaseError:
    # What django-mongodb-backend raises when MongoDB aborts a transaction on a write conflict.
    error = DatabaseError("WriteConflict")
    error.__cause__ = OperationFailure(
        "WriteConflict error", code=112, details={"errorLabels": ["TransientTransactionError"]}
    )
    return error


def test_transient_transaction_errors_are_retried_and_others_are_not():
    calls = []

    @db.retry_transient
    def flaky(fail_times: int, error: Exception) -> str:
        calls.append(1)
        if len(calls) <= fail_times:
            raise error
        return "done"

    assert flaky(2, _write_conflict()) == "done" and len(calls) == 3
    calls.clear()
    with pytest.raises(DatabaseError):
        flaky(db.TRANSIENT_ATTEMPTS, _write_conflict())
    assert len(calls) == db.TRANSIENT_ATTEMPTS
    calls.clear()
    with pytest.raises(DatabaseError):
        flaky(1, DatabaseError("E11000 duplicate key"))
    assert len(calls) == 1


@pytest.mark.django_db
def test_inside_a_callers_transaction_a_transient_error_goes_to_the_caller():
    calls = []

    @db.retry_transient
    def conflict() -> None:
        calls.append(1)
        raise _write_conflict()

    with pytest.raises(DatabaseError), db.atomic():
        conflict()
    assert len(calls) == 1


# ---- the query compile check --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_compile_check_reports_a_query_mongodb_rejects(conversation):
    list(Message.objects.filter(conversation=conversation).extra(select={"one": "1"}))
    rejected = compile_check.take_rejections()
    assert rejected == ["Message Query: NotSupportedError: QuerySet.extra() is not supported on MongoDB."]


@pytest.mark.django_db
def test_the_compile_check_compiles_chat_queries_to_mql(conversation):
    send(conversation, "one")
    del offline.operations[:]
    message_page(conversation=conversation, limit=50)
    pipelines = [op["args"][0] for op in offline.operations if op["target"] == "messaging_message"]
    assert pipelines, "the history page was not compiled for MongoDB"
    assert conversation.pk in json.dumps(pipelines[0])


@pytest.mark.django_db
def test_portable_watermark_update_matches_the_batched_sql_one(conversation):
    """MongoDB takes the one-by-one form; SQL databases the prepared batch. Both move forward only."""
    first, second = send(conversation, "a"), send(conversation, "b")
    participant = Participant.objects.get(conversation=conversation, user_id=USER.user_id)
    Participant.objects.filter(pk=participant.pk).update(last_read_seq=0)
    key = (conversation.pk, USER.user_id, USER.role)

    Participant.objects.advance_watermarks_one_by_one({key: (second.seq, second.created_at)})
    Participant.objects.advance_watermarks_one_by_one({key: (first.seq, first.created_at)})  # never back
    portable = Participant.objects.values_list("last_read_seq", "last_read_at").get(pk=participant.pk)
    Participant.objects.filter(pk=participant.pk).update(last_read_seq=0)
    Participant.objects.advance_watermarks({key: (second.seq, second.created_at)})
    Participant.objects.advance_watermarks({key: (first.seq, first.created_at)})
    batched = Participant.objects.values_list("last_read_seq", "last_read_at").get(pk=participant.pk)
    assert portable == batched == (second.seq, second.created_at)


def test_check_dependencies_fails_on_a_mongodb_that_cannot_run_transactions():
    healthy = manage("check_dependencies", settings=OFFLINE_SETTINGS)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    standalone = manage("check_dependencies", settings=OFFLINE_SETTINGS, MONGO_OFFLINE_STANDALONE="1")
    assert standalone.returncode == 1
    assert "database" in standalone.stderr + standalone.stdout


def test_the_audit_logs_indexes_reach_mongodb(migrated):
    records = _indexes(migrated, "audit_auditrecord")
    # One record per number: a chain that forked would fail here, on MongoDB as on SQL.
    (seq,) = [spec for spec in records.values() if spec["key"] == {"seq": 1}]
    assert seq["unique"] is True
    assert records["audit_target_idx"]["key"] == {"target_id": 1, "action": 1, "created_at": 1}
    assert "audit_audithead" in {op["target"] for op in migrated if op["op"] == "create_collection"}
