"""Operator commands (manage.py): idle conversations closed and archived through the services, GDPR
erasure, statistics and the dependency probe. Called in-process with call_command, and as real
processes where the exit code is the point."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command
from django.utils import timezone

from chatservice.asgi import application
from chatservice.authentication import Principal
from chatservice.config import BASE_DIR
from conversations import selectors
from conversations import services as conversation_services
from conversations.models import Conversation, Participant
from conversations.services import ERASED_CONTENT, ERASED_USER_ID, user_erase
from messaging.models import Message
from tests.helpers import ADMIN, USER, send
from tests.servers import migrate, redis_server, server_env

# Generous: a loaded 2-core CI machine; a passing test never waits this long.
RECEIVE_TIMEOUT_S = 5
SUBPROCESS_TIMEOUT_S = 120


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def database() -> dict[str, list[dict[str, Any]]]:
    """Every stored row, for "nothing changed" assertions."""
    return {
        model.__name__: list(model.objects.order_by("pk").values()) for model in (Conversation, Participant, Message)
    }


def system_messages() -> list[Message]:
    return list(Message.objects.filter(message_type="SYSTEM").order_by("created_at", "seq"))


def idle_for(conversation: Conversation, days: float) -> None:
    """Move the conversation's last activity `days` into the past."""
    moment = timezone.now() - timedelta(days=days)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=moment)
    Conversation.objects.filter(pk=conversation.pk, last_message_at__isnull=False).update(last_message_at=moment)


def status(conversation: Conversation) -> str:
    return Conversation.objects.values_list("status", flat=True).get(pk=conversation.pk)


def open_conversation(creator: Principal = USER, subject: str = "Refund", **kwargs: Any) -> Conversation:
    return conversation_services.conversation_create(creator=creator, subject=subject, **kwargs)


# ---- close_inactive_conversations / archive_closed_conversations --------------------------------------


@pytest.fixture
def idle_and_busy(db) -> dict[str, Conversation]:
    """Two ACTIVE conversations idle for 31 days, one idle for 29, one CLOSED idle for 31."""
    conversations = {name: open_conversation(subject=name) for name in ("idle1", "idle2", "recent", "closed")}
    send(conversations["idle1"], "anyone?")
    conversation_services.conversation_update(conversation=conversations["closed"], actor=ADMIN, status="CLOSED")
    for name, days in (("idle1", 31), ("idle2", 31), ("recent", 29), ("closed", 31)):
        idle_for(conversations[name], days)
    return conversations


@pytest.mark.django_db
def test_close_inactive_dry_run_changes_nothing_and_lists_what_it_would_close(idle_and_busy):
    before = database()
    output = run("close_inactive_conversations", "--days", "30", "--dry-run", "--verbosity", "2")
    assert database() == before
    assert [m.content for m in system_messages()] == [
        "Conversation closed by Support"
    ]  # the fixture's own (display name)
    *listed, summary = output.splitlines()
    idle = Conversation.objects.filter(pk__in=[idle_and_busy["idle1"].pk, idle_and_busy["idle2"].pk])
    assert sorted(listed) == sorted(
        f"would close {c.pk} (last activity {c.updated_at.isoformat(timespec='seconds')})" for c in idle
    )
    assert summary.startswith("Dry run: would close 2 ACTIVE conversation(s) with no activity for 30 days (since ")
    assert summary.endswith("Nothing was changed.")


@pytest.mark.django_db
def test_close_inactive_closes_through_the_service_as_the_system_actor(idle_and_busy):
    participants = list(Participant.objects.order_by("pk").values())
    output = run("close_inactive_conversations", "--days", "30", "--batch-size", "1")
    assert {name: status(c) for name, c in idle_and_busy.items()} == {
        "idle1": "CLOSED",
        "idle2": "CLOSED",
        "recent": "ACTIVE",
        "closed": "CLOSED",
    }
    closures = [m for m in system_messages() if m.sender_id == "system"]
    assert sorted(m.conversation_id for m in closures) == sorted([idle_and_busy["idle1"].pk, idle_and_busy["idle2"].pk])
    for message in closures:
        assert (message.sender_role, message.content) == (
            "ADMIN",
            "Conversation closed by CareForAll support (no activity for 30 days)",
        )
        assert message.metadata == {
            "event": "status_changed",
            "status": "CLOSED",
            "reason": "inactive",
            "inactiveDays": 30,
            "actorName": "CareForAll support",
            "reasonText": "no activity for 30 days",
            "kind": "csat_request",  # the donor is asked to rate it
        }
        fresh = Conversation.objects.get(pk=message.conversation_id)
        assert message.seq == fresh.last_seq  # appended as the latest message
        assert fresh.updated_at >= timezone.now() - timedelta(minutes=1)  # closing is activity
    # The system actor takes part in nothing and assigns nobody.
    assert list(Participant.objects.order_by("pk").values()) == participants
    *progress, summary = output.splitlines()
    assert progress == ["closed 1/2", "closed 2/2"]
    assert summary.startswith("Closed 2 of 2 ACTIVE conversation(s) with no activity for 30 days (since ")
    # Running again finds nothing (the closures are activity, and they are no longer ACTIVE).
    again = run("close_inactive_conversations", "--days", "30")
    assert again.startswith("Closed 0 of 0 ACTIVE conversation(s)")


@pytest.mark.django_db
def test_a_message_newer_than_the_cutoff_keeps_a_conversation_open_even_if_updated_at_is_older(db):
    conversation = open_conversation()
    send(conversation, "hi")
    # Another worker's clock ran ahead: its message time is later than the row's updated_at.
    old = timezone.now() - timedelta(days=40)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=old, last_message_at=timezone.now())
    assert run("close_inactive_conversations", "--days", "30").startswith("Closed 0 of 0")
    assert status(conversation) == "ACTIVE"


@pytest.mark.django_db
def test_a_conversation_with_activity_after_it_was_selected_stays_open(idle_and_busy, monkeypatch):
    racer = idle_and_busy["idle2"]
    selected = selectors.in_pk_batches

    def batches_then_a_message(qs, batch_size) -> Iterator[list]:
        for batch in selected(qs, batch_size):
            if racer.pk in {c.pk for c in batch}:
                send(racer, "still here!")  # arrives after the selection, before the close
            yield batch

    monkeypatch.setattr(selectors, "in_pk_batches", batches_then_a_message)
    output = run("close_inactive_conversations", "--days", "30")
    assert status(racer) == "ACTIVE"
    assert status(idle_and_busy["idle1"]) == "CLOSED"
    assert not Message.objects.filter(conversation=racer, message_type="SYSTEM").exists()
    assert "Closed 1 of 2" in output and "1 had new activity meanwhile and were left as they are." in output


@pytest.mark.django_db
def test_archive_closed_archives_only_closed_conversations_untouched_for_long_enough(idle_and_busy):
    recently_closed = open_conversation(subject="recently closed")
    conversation_services.conversation_update(conversation=recently_closed, actor=ADMIN, status="CLOSED")
    before = database()
    dry = run("archive_closed_conversations", "--days", "30", "--dry-run")
    assert database() == before
    assert dry.startswith("Dry run: would archive 1 CLOSED conversation(s) with no activity for 30 days")

    output = run("archive_closed_conversations", "--days", "30")
    assert status(idle_and_busy["closed"]) == "ARCHIVED"
    assert status(recently_closed) == "CLOSED"
    assert {status(idle_and_busy[name]) for name in ("idle1", "idle2", "recent")} == {"ACTIVE"}  # never archived
    archived = system_messages()[-1]
    assert (archived.conversation_id, archived.sender_id, archived.content) == (
        idle_and_busy["closed"].pk,
        "system",
        "Conversation archived by CareForAll support (closed, no activity for 30 days)",
    )
    assert archived.metadata == {
        "event": "status_changed",
        "status": "ARCHIVED",
        "reason": "inactive",
        "inactiveDays": 30,
        "actorName": "CareForAll support",
        "reasonText": "closed, no activity for 30 days",
    }
    assert output.splitlines()[0] == "archived 1/1"
    assert output.splitlines()[1].startswith("Archived 1 of 1 CLOSED conversation(s)")


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["close_inactive_conversations", "archive_closed_conversations"])
@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "the following arguments are required: --days"),
        (["--days", "0"], "argument --days: must be between 1 and 36500 days, got 0"),
        (["--days", "-3"], "argument --days: must be between 1 and 36500 days, got -3"),
        (["--days", "1.5"], "argument --days: expected a whole number of days, got '1.5'"),
        (["--days", "99999"], "argument --days: must be between 1 and 36500 days, got 99999"),
        (["--days", "30", "--batch-size", "0"], "argument --batch-size: must be between 1 and 10000 rows, got 0"),
    ],
)
def test_idle_commands_refuse_bad_arguments(idle_and_busy, command, args, error):
    before = database()
    with pytest.raises(CommandError, match=error):
        run(command, *args)
    assert database() == before


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_connected_sockets_receive_the_closure(make_token):
    conversation = await sync_to_async(open_conversation)()
    communicator = WebsocketCommunicator(application, f"/ws/conversations/{conversation.pk}?token={make_token('u1')}")
    connected, _ = await communicator.connect(timeout=RECEIVE_TIMEOUT_S)
    assert connected
    await sync_to_async(idle_for)(conversation, 31)
    await sync_to_async(run)("close_inactive_conversations", "--days", "30")
    frame = json.loads(await communicator.receive_from(timeout=RECEIVE_TIMEOUT_S))
    assert frame["type"] == "system", frame
    assert frame["message"] == "Conversation closed by CareForAll support (no activity for 30 days)"
    assert (frame["conversationId"], frame["senderId"], frame["senderRole"]) == (conversation.pk, "system", "ADMIN")
    assert frame["metadata"] == {
        "event": "status_changed",
        "status": "CLOSED",
        "reason": "inactive",
        "inactiveDays": 30,
        "actorName": "CareForAll support",
        "reasonText": "no activity for 30 days",
        "kind": "csat_request",
    }
    # And the donor writing again reopens it, like after any close (staff would be refused).
    await communicator.send_to(text_data=json.dumps({"type": "message", "content": "hello?"}))
    frames = [json.loads(await communicator.receive_from(timeout=RECEIVE_TIMEOUT_S)) for _ in range(2)]
    assert sorted(f["type"] for f in frames) == ["message_sent", "system"]
    assert next(f for f in frames if f["type"] == "system")["message"] == "Conversation reopened by u1"
    await communicator.disconnect()


# ---- erase_user ------------------------------------------------------------------------------------

DONOR = Principal("donor-erase-me", "USER")
STAFF = Principal("agent-erase-me", "ADMIN")
OTHER_DONOR = Principal("u2", "USER")


@pytest.fixture
def history(db) -> dict[str, Conversation]:
    """DONOR's conversation with agent1 and STAFF in it; a conversation of another donor that STAFF
    was assigned to by agent1 (agent1 stays too); one STAFF took alone; one DONOR never touched."""
    own = open_conversation(DONOR, subject="My card ending 4242", metadata={"phone": "555-0100"})
    send(own, "Hello, this is Jane", sender=DONOR, client_message_id="k1", metadata={"mood": "worried"})
    send(
        own,
        "receipt",
        sender=DONOR,
        message_type="FILE",
        metadata={"url": "https://files.example/jane.pdf", "name": "jane.pdf"},
    )
    conversation_services.conversation_assign(conversation=own, actor=ADMIN, admin_id="agent1")
    send(own, "How can I help?", sender=ADMIN)
    conversation_services.conversation_assign(conversation=own, actor=STAFF, admin_id=STAFF.user_id)
    conversation_services.conversation_update(conversation=own, actor=DONOR, status="CLOSED")

    shared = open_conversation(OTHER_DONOR, subject="Other donor")
    send(shared, "Hi", sender=OTHER_DONOR)
    conversation_services.conversation_assign(conversation=shared, actor=ADMIN, admin_id="agent1")
    conversation_services.conversation_assign(conversation=shared, actor=ADMIN, admin_id=STAFF.user_id)
    send(shared, "On it", sender=STAFF, client_message_id="k1")

    alone = open_conversation(OTHER_DONOR, subject="Only STAFF")
    conversation_services.conversation_assign(conversation=alone, actor=STAFF, admin_id=STAFF.user_id)

    untouched = open_conversation(OTHER_DONOR, subject="Nobody erased here")
    send(untouched, "unrelated", sender=OTHER_DONOR)
    return {"own": own, "shared": shared, "alone": alone, "untouched": untouched}


def assigned_notice(admin_id: str, name: str) -> dict:
    return {"event": "assigned", "adminId": admin_id, "adminName": name, "actorName": name, "how": "self"}


def assert_no_trace(user_id: str) -> None:
    for model, rows in database().items():
        assert user_id not in repr(rows), model


def assert_sequences_contiguous() -> None:
    for conversation in Conversation.objects.all():
        seqs = list(Message.objects.filter(conversation=conversation).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, conversation.last_seq + 1))


@pytest.mark.django_db
def test_erase_donor_dry_run_counts_exactly_what_the_run_does(history):
    before = database()
    dry = run("erase_user", "--user", DONOR.user_id, "--role", "USER", "--dry-run")
    assert database() == before
    counts = (
        "3 message(s) anonymized, 0 SYSTEM notice(s) naming them rewritten, 1 participation(s) removed, "
        "1 conversation(s) they created pseudonymized, "
        "0 attachment(s) deleted; 1 conversation(s) touched"
    )
    assert dry == f"Dry run: would erase user 'donor-erase-me': {counts}. Nothing was changed.\n"
    output = run("erase_user", "--user", DONOR.user_id, "--role", "USER")
    assert output.splitlines()[-1] == f"Erased user 'donor-erase-me': {counts}."
    assert output.splitlines()[:-1] == [
        "messages anonymized 3/3",
        "conversations pseudonymized 1/1",  # found through their participation, so before it goes
        "participations removed 1/1",
    ]


@pytest.mark.django_db
def test_erase_donor_anonymizes_in_place_and_leaves_no_trace(history):
    own = history["own"]
    counts_before = {c.pk: (c.last_seq, c.status) for c in Conversation.objects.all()}
    others_before = list(Message.objects.exclude(sender_id=DONOR.user_id).exclude(message_type="SYSTEM").values())
    run("erase_user", "--user", DONOR.user_id, "--role", "USER")

    assert_no_trace(DONOR.user_id)
    # What they wrote, about themselves (the card as its words: bare digits also turn up in ids and times).
    for personal in ("Jane", "ending 4242", "555-0100", "jane.pdf", "worried"):
        assert personal not in repr(database())
    assert_sequences_contiguous()
    assert {c.pk: (c.last_seq, c.status) for c in Conversation.objects.all()} == counts_before
    messages = list(Message.objects.filter(conversation=own).order_by("seq"))
    assert [(m.sender_id, m.message_type, m.content, m.metadata, m.client_message_id) for m in messages] == [
        (ERASED_USER_ID, "TEXT", ERASED_CONTENT, {}, None),
        (ERASED_USER_ID, "TEXT", ERASED_CONTENT, {}, None),  # was a FILE: its url and name are gone
        ("agent1", "SYSTEM", "Support joined the conversation", assigned_notice("agent1", "Support"), None),
        ("agent1", "TEXT", "How can I help?", {}, None),
        (
            STAFF.user_id,
            "SYSTEM",
            "Support joined the conversation",
            assigned_notice(STAFF.user_id, "Support"),
            None,
        ),
        (
            ERASED_USER_ID,
            "SYSTEM",
            "Conversation closed by erased-user",
            {"event": "status_changed", "status": "CLOSED", "actorName": ERASED_USER_ID, "kind": "csat_request"},
            None,
        ),
    ]
    assert (
        list(Message.objects.exclude(sender_id=ERASED_USER_ID).exclude(message_type="SYSTEM").values()) == others_before
    )
    fresh = Conversation.objects.get(pk=own.pk)
    assert (fresh.created_by, fresh.subject, fresh.metadata, fresh.admin_count) == (ERASED_USER_ID, None, {}, 2)
    assert list(Participant.objects.filter(conversation=own).values_list("user_id", flat=True)) == [
        "agent1",
        STAFF.user_id,
    ]
    # Idempotent: nothing is left to erase, which is an error unless the caller accepts it.
    after = database()
    with pytest.raises(
        CommandError, match="no messages, participations or conversations reference user 'donor-erase-me'"
    ):
        run("erase_user", "--user", DONOR.user_id, "--role", "USER")
    assert run("erase_user", "--user", DONOR.user_id, "--role", "USER", "--missing-ok").startswith("Nothing to erase")
    assert database() == after


@pytest.mark.django_db
def test_erase_staff_member_rewrites_notices_and_keeps_admin_count(history):
    output = run("erase_user", "--user", STAFF.user_id, "--role", "ADMIN")
    assert output.splitlines()[-1] == (
        "Erased user 'agent-erase-me': 3 message(s) anonymized, 1 SYSTEM notice(s) naming them rewritten, "
        "3 participation(s) removed, 0 conversation(s) they created pseudonymized, "
        "0 attachment(s) deleted; 3 conversation(s) touched."
    )
    assert_no_trace(STAFF.user_id)
    assert_sequences_contiguous()
    notices = dict(
        Message.objects.filter(message_type="SYSTEM", metadata__event="assigned")
        .exclude(metadata__adminId="agent1")
        .values_list("conversation_id", "content")
    )
    assert notices == {
        history["own"].pk: "A former agent joined the conversation",
        history["shared"].pk: "A former agent was assigned by Support",
        history["alone"].pk: "A former agent joined the conversation",
    }
    admin_counts = dict(Conversation.objects.values_list("id", "admin_count"))
    assert (admin_counts[history["own"].pk], admin_counts[history["shared"].pk]) == (1, 1)
    assert admin_counts[history["alone"].pk] == 0  # nobody left: back in the unassigned queue
    assert Message.objects.get(
        conversation=history["shared"], sender_id=ERASED_USER_ID, message_type="TEXT"
    ).content == (ERASED_CONTENT)
    assert Message.objects.get(conversation=history["shared"], sender_id="u2").content == "Hi"  # others' words kept


@pytest.mark.django_db
def test_an_interrupted_erasure_is_completed_by_running_it_again(history):
    class Interrupted(Exception):
        pass

    def stop_after_first_participation(step: str, done: int, total: int) -> None:
        if step == "participations removed":
            raise Interrupted

    with pytest.raises(Interrupted):
        user_erase(user_id=STAFF.user_id, role="ADMIN", batch_size=1, on_progress=stop_after_first_participation)
    assert Participant.objects.filter(user_id=STAFF.user_id).count() == 2  # one batch committed
    output = run("erase_user", "--user", STAFF.user_id, "--role", "ADMIN")
    assert "2 participation(s) removed" in output and "0 message(s) anonymized" in output
    assert_no_trace(STAFF.user_id)
    admin_counts = dict(Conversation.objects.values_list("id", "admin_count"))
    assert [admin_counts[history[name].pk] for name in ("own", "shared", "alone")] == [1, 1, 0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "the following arguments are required: --user, --role"),
        (["--user", DONOR.user_id], "the following arguments are required: --role"),
        (["--user", DONOR.user_id, "--role", "donor"], "argument --role: invalid choice"),
        (["--user", "  ", "--role", "USER"], "--user must be 1..128 characters, not blank"),
        (["--user", "x" * 129, "--role", "USER"], "--user must be 1..128 characters, not blank"),
        (
            ["--user", "nobody", "--role", "USER"],
            "no messages, participations or conversations reference user 'nobody'",
        ),
        (
            ["--user", "nobody", "--role", "USER", "--dry-run"],
            "no messages, participations or conversations reference user 'nobody'",
        ),
        # A person is an id and a role: the donor's id, as staff, is nobody to erase.
        (
            ["--user", DONOR.user_id, "--role", "ADMIN"],
            "no messages, participations or conversations reference user 'donor-erase-me'",
        ),
        (["--user", ERASED_USER_ID, "--role", "USER"], "'erased-user' is reserved by the service, not a user"),
        (["--user", "system", "--role", "ADMIN"], "'system' is reserved by the service, not a user"),
    ],
)
def test_erase_user_refuses_bad_arguments(history, args, error):
    before = database()
    with pytest.raises(CommandError, match=error):
        run("erase_user", *args)
    assert database() == before


# ---- chat_stats ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_chat_stats_text_and_json(db):
    empty = run("chat_stats")
    assert empty.splitlines() == [
        "Conversations: 0 (ACTIVE 0, CLOSED 0, ARCHIVED 0)",
        "Messages: 0",
        "Unassigned ACTIVE conversations: 0",
        "Oldest unassigned: none",
        "First response: none yet",
        "Resolution: none yet",
        "CSAT: 0 ratings",
    ]
    assert json.loads(run("chat_stats", "--json"))["oldestUnassigned"] is None

    waiting_long, waiting = open_conversation(), open_conversation()
    send(waiting_long, "first")
    send(waiting, "second")
    opened = timezone.now() - timedelta(days=2, hours=3, minutes=10)
    Conversation.objects.filter(pk=waiting_long.pk).update(created_at=opened)
    assigned = open_conversation()
    conversation_services.conversation_assign(conversation=assigned, actor=ADMIN, admin_id="agent1")
    closed = open_conversation()
    conversation_services.conversation_update(conversation=closed, actor=ADMIN, status="CLOSED")
    Conversation.objects.filter(pk=closed.pk).update(created_at=opened - timedelta(days=1))  # older, but not ACTIVE
    archived = open_conversation()
    conversation_services.conversation_update(conversation=archived, actor=ADMIN, status="ARCHIVED")

    text = run("chat_stats").splitlines()
    assert text[:3] == [
        "Conversations: 5 (ACTIVE 3, CLOSED 1, ARCHIVED 1)",
        "Messages: 5",
        "Unassigned ACTIVE conversations: 2",
    ]
    assert text[3].startswith(f"Oldest unassigned: {waiting_long.pk}, opened 2d 3h ago (")
    assert text[4] == "First response: none yet"
    assert text[5] == "Resolution: p50 3d 3h, p90 3d 3h, p99 3d 3h (over 1 conversations)"  # created 3d 3h before

    stats = json.loads(run("chat_stats", "--json"))
    age = stats["oldestUnassigned"].pop("ageSeconds")
    assert stats == {
        "conversations": {"total": 5, "byStatus": {"ACTIVE": 3, "CLOSED": 1, "ARCHIVED": 1}},
        "messages": 5,
        "unassignedActive": 2,
        "firstResponseSeconds": {"count": 0},
        "resolutionSeconds": stats["resolutionSeconds"],
        "oldestUnassigned": {
            "conversationId": waiting_long.pk,
            "createdAt": opened.isoformat().replace("+00:00", "Z"),
        },
        "csat": {"count": 0, "average": None, "byAgent": {}},
    }
    assert timedelta(days=2, hours=3, minutes=10).total_seconds() <= age < timedelta(days=2, hours=4).total_seconds()
    resolution = stats["resolutionSeconds"]
    assert resolution["count"] == 1 and resolution["p50"] == resolution["p99"]
    assert timedelta(days=3, hours=3).total_seconds() <= resolution["p50"] < timedelta(days=3, hours=4).total_seconds()
    # a staff reply after the donor's message is a first response
    send(waiting, "answer", sender=ADMIN)
    Conversation.objects.filter(pk=waiting.pk).update(
        first_response_at=Conversation.objects.get(pk=waiting.pk).created_at + timedelta(minutes=5)
    )
    assert json.loads(run("chat_stats", "--json"))["firstResponseSeconds"] == {
        "count": 1,
        "p50": 300,
        "p90": 300,
        "p99": 300,
    }


# ---- check_dependencies ----------------------------------------------------------------------------


def redis_layer(url: str) -> dict[str, Any]:
    return {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}}


@pytest.mark.django_db
def test_check_dependencies_with_the_in_memory_layer():
    assert run("check_dependencies") == "database: ok\nchannelLayer: ok\njobs: ok\n"


@pytest.mark.django_db
def test_check_dependencies_follows_a_real_redis_going_down_and_up(settings):
    with redis_server() as redis:
        settings.CHANNEL_LAYERS = redis_layer(redis.url)
        assert run("check_dependencies") == "database: ok\nchannelLayer: ok\njobs: ok\n"
        redis.stop()
        with pytest.raises(CommandError, match=r"^unavailable: channelLayer \(error\)$"):
            run("check_dependencies")
        redis.start()
        assert run("check_dependencies") == "database: ok\nchannelLayer: ok\njobs: ok\n"


@pytest.mark.django_db
def test_check_dependencies_timeout_bounds_a_dependency_that_never_answers(settings):
    with socket.socket() as silent:  # accepts connections (backlog) and never says anything
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings.CHANNEL_LAYERS = redis_layer(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        with pytest.raises(CommandError, match=r"^unavailable: channelLayer \(timeout\)$"):
            run("check_dependencies", "--timeout", "0.3")


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "soon", "301"])
def test_check_dependencies_refuses_a_bad_timeout(timeout):
    with pytest.raises(CommandError, match="argument --timeout: "):
        run("check_dependencies", "--timeout", timeout)


# ---- as real processes: exit codes -----------------------------------------------------------------


@pytest.fixture(scope="module")
def process_env(keypair, tmp_path_factory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("commands") / "chat.sqlite3"
    env = server_env(keypair[1].decode(), f"sqlite:///{path}")
    migrate(env)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )


def test_exit_codes_of_real_processes(process_env):
    healthy = manage(process_env, "check_dependencies")
    assert (healthy.returncode, healthy.stdout) == (0, "database: ok\nchannelLayer: ok\njobs: ok\n"), healthy.stderr

    with redis_server() as redis:
        redis.stop()
        down = manage({**process_env, "REDIS_URL": redis.url}, "check_dependencies", "--timeout", "5")
    assert down.returncode == 1
    assert "channelLayer: error" in down.stdout
    assert "CommandError: unavailable: channelLayer (error)" in down.stderr

    bad = manage(process_env, "close_inactive_conversations", "--days", "0")
    assert bad.returncode == 2  # argparse: a usage error
    assert "argument --days: must be between 1 and 36500 days, got 0" in bad.stderr

    unknown = manage(process_env, "erase_user", "--user", "nobody", "--role", "USER")
    assert unknown.returncode == 1
    assert "reference user 'nobody'" in unknown.stderr

    done = manage(process_env, "close_inactive_conversations", "--days", "30")
    assert (done.returncode, done.stdout.split(" (")[0]) == (
        0,
        "Closed 0 of 0 ACTIVE conversation(s) with no activity for 30 days",
    ), done.stderr
