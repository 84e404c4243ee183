"""The audit log: the hash chain and `audit_verify` (intact, and every kind of change made behind the
service's back found and named), its append-only guards, the read-only admin with its export, and each
audited action recorded where it happens."""

from __future__ import annotations

import csv
import io
import itertools
import json
import threading
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from audit.chain import GENESIS_HASH, record_hash
from audit.context import operator_command
from audit.models import HEAD_ID, AuditAction, AuditHead, AuditRecord, AuditTarget, ImmutableRecord
from audit.selectors import hash_of
from audit.services import audit_record
from chatservice.authentication import Principal
from conversations.models import Conversation, Role
from tests.helpers import ADMIN, send

pytestmark = pytest.mark.django_db

STAFF = Principal("staff:maria", Role.ADMIN)
CHANGELIST = "/admin/audit/auditrecord/"
# The tampering below is done in SQL, as someone with database access would.
needs_sql = pytest.mark.skipif(connection.vendor == "mongodb", reason="the tampering in these tests is written in SQL")


def record(n: int = 1, **overrides) -> list[AuditRecord]:
    fields = {
        "actor": ADMIN,
        "action": AuditAction.CONVERSATION_ASSIGN,
        "target_type": AuditTarget.CONVERSATION,
        "target_id": "conv_x",
        "details": {"agentId": "agent1"},
        **overrides,
    }
    return [audit_record(**{**fields, "target_id": f"{fields['target_id']}{i}"}) for i in range(n)]


def verify(*args: str) -> str:
    out = StringIO()
    call_command("audit_verify", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def broken(*args: str) -> str:
    with pytest.raises(CommandError) as failure:
        verify(*args)
    assert failure.value.returncode == 1
    return str(failure.value)


def sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def ids() -> list[str]:
    return list(AuditRecord.objects.order_by("seq").values_list("pk", flat=True))


# ---- the chain -------------------------------------------------------------------------------------------


def test_records_are_numbered_and_chained_and_verify_names_the_head():
    records = record(4)
    assert [r.seq for r in records] == [1, 2, 3, 4]
    stored = list(AuditRecord.objects.order_by("seq"))
    assert stored[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(stored):
        assert after.prev_hash == before.hash
    for row in stored:
        assert hash_of(row) == row.hash  # what was hashed at write time is what is read back
    head = AuditHead.objects.get(pk=HEAD_ID)
    assert (head.seq, head.last_hash) == (4, stored[-1].hash)
    out = verify()
    assert f"4 record(s) checked; head #4 {stored[-1].hash}" in out


def test_an_empty_log_verifies():
    assert "0 record(s) checked" in verify()


def test_the_hash_covers_every_field():
    (row,) = record()
    base = {
        "seq": row.seq,
        "prev_hash": row.prev_hash,
        "actor_id": row.actor_id,
        "actor_role": row.actor_role,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "at": row.created_at,
        "details": row.details,
    }
    assert record_hash(**base) == row.hash
    for field, other in [
        ("seq", 2),
        ("prev_hash", "1" * 64),
        ("actor_id", "agent2"),
        ("actor_role", "USER"),
        ("action", AuditAction.CONVERSATION_UNASSIGN),
        ("target_type", AuditTarget.MESSAGE),
        ("target_id", "conv_y"),
        ("at", row.created_at + timedelta(milliseconds=1)),
        ("details", {"agentId": "agent2"}),
    ]:
        assert record_hash(**{**base, field: other}) != row.hash, field


def test_a_record_commits_or_rolls_back_with_the_callers_transaction():
    record()

    class Undone(Exception):
        pass

    with pytest.raises(Undone), transaction.atomic():
        record(target_id="conv_rolled_back")
        raise Undone
    assert AuditRecord.objects.count() == 1
    assert AuditHead.objects.get(pk=HEAD_ID).seq == 1  # the reservation went with it
    (after,) = record(target_id="conv_next")
    assert after.seq == 2
    verify()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"action": "conversation.stolen"}, ValueError),
        ({"target_type": "planet"}, ValueError),
        ({"target_id": "x" * 201}, ValueError),
        ({"details": {"ratio": float("nan")}}, ValueError),
        ({"details": {"when": timezone.now()}}, TypeError),
    ],
)
def test_what_the_log_cannot_hold_is_refused_and_nothing_is_stored(overrides, error):
    with pytest.raises(error):
        record(**overrides)
    assert AuditRecord.objects.count() == 0


def test_operator_records_have_no_actor_and_name_the_command():
    with operator_command("retention_purge"):
        (row,) = record(actor=None, action=AuditAction.RETENTION_PURGE, target_type=AuditTarget.RETENTION)
    assert (row.actor_id, row.actor_role) == ("", "OPERATOR")
    assert row.details["operator"]["command"] == "retention_purge"
    assert row.details["operator"]["osUser"]
    (outside,) = record(actor=None, target_id="conv_plain")
    assert "operator" not in outside.details


def test_concurrent_appends_never_fork_the_chain(transactional_db):
    writers, each = 6, 5
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait()
            for n in range(each):
                audit_record(
                    actor=Principal(f"agent{index}", Role.ADMIN),
                    action=AuditAction.CONVERSATION_ASSIGN,
                    target_type=AuditTarget.CONVERSATION,
                    target_id=f"conv_{index}_{n}",
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(AuditRecord.objects.values_list("seq", flat=True)) == list(range(1, writers * each + 1))
    assert f"{writers * each} record(s) checked" in verify()


# ---- tampering, found and named ----------------------------------------------------------------------


@needs_sql
def test_a_changed_record_is_named():
    record(4)
    third = ids()[2]
    sql("UPDATE audit_auditrecord SET details = %s WHERE _id = %s", ['{"agentId": "someone-else"}', third])
    message = broken()
    assert f"record #3 ({third})" in message
    assert "changed after it was written" in message
    assert "2 record(s) intact" in message


@needs_sql
def test_a_changed_actor_or_time_is_named():
    record(3)
    second = ids()[1]
    sql("UPDATE audit_auditrecord SET actor_id = %s WHERE _id = %s", ["agent9", second])
    assert f"record #2 ({second})" in broken()


@needs_sql
def test_a_deleted_record_is_named_by_the_one_after_it():
    record(4)
    second, third = ids()[1:3]
    sql("DELETE FROM audit_auditrecord WHERE _id = %s", [second])
    message = broken()
    assert f"record #3 ({third})" in message
    assert "record #2 is missing before it" in message


@needs_sql
def test_reordered_records_are_named():
    record(4)
    second, third = ids()[1:3]
    # Swap the numbers of #2 and #3 (through a free number: seq is unique).
    sql("UPDATE audit_auditrecord SET seq = %s WHERE _id = %s", [1000, second])
    sql("UPDATE audit_auditrecord SET seq = %s WHERE _id = %s", [2, third])
    sql("UPDATE audit_auditrecord SET seq = %s WHERE _id = %s", [3, second])
    message = broken()
    assert f"record #2 ({third})" in message


def _insert(seq: int, prev_hash: str, digest: str, record_id: str = "aud_forged") -> None:
    at = AuditRecord.objects.order_by("seq").first().created_at
    sql(
        "INSERT INTO audit_auditrecord (_id, seq, created_at, actor_id, actor_role, action, target_type, target_id,"
        " details, prev_hash, hash) VALUES (%s, %s, %s, 'agent1', 'ADMIN', 'conversation.read', 'conversation',"
        " 'conv_forged', '{}', %s, %s)",
        [record_id, seq, at, prev_hash, digest],
    )


def _make_room_at(seq: int) -> None:
    for row in AuditRecord.objects.filter(seq__gte=seq).order_by("-seq"):
        sql("UPDATE audit_auditrecord SET seq = %s WHERE _id = %s", [row.seq + 1, row.pk])


@needs_sql
def test_an_inserted_record_is_named():
    record(4)
    _make_room_at(3)
    _insert(3, AuditRecord.objects.get(seq=2).hash, "f" * 64)
    message = broken()
    assert "record #3 (aud_forged)" in message


@needs_sql
def test_an_inserted_record_hashed_like_a_real_one_breaks_the_chain_at_the_next():
    record(4)
    original_third = ids()[2]
    _make_room_at(3)
    prev = AuditRecord.objects.get(seq=2).hash
    at = AuditRecord.objects.get(seq=1).created_at
    forged_hash = record_hash(
        seq=3,
        prev_hash=prev,
        actor_id="agent1",
        actor_role="ADMIN",
        action="conversation.read",
        target_type="conversation",
        target_id="conv_forged",
        at=at,
        details={},
    )
    _insert(3, prev, forged_hash)
    message = broken()
    assert f"record #4 ({original_third})" in message


@needs_sql
def test_records_removed_from_the_end_are_found_against_the_head():
    record(4)
    sql("DELETE FROM audit_auditrecord WHERE seq >= %s", [3])
    message = broken()
    assert "record #3: missing: the head says the chain has 4 records, 2 were found" in message


@needs_sql
def test_a_record_added_past_the_head_is_named():
    record(2)
    last = AuditRecord.objects.get(seq=2)
    _insert(3, last.hash, "e" * 64)
    assert "record #3 (aud_forged)" in broken()
    assert "past the chain's head" in broken()


@needs_sql
def test_a_missing_head_is_reported():
    record(2)
    sql("DELETE FROM audit_audithead", [])
    assert "head row is missing" in broken()


@needs_sql
def test_a_chain_rewritten_and_hashed_again_is_caught_by_an_anchor():
    record(3)
    anchor = f"2:{AuditRecord.objects.get(seq=2).hash}"
    assert "3 record(s) checked" in verify("--anchor", anchor)
    # Someone with the database changes #2 and recomputes every hash from there, head included.
    rows = list(AuditRecord.objects.order_by("seq"))
    prev = rows[0].hash
    for row in rows[1:]:
        details = {"agentId": "someone-else"} if row.seq == 2 else row.details
        fields = {
            "seq": row.seq,
            "actor_id": row.actor_id,
            "actor_role": row.actor_role,
            "action": row.action,
            "target_type": row.target_type,
            "target_id": row.target_id,
            "at": row.created_at,
            "details": details,
        }
        digest = record_hash(prev_hash=prev, **fields)
        sql(
            "UPDATE audit_auditrecord SET details = %s, prev_hash = %s, hash = %s WHERE _id = %s",
            [json.dumps(details), prev, digest, row.pk],
        )
        prev = digest
    sql("UPDATE audit_audithead SET last_hash = %s", [prev])
    verify()  # the chain alone holds again
    message = broken("--anchor", anchor)
    assert f"record #2 ({rows[1].pk})" in message and "the chain was rewritten" in message


def test_an_anchor_past_the_chain_is_reported():
    record(1)
    assert "record #5" in broken("--anchor", f"5:{'a' * 64}")


def test_audit_verify_refuses_a_malformed_anchor():
    with pytest.raises(CommandError):
        verify("--anchor", "two:abc")


# ---- append-only -------------------------------------------------------------------------------------


def test_the_model_refuses_every_change_and_delete():
    (row,) = record()
    row.details = {"agentId": "someone-else"}
    with pytest.raises(ImmutableRecord):
        row.save()
    with pytest.raises(ImmutableRecord):
        row.delete()
    with pytest.raises(ImmutableRecord):
        AuditRecord.objects.filter(pk=row.pk).update(details={})
    with pytest.raises(ImmutableRecord):
        AuditRecord.objects.update(details={})
    with pytest.raises(ImmutableRecord):
        AuditRecord.objects.all().delete()
    with pytest.raises(ImmutableRecord):
        AuditRecord.objects.bulk_update([row], ["details"])
    with pytest.raises(ImmutableRecord):
        AuditRecord.objects.update_or_create(pk=row.pk, defaults={"details": {}})
    assert AuditRecord.objects.get(pk=row.pk).details == {"agentId": "agent1"}
    verify()


# ---- admin -------------------------------------------------------------------------------------------


@pytest.fixture
def superuser() -> Client:
    client = Client()
    client.force_login(User.objects.create_user("maria", password="pw-123456", is_staff=True, is_superuser=True))
    return client


def test_the_admin_refuses_add_change_and_delete_even_to_a_superuser(superuser):
    (row,) = record()
    before = AuditRecord.objects.get(pk=row.pk)
    assert superuser.get(CHANGELIST + "add/").status_code == 403
    assert superuser.post(CHANGELIST + "add/", {"action": "user.erase"}).status_code == 403
    assert superuser.post(f"{CHANGELIST}{row.pk}/change/", {"details": "{}"}).status_code == 403
    assert superuser.get(f"{CHANGELIST}{row.pk}/delete/").status_code == 403
    assert superuser.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = superuser.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert bulk.status_code == 200  # "no action selected": there is no such action
    assert "delete_selected" not in superuser.get(CHANGELIST).content.decode()
    after = AuditRecord.objects.get(pk=row.pk)
    assert (after.details, after.hash) == (before.details, before.hash)
    assert AuditRecord.objects.count() == 1
    verify()


def test_the_admin_list_filters_searches_and_shows_details_as_rows(superuser, conversation):
    record(2)
    with operator_command("erase_user"):
        audit_record(
            actor=None,
            action=AuditAction.USER_ERASE,
            target_type=AuditTarget.USER,
            target_id="u9",
            details={"role": "USER", "note": "<script>x</script>"},
        )
    page = superuser.get(CHANGELIST)
    assert page.status_code == 200 and page.context["cl"].result_count == 3
    assert superuser.get(CHANGELIST + "?action__exact=user.erase").context["cl"].result_count == 1
    assert superuser.get(CHANGELIST + "?actor_role__exact=OPERATOR").context["cl"].result_count == 1
    assert superuser.get(CHANGELIST + "?actor_role__exact=ADMIN").context["cl"].result_count == 2
    assert superuser.get(CHANGELIST + "?q=u9").context["cl"].result_count == 1
    today = timezone.now()
    dated = f"?created_at__year={today.year}&created_at__month={today.month}&created_at__day={today.day}"
    assert superuser.get(CHANGELIST + dated).context["cl"].result_count == 3
    assert superuser.get(CHANGELIST + f"?created_at__year={today.year - 1}").context["cl"].result_count == 0
    erased = AuditRecord.objects.get(action="user.erase")
    detail = superuser.get(f"{CHANGELIST}{erased.pk}/change/")
    body = detail.content.decode()
    assert detail.status_code == 200
    assert "<th scope='row'>role</th><td>USER</td>" in body
    assert "&lt;script&gt;x&lt;/script&gt;" in body and "<script>x</script>" not in body
    assert "Operator: erase_user" in body
    assert "<textarea" not in body and 'name="details"' not in body  # nothing to edit
    assert "Export CSV" in page.content.decode()


def test_the_export_downloads_the_filtered_list_and_is_itself_recorded(superuser):
    record(2)
    audit_record(
        actor=ADMIN,
        action=AuditAction.USER_ERASE,
        target_type=AuditTarget.USER,
        target_id="=cmd|' /C calc'!A0",
        details={"role": "USER"},
    )
    response = superuser.get(CHANGELIST + "export/json/?action__exact=user.erase")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="audit-log.json"'
    rows = json.loads(response.content)
    assert [row["action"] for row in rows] == ["user.erase"]
    exported = rows[0]
    # Everything the hash covers, as hashed: the export checks without the database.
    assert exported["hash"] == record_hash(
        seq=exported["seq"],
        prev_hash=exported["prevHash"],
        actor_id=exported["actorId"],
        actor_role=exported["actorRole"],
        action=exported["action"],
        target_type=exported["targetType"],
        target_id=exported["targetId"],
        at=datetime.fromisoformat(exported["createdAt"]),
        details=exported["details"],
    )
    export = AuditRecord.objects.get(action=AuditAction.AUDIT_EXPORT)
    assert (export.actor_id, export.actor_role) == ("staff:maria", "ADMIN")
    assert export.details == {"format": "json", "filters": {"action__exact": "user.erase"}, "records": 1}

    response = superuser.get(CHANGELIST + "export/csv/?actor_role__exact=ADMIN")
    assert response["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    # Oldest first, the two exports' own records included (each is recorded before it is read).
    assert [int(row["seq"]) for row in table] == [1, 2, 3, 4, 5]
    assert [row["action"] for row in table[3:]] == ["audit.export", "audit.export"]
    assert table[2]["targetId"] == "'=cmd|' /C calc'!A0"  # no formula for a spreadsheet to run
    assert json.loads(table[0]["details"]) == {"agentId": "agent1"}
    assert superuser.get(CHANGELIST + "export/xml/").status_code == 404
    verify()


def test_an_export_too_large_for_memory_is_refused_until_the_list_is_narrowed(superuser, monkeypatch):
    monkeypatch.setattr("audit.admin.EXPORT_MAX_RECORDS", 2)
    record(3)
    response = superuser.get(CHANGELIST + "export/csv/", follow=True)
    assert response.redirect_chain[-1][0] == CHANGELIST + "?"
    assert "3 records are too many for one export" in response.content.decode()
    assert AuditRecord.objects.filter(action=AuditAction.AUDIT_EXPORT).count() == 0
    narrowed = superuser.get(CHANGELIST + "export/csv/?q=conv_x0")
    assert narrowed.status_code == 200 and len(narrowed.content.decode().splitlines()) == 2


def test_staff_without_the_view_permission_see_no_records_and_cannot_export(conversation):
    record()
    client = Client()
    clerk = User.objects.create_user("clerk", password="pw-123456", is_staff=True)
    client.force_login(clerk)
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(CHANGELIST + "export/csv/").status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_auditrecord"))
    client.force_login(User.objects.get(pk=clerk.pk))
    assert client.get(CHANGELIST).status_code == 200
    assert client.get(CHANGELIST + "export/csv/").status_code == 200
    assert client.post(f"{CHANGELIST}{AuditRecord.objects.first().pk}/delete/", {"post": "yes"}).status_code == 403


# ---- the actions, where they happen ------------------------------------------------------------------


def actions(target_id: str | None = None) -> list[tuple[str, str, str, dict]]:
    rows = AuditRecord.objects.order_by("seq")
    if target_id is not None:
        rows = rows.filter(target_id=target_id)
    return [(r.action, r.actor_id, r.actor_role, r.details) for r in rows]


def test_assign_unassign_and_transfer_by_staff_are_recorded(agent, client_for, conversation):
    from desk.models import AgentProfile

    AgentProfile.objects.create(agent_id="agent2")
    base = f"/api/conversations/{conversation.pk}"
    assert agent.post(f"{base}/assign", {}, format="json").status_code == 200
    assert agent.post(f"{base}/assign", {}, format="json").status_code == 200  # already: nothing happened
    assert agent.post(f"{base}/transfer", {"adminId": "agent2"}, format="json").status_code == 200
    other = client_for("agent2", "ADMIN")
    assert other.post(f"{base}/unassign", {}, format="json").status_code == 200
    assert actions(conversation.pk) == [
        ("conversation.assign", "agent1", "ADMIN", {"agentId": "agent1"}),
        ("conversation.transfer", "agent1", "ADMIN", {"from": "agent1", "to": "agent2"}),
        ("conversation.unassign", "agent2", "ADMIN", {"agentId": "agent2"}),
    ]
    verify()


def test_a_refused_change_leaves_no_record(agent, conversation):
    response = agent.post(f"/api/conversations/{conversation.pk}/unassign", {}, format="json")
    assert response.status_code == 409
    assert AuditRecord.objects.count() == 0


def test_status_changes_and_snoozes_by_staff_are_recorded_a_donors_are_not(agent, donor, conversation):
    base = f"/api/conversations/{conversation.pk}"
    assert donor.put(base, {"status": "CLOSED"}, format="json").status_code == 200
    assert agent.put(base, {"status": "ACTIVE"}, format="json").status_code == 200
    until = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    assert agent.put(base, {"snoozedUntil": until.isoformat()}, format="json").status_code == 200
    assert agent.put(base, {"snoozedUntil": None}, format="json").status_code == 200
    assert agent.put(base, {"status": "ARCHIVED"}, format="json").status_code == 200
    assert actions(conversation.pk) == [
        ("conversation.status", "agent1", "ADMIN", {"from": "CLOSED", "to": "ACTIVE"}),
        ("conversation.snooze", "agent1", "ADMIN", {"until": until.isoformat()}),
        ("conversation.snooze", "agent1", "ADMIN", {"until": None}),
        ("conversation.status", "agent1", "ADMIN", {"from": "ACTIVE", "to": "ARCHIVED"}),
    ]


def test_console_actions_are_recorded_as_the_console_account(superuser, conversation):
    superuser.post("/admin/conversations/conversation/", {"action": "close", "_selected_action": [conversation.pk]})
    assert actions(conversation.pk) == [
        ("conversation.status", "staff:maria", "ADMIN", {"from": "ACTIVE", "to": "CLOSED"})
    ]


def test_the_idle_commands_are_recorded_as_the_operator(conversation):
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(days=40))
    call_command("close_inactive_conversations", days=30, stdout=StringIO())
    ((action, actor_id, role, details),) = actions(conversation.pk)
    assert (action, actor_id, role) == ("conversation.status", "", "OPERATOR")
    assert details["from"] == "ACTIVE" and details["to"] == "CLOSED"
    assert details["reason"] == "no activity for 30 days"
    assert details["operator"]["command"] == "close_inactive_conversations"


def test_the_close_schedule_is_recorded_as_the_operator(settings, transactional_db, conversation):
    from jobs.runner import run_schedule  # it closes its connections when done: no test transaction survives that

    settings.CHAT = {**settings.CHAT, "CLOSE_INACTIVE_DAYS": 30}
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(days=40))
    run_schedule("close_inactive_conversations")
    ((_, actor_id, role, details),) = actions(conversation.pk)
    assert (actor_id, role, details["operator"]) == ("", "OPERATOR", {"schedule": "close_inactive_conversations"})


def test_a_note_is_recorded_once_without_its_text(agent, conversation):
    base = f"/api/conversations/{conversation.pk}/messages"
    note = agent.post(
        base, {"content": "donor sounds upset", "messageType": "NOTE", "clientMessageId": "n1"}, format="json"
    )
    assert note.status_code == 201
    assert (
        agent.post(
            base, {"content": "donor sounds upset", "messageType": "NOTE", "clientMessageId": "n1"}, format="json"
        ).status_code
        == 200
    )  # a retry
    send(conversation, "a reply", sender=ADMIN)  # not a note: not audited
    ((action, actor_id, role, details),) = actions(note.json()["messageId"])
    assert (action, actor_id, role, details) == ("note.create", "agent1", "ADMIN", {"conversationId": conversation.pk})
    assert "upset" not in json.dumps(actions())


def test_staff_opening_a_conversation_is_recorded_once_per_day(agent, donor, client_for, conversation, monkeypatch):
    conversation_url = f"/api/conversations/{conversation.pk}"
    assert donor.get(conversation_url).status_code == 200
    assert donor.get(conversation_url + "/messages").status_code == 200
    assert AuditRecord.objects.count() == 0  # a donor reading their own conversation is not audited
    for _ in range(2):
        assert agent.get(conversation_url).status_code == 200
        assert agent.get(conversation_url + "/messages").status_code == 200
    assert client_for("agent2", "ADMIN").get(conversation_url + "/messages").status_code == 200
    # A donor with a staff member's id is another person: it records nothing.
    assert client_for("agent1", "USER").get(conversation_url).status_code == 404
    assert actions() == [
        ("conversation.read", "agent1", "ADMIN", {}),
        ("conversation.read", "agent2", "ADMIN", {}),
    ]
    tomorrow = timezone.now() + timedelta(days=1)
    monkeypatch.setattr("audit.services.timezone.now", lambda: tomorrow)
    assert agent.get(conversation_url).status_code == 200
    assert agent.get(conversation_url).status_code == 200
    assert [a for a, *_ in actions()] == ["conversation.read"] * 3
    verify()


def test_two_reads_racing_past_the_first_check_make_one_record(agent, conversation, monkeypatch):
    from audit import selectors

    checks: list[bool] = []
    real = selectors.read_recorded

    def first_check_misses(**kwargs) -> bool:
        found = real(**kwargs)
        checks.append(found)
        return False if len(checks) in (1, 3) else found  # both requests' first checks see nothing

    monkeypatch.setattr(selectors, "read_recorded", first_check_misses)
    url = f"/api/conversations/{conversation.pk}"
    assert agent.get(url).status_code == 200
    assert agent.get(url).status_code == 200
    assert AuditRecord.objects.filter(action="conversation.read").count() == 1
    assert AuditHead.objects.get(pk=HEAD_ID).seq == 1  # the second reservation was rolled back


def test_the_console_opening_a_conversation_is_recorded(superuser, conversation):
    # The console's conversation page is the workspace, which reads the conversation through the API.
    page = superuser.get(f"/admin/conversations/conversation/{conversation.pk}/change/")
    assert page.status_code == 302 and f"c={conversation.pk}" in page["Location"]
    assert superuser.get(f"/api/conversations/{conversation.pk}").status_code == 200
    assert actions() == [("conversation.read", "staff:maria", "ADMIN", {})]


def test_an_erasure_is_recorded_once_complete_naming_the_command(conversation):
    send(conversation, "my address is 1 Main St")
    call_command("erase_user", user="u1", role="USER", dry_run=True, stdout=StringIO())
    assert AuditRecord.objects.count() == 0  # a dry run changes nothing, records nothing
    call_command("erase_user", user="u1", role="USER", stdout=StringIO())
    ((action, actor_id, role, details),) = actions("u1")
    assert (action, actor_id, role) == ("user.erase", "", "OPERATOR")
    assert details["role"] == "USER"
    assert details["messagesAnonymized"] == 1 and details["conversationsTouched"] == 1
    assert details["operator"]["command"] == "erase_user"
    assert "Main St" not in json.dumps(details)
    call_command("erase_user", user="u1", role="USER", missing_ok=True, stdout=StringIO())
    assert AuditRecord.objects.count() == 1  # nothing left to erase: nothing done, nothing recorded


def test_webhook_endpoint_changes_are_recorded_without_the_secret(settings, superuser):
    from webhooks.models import WebhookEndpoint

    settings.CHAT = {**settings.CHAT, "WEBHOOK_ALLOW_PRIVATE": True}
    call_command("webhook_add", url="http://127.0.0.1:9/hooks?token=abc", events="message.created", stdout=StringIO())
    endpoint = WebhookEndpoint.objects.get()
    form = {
        "url": "http://127.0.0.1:9/hooks2",
        "description": "CRM",
        "events": ["message.created", "conversation.read"],
        "active": "on",
        "secret": "whsec_" + "A" * 32,
    }
    assert superuser.post(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/", form).status_code == 302
    assert superuser.post("/admin/webhooks/webhookendpoint/add/", form).status_code == 302
    added = WebhookEndpoint.objects.exclude(pk=endpoint.pk).get()
    delete = superuser.post(f"/admin/webhooks/webhookendpoint/{added.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 302
    records = actions()
    assert [(a, who, role) for a, who, role, _ in records] == [
        ("webhook.create", "", "OPERATOR"),
        ("webhook.update", "staff:maria", "ADMIN"),
        ("webhook.create", "staff:maria", "ADMIN"),
        ("webhook.delete", "staff:maria", "ADMIN"),
    ]
    created, updated = records[0][3], records[1][3]
    assert created["url"] == "http://127.0.0.1:9/hooks?…"  # the query may carry a receiver's token
    assert created["operator"]["command"] == "webhook_add"
    assert updated["changed"] == ["description", "events", "secret", "url"]
    assert updated["events"] == ["conversation.read", "message.created"]
    everything = json.dumps(records)
    assert endpoint.secret not in everything and "A" * 32 not in everything and "abc" not in everything
    assert [r.target_id for r in AuditRecord.objects.order_by("seq")] == [endpoint.pk, endpoint.pk, added.pk, added.pk]
    verify()


def test_a_donor_cannot_reach_the_audit_log(donor):
    assert donor.get(CHANGELIST).status_code == 302  # to the admin login
