"""Webhooks (Standard Webhooks) against a real local HTTP receiver: signed, retried, in order per
conversation, exactly the REST representation, SSRF refusals at creation and at delivery."""

from __future__ import annotations

import json
import random
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from standardwebhooks.webhooks import Webhook

from chatservice.errors import ServiceError
from conversations import services as conversation_services
from jobs import runner
from jobs.kinds import sweep
from jobs.models import Job, JobStatus
from tests.helpers import ADMIN, USER, send, use_celery
from tests.servers import celery_worker, database_url, redis_server, terminate
from webhooks.models import WebhookEndpoint
from webhooks.services import DELIVER_KIND, endpoint_create

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_S = 30  # every expected delivery arrives within this, or the test fails


class Receiver:
    """A real HTTP server on 127.0.0.1 that records deliveries and fails when told to."""

    def __init__(self) -> None:
        self.received: list[dict] = []  # every request, failed ones included
        self.fail_first = 0
        self.fail_rate = 0.0
        self.hang_first = 0  # requests held without an answer until `release` (a sender dies meanwhile)
        self.hung = threading.Event()
        self.released = threading.Event()
        self.rng = random.Random(7)
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                if receiver.hang_first > 0:
                    receiver.hang_first -= 1
                    receiver.hung.set()
                    receiver.released.wait(timeout=WAIT_S)
                    return  # no answer: the sender was killed meanwhile
                with receiver.changed:
                    failed = receiver.fail_first > 0 or receiver.rng.random() < receiver.fail_rate
                    receiver.fail_first = max(receiver.fail_first - 1, 0)
                    receiver.received.append(
                        {"headers": dict(self.headers), "body": body, "ok": not failed, "path": self.path}
                    )
                    receiver.changed.notify_all()
                self.send_response(503 if failed else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[dict]:
        return [r for r in self.received if r["ok"]]

    def wait_for(self, count: int) -> list[dict]:
        deadline = time.monotonic() + WAIT_S
        with self.changed:
            while len(self.delivered()) < count and time.monotonic() < deadline:
                self.changed.wait(timeout=deadline - time.monotonic())
        return self.delivered()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.CHAT = {**settings.CHAT, "WEBHOOK_ALLOW_PRIVATE": True, "JOB_RETRY_BASE_S": 0.05, "JOB_SWEEP_S": 0.05}
    served = Receiver()
    runner.embedded().start_scheduler()  # the sweep hands out retries, as beat does in production
    yield served
    runner.stop_embedded()
    served.close()


def test_a_receiver_failing_three_times_gets_the_event_once_signed_with_one_id(receiver):
    endpoint = endpoint_create(url=receiver.url, events=["message.created"])
    conversation = conversation_services.conversation_create(creator=USER, subject="Receipt")
    receiver.fail_first = 3
    message = send(conversation, "where is my receipt?")
    (delivery,) = receiver.wait_for(1)
    assert [r["ok"] for r in receiver.received] == [False, False, False, True]
    assert len({r["headers"]["webhook-id"] for r in receiver.received}) == 1  # stable across retries
    assert len({r["body"] for r in receiver.received}) == 1  # the same bytes every time
    verified = Webhook(endpoint.secret).verify(delivery["body"], delivery["headers"])
    assert verified["type"] == "message.created"
    assert verified["data"]["messageId"] == message.pk and verified["data"]["content"] == "where is my receipt?"
    assert delivery["headers"]["webhook-signature"].startswith("v1,")
    with pytest.raises(Exception):  # noqa: B017 - any verification failure
        Webhook(endpoint.secret).verify(delivery["body"].replace("receipt", "refund"), delivery["headers"])
    runner.stop_embedded()  # the runner records the answer after the receiver has it
    job = Job.objects.get(kind=DELIVER_KIND)
    assert (job.status, job.attempts) == (JobStatus.DONE, 4)


def test_twenty_events_of_a_conversation_arrive_in_order_while_the_receiver_fails_randomly(receiver):
    endpoint_create(url=receiver.url, events=["message.created"])
    conversation = conversation_services.conversation_create(creator=USER, subject="Order")
    receiver.fail_rate = 0.3
    sent = [send(conversation, f"message {n}").pk for n in range(20)]
    delivered = receiver.wait_for(20)
    assert any(not r["ok"] for r in receiver.received)  # the receiver did fail along the way
    assert [json.loads(r["body"])["data"]["messageId"] for r in delivered] == sent


def test_conversation_events_carry_the_rest_representation_and_notes_only_when_asked(receiver, agent):
    plain = endpoint_create(url=receiver.url + "?plain", events=["conversation.created", "message.created"])
    with_notes = endpoint_create(url=receiver.url + "?notes", events=["message.created"], include_notes=True)
    conversation = conversation_services.conversation_create(creator=USER, subject="Refund")
    (created,) = receiver.wait_for(1)
    body = json.loads(created["body"])
    assert body["type"] == "conversation.created"
    assert body["data"] == agent.get(f"/api/conversations/{conversation.pk}").json()
    send(conversation, "internal", sender=ADMIN, message_type="NOTE")
    note = json.loads(receiver.wait_for(2)[1]["body"])
    assert (note["type"], note["data"]["messageType"]) == ("message.created", "NOTE")
    runner.stop_embedded()
    assert len(receiver.delivered()) == 2  # the endpoint without include_notes got no note
    assert Job.objects.filter(kind=DELIVER_KIND, payload__endpointId=plain.pk).count() == 1
    assert Job.objects.filter(kind=DELIVER_KIND, payload__endpointId=with_notes.pk).count() == 1


def test_a_message_read_before_its_delivery_renders_with_its_read_receipts(receiver):
    """The body is rendered at the first attempt: by then the message may have been read, and readAt must
    be a string like the REST answer's (it was a datetime json.dumps refused, forever, on every retry)."""
    conversation = conversation_services.conversation_create(creator=USER, subject="Order")
    conversation_services.participant_join(conversation=conversation, principal=ADMIN)
    endpoint_create(url=receiver.url, events=["message.created"])
    with transaction.atomic():  # the delivery job runs once this commits: after the read
        message = send(conversation, "is it read?")
        conversation_services.participant_mark_read(conversation=conversation, reader=ADMIN, message_id=None)
    delivered = receiver.wait_for(1)
    (read,) = json.loads(delivered[0]["body"])["data"]["readBy"]
    assert read["userId"] == ADMIN.user_id and read["readAt"].endswith("Z")
    assert json.loads(delivered[0]["body"])["data"]["messageId"] == message.pk


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hooks",
        "http://localhost:8000/hooks",
        "http://10.1.2.3/hooks",
        "http://192.168.0.10/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hooks",
        "http://[fd00::1]/hooks",
        "ftp://example.com/hooks",
        "http://user:pass@example.com/hooks",
    ],
)
def test_unsafe_urls_are_refused_and_nothing_is_stored(url):
    with pytest.raises(ServiceError) as refused:
        endpoint_create(url=url, events=["message.created"])
    assert refused.value.code == "webhook_url_refused"
    with pytest.raises(CommandError):
        call_command("webhook_add", url=url, events="message.created")
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    ("events", "secret", "code"),
    [
        ("", None, "invalid_event_type"),
        ("message.sent", None, "invalid_event_type"),
        ("message.created", "abc", "invalid_secret"),
    ],
)
def test_bad_endpoint_input_is_refused(settings, events, secret, code):
    settings.CHAT = {**settings.CHAT, "WEBHOOK_ALLOW_PRIVATE": True}
    with pytest.raises(ServiceError) as refused:
        endpoint_create(url="http://127.0.0.1:9/hooks", events=[e for e in events.split(",") if e], secret=secret)
    assert refused.value.code == code
    assert WebhookEndpoint.objects.count() == 0


def test_the_command_prints_the_id_and_secret(settings, capsys):
    settings.CHAT = {**settings.CHAT, "WEBHOOK_ALLOW_PRIVATE": True}
    call_command("webhook_add", url="http://127.0.0.1:9/hooks", events="message.created,conversation.read")
    out = capsys.readouterr().out
    endpoint = WebhookEndpoint.objects.get()
    assert f"id: {endpoint.pk}" in out and f"secret: {endpoint.secret}" in out
    assert endpoint.events == ["conversation.read", "message.created"]


def test_a_url_that_became_private_is_refused_at_delivery(receiver, settings):
    endpoint_create(url=receiver.url, events=["message.created"])
    settings.CHAT = {**settings.CHAT, "WEBHOOK_ALLOW_PRIVATE": False}  # as if the name now resolved inside
    conversation = conversation_services.conversation_create(creator=USER, subject="x")
    send(conversation, "hello")
    job = Job.objects.get(kind=DELIVER_KIND)
    deadline = time.monotonic() + WAIT_S
    while "non-public" not in job.last_error and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded poll of the runner's write
        job.refresh_from_db()
    assert "non-public address" in job.last_error
    assert receiver.received == []


def test_a_delivery_connects_to_the_addresses_it_checked_not_a_new_lookup(receiver, monkeypatch):
    """DNS rebinding: the name is resolved once, by the check, and the connection goes to what it
    checked; the receiver still sees its own host name."""
    looked_up: list[str] = []
    resolve = socket.getaddrinfo

    def recording(host, *args, **kwargs):
        looked_up.append(host)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    port = receiver.server.server_address[1]
    endpoint = endpoint_create(url=f"http://localhost:{port}/hooks?team=crm", events=["message.created"])
    conversation = conversation_services.conversation_create(creator=USER, subject="Pinned")
    looked_up.clear()
    send(conversation, "hello")
    (delivery,) = receiver.wait_for(1)
    assert looked_up.count("localhost") == 1  # the delivery's check; the connection used its answer
    assert delivery["headers"]["Host"] == f"localhost:{port}" and delivery["path"] == "/hooks?team=crm"
    assert Webhook(endpoint.secret).verify(delivery["body"], delivery["headers"])["type"] == "message.created"


def test_a_rating_is_announced_with_its_rest_representation(receiver, donor):
    endpoint_create(url=receiver.url, events=["csat.submitted"])
    conversation = conversation_services.conversation_create(creator=USER, subject="Thanks")
    conversation_services.conversation_update(conversation=conversation, actor=ADMIN, status="CLOSED")
    answer = donor.post(f"/api/conversations/{conversation.pk}/csat", {"rating": 5}, format="json").json()
    (delivery,) = receiver.wait_for(1)
    assert json.loads(delivery["body"]) == {
        "type": "csat.submitted",
        "timestamp": json.loads(delivery["body"])["timestamp"],
        "data": answer,
    }


def test_a_worker_killed_mid_delivery_leaves_the_event_to_the_next_one(settings, tmp_path):
    """Commit, then the Celery worker dies while delivering: after a restart the event still arrives."""
    settings.CHAT = {**settings.CHAT, "WEBHOOK_ALLOW_PRIVATE": True, "JOB_LEASE_S": 2.0}
    database = database_url(settings.DATABASES["default"])
    worker_env = {"CHAT_WEBHOOK_ALLOW_PRIVATE": "true", "CHAT_JOB_LEASE_S": "2"}
    receiver = Receiver()
    receiver.hang_first = 1
    conversation = conversation_services.conversation_create(creator=USER, subject="Crash")
    with redis_server() as redis:
        use_celery(settings, redis.url)
        endpoint = endpoint_create(url=receiver.url, events=["message.created"])
        worker = celery_worker(redis.url, database, tmp_path / "first.log", **worker_env)
        try:
            message = send(conversation, "was my gift received?")  # committed, then handed to the worker
            assert receiver.hung.wait(timeout=WAIT_S), (tmp_path / "first.log").read_text()[-3000:]
            terminate(worker, signal.SIGKILL)  # mid-delivery: no answer recorded, the job still RUNNING
            (job,) = Job.objects.filter(kind=DELIVER_KIND)
            assert (job.status, job.attempts) == (JobStatus.RUNNING, 1)
            worker = celery_worker(redis.url, database, tmp_path / "second.log", **worker_env)
            deadline = time.monotonic() + WAIT_S
            while not receiver.delivered() and time.monotonic() < deadline:
                sweep()  # beat's schedule: once the dead worker's lease lapses, the job goes out again
                with receiver.changed:
                    receiver.changed.wait(timeout=0.5)
        finally:
            terminate(worker)
            receiver.close()
    (delivery,) = receiver.delivered()
    assert Webhook(endpoint.secret).verify(delivery["body"], delivery["headers"])["data"]["messageId"] == message.pk
    assert Job.objects.get(pk=job.pk).attempts == 2


def test_edits_reactions_and_deletions_are_delivered_as_message_updated_and_deleted(receiver):
    from messaging import edits

    endpoint_create(url=receiver.url, events=["message.updated", "message.deleted"])
    conversation = conversation_services.conversation_create(creator=USER, subject="Order")
    message = send(conversation, "helo")
    note = send(conversation, "internal", sender=ADMIN, message_type="NOTE")
    edits.message_edit(conversation=conversation, editor=USER, message_id=message.pk, content="hello")
    edits.reaction_set(conversation=conversation, actor=ADMIN, message_id=message.pk, emoji="\U0001f44d", on=True)
    edits.message_edit(conversation=conversation, editor=ADMIN, message_id=note.pk, content="internal, edited")
    edits.message_delete(conversation=conversation, actor=USER, message_id=message.pk)
    delivered = [json.loads(r["body"]) for r in receiver.wait_for(3)]
    # In order; the note's edit is not sent to an endpoint without include_notes. Each body is rendered at its
    # first attempt: the message as it was then (the last one, a tombstone).
    assert [(b["type"], b["data"]["messageId"]) for b in delivered] == [
        ("message.updated", message.pk),
        ("message.updated", message.pk),
        ("message.deleted", message.pk),
    ]
    assert delivered[2]["data"]["content"] == "" and delivered[2]["data"]["deletedAt"]
    runner.stop_embedded()
    assert len(receiver.delivered()) == 3
