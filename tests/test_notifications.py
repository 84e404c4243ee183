"""Offline notifications: a donor away when support replies gets one email after the delay, without
message text, through a real SMTP server (aiosmtpd); a donor who reads in time, or is online, gets none;
unsubscribe links and preferences; the `email` claim and its erasure; notification.pending."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import re
import threading
import time
from datetime import timedelta
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core import mail
from django.utils import timezone

from chatservice.asgi import application
from chatservice.authentication import Principal
from conversations import services as conversation_services
from conversations.models import Conversation, Role
from jobs import runner
from jobs.models import Job, JobStatus
from notifications import contacts
from notifications.models import Contact, Notification, NotificationState, NotificationStatus
from notifications.services import CHECK_KIND, EMAIL_KIND, unsubscribe_token
from tests.helpers import ADMIN, send
from tests.servers import free_port, redis_server

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_S = 30  # whatever is expected happens within this, or the test fails
DONOR_EMAIL = "donor@example.org"
DELAY_S = 1.0  # the notification delay in these tests (production: 120 s)


class SmtpSink:
    """A real SMTP server on 127.0.0.1 that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.arrived_at: list[float] = []
        self.changed = threading.Condition()
        sink = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
                with sink.changed:
                    sink.messages.append(parsed)
                    sink.arrived_at.append(time.time())
                    sink.changed.notify_all()
                return "250 OK"

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def wait_for(self, count: int) -> list[EmailMessage]:
        deadline = time.monotonic() + WAIT_S
        with self.changed:
            while len(self.messages) < count and time.monotonic() < deadline:
                self.changed.wait(timeout=deadline - time.monotonic())
        return list(self.messages)

    def stop(self) -> None:
        self.controller.stop()


def quiet_jobs() -> None:
    """Wait until no notification job is due: everything that was going to be sent, was."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        busy = Job.objects.filter(
            kind__in=[CHECK_KIND, EMAIL_KIND, "webhook.deliver"],
            status__in=[JobStatus.PENDING, JobStatus.RUNNING],
            run_at__lte=timezone.now(),
        )
        if not busy.exists():
            return
        time.sleep(0.05)  # bounded poll of the runner threads' writes
    raise AssertionError("notification jobs still due after the wait")


@pytest.fixture
def notify(settings):
    """Notifications on with a short delay, jobs run by this process's embedded runner."""
    settings.CHAT = {
        **settings.CHAT,
        "NOTIFY_EMAIL": True,
        "NOTIFY_DELAY_S": DELAY_S,
        "NOTIFY_MIN_INTERVAL_S": 900.0,
        "NOTIFY_EMAIL_PREVIEW": False,
        "JOB_SWEEP_S": 0.05,
        "JOB_RETRY_BASE_S": 0.05,
        "WEBHOOK_ALLOW_PRIVATE": True,
    }
    contacts.forget_all()
    runner.embedded().start_scheduler()  # the sweep hands out due checks, as beat does in production
    yield settings
    runner.stop_embedded()


@pytest.fixture
def smtp(notify):
    sink = SmtpSink()
    notify.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    notify.EMAIL_HOST, notify.EMAIL_PORT = "127.0.0.1", sink.port
    notify.EMAIL_USE_TLS = notify.EMAIL_USE_SSL = False
    yield sink
    runner.stop_embedded()  # before the server goes: no job is left talking to it
    sink.stop()


@pytest.fixture
def emailed_donor(client_for, make_token):
    """The donor u1 whose token carries an email claim: one REST call stores the address."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('u1', email=DONOR_EMAIL)}")
    assert client.get("/api/me/notifications").json() == {"email": True, "emailAddressKnown": True}
    return client


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


async def visit_and_leave(conversation: Conversation, token: str) -> None:
    """The donor opens the conversation's socket and closes the tab."""
    communicator = WebsocketCommunicator(application, f"/ws/conversations/{conversation.pk}?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


def test_a_donor_who_left_gets_one_email_after_the_delay_without_message_text(smtp, emailed_donor, make_token):
    created = emailed_donor.post("/api/conversations", {"subject": "My receipt"}, format="json").json()
    conversation = Conversation.objects.get(pk=created["conversationId"])
    asyncio.run(visit_and_leave(conversation, make_token("u1", email=DONOR_EMAIL)))
    conversation_services.conversation_assign(conversation=conversation, actor=ADMIN, admin_id=ADMIN.user_id)
    first = send(conversation, "Your receipt number is R-4471", sender=ADMIN)
    send(conversation, "It was sent to your inbox as well", sender=ADMIN)

    (message,) = smtp.wait_for(1)
    quiet_jobs()
    assert len(smtp.messages) == 1  # two replies, one email
    assert smtp.arrived_at[0] - first.created_at.timestamp() >= DELAY_S  # not before the delay
    assert message["To"] == DONOR_EMAIL and message["Subject"] == "New reply from CareForAll support"
    body, html = text_of(message), html_of(message)
    assert "You have a new reply from CareForAll support" in body and "2 unread messages" in body
    for part in (body, html, message.as_string()):
        assert "R-4471" not in part and "inbox as well" not in part and "My receipt" not in part
        assert ADMIN.user_id not in part  # never a staff username
    assert f"http://localhost:3006/chat/#conversation={conversation.pk}" in body
    unsubscribe = re.search(r"Stop these emails: (\S+)", body).group(1)
    assert message["List-Unsubscribe"].strip() == f"<{unsubscribe}>"  # folded: a long header
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    (notification,) = Notification.objects.all()
    assert (notification.unread_count, notification.email_status) == (2, NotificationStatus.SENT)

    # A third reply soon after: still one email; the next check waits for the end of the interval.
    send(conversation, "Anything else?", sender=ADMIN)
    state = NotificationState.objects.get()
    assert state.due_at is not None
    deadline = time.monotonic() + WAIT_S
    while NotificationState.objects.get().due_at <= notification.created_at + timedelta(seconds=DELAY_S * 2):
        assert time.monotonic() < deadline, "the check was not moved to the end of the interval"
        time.sleep(0.05)  # the third reply's check runs after DELAY_S and reschedules itself
    assert NotificationState.objects.get().due_at == notification.created_at + timedelta(seconds=900)
    quiet_jobs()
    assert len(smtp.messages) == 1 and Notification.objects.count() == 1


def test_a_donor_who_reads_in_time_gets_nothing(smtp, emailed_donor, conversation, notify):
    notify.CHAT = {**notify.CHAT, "NOTIFY_DELAY_S": 2.0}
    reply = send(conversation, "Found it: R-4471", sender=ADMIN)
    assert emailed_donor.put(f"/api/conversations/{conversation.pk}/read", {}, format="json").status_code == 200
    (check,) = Job.objects.filter(kind=CHECK_KIND)
    assert check.run_at >= reply.created_at + timedelta(seconds=2)
    deadline = time.monotonic() + WAIT_S
    while Job.objects.get(pk=check.pk).status != JobStatus.DONE:
        assert time.monotonic() < deadline
        time.sleep(0.05)  # bounded poll: the check runs once due
    quiet_jobs()
    assert smtp.messages == [] and not Notification.objects.exists()
    assert NotificationState.objects.get().due_at is None


def test_a_donor_with_a_socket_open_gets_nothing(notify, emailed_donor, conversation, make_token):
    async def scenario() -> None:
        token = make_token("u1", email=DONOR_EMAIL)
        communicator = WebsocketCommunicator(application, f"/ws/conversations/{conversation.pk}?token={token}")
        assert (await communicator.connect())[0]
        await sync_to_async(send)(conversation, "Are you still there?", sender=ADMIN)
        (check,) = await sync_to_async(list)(Job.objects.filter(kind=CHECK_KIND))
        deadline = time.monotonic() + WAIT_S
        while (await sync_to_async(Job.objects.get)(pk=check.pk)).status != JobStatus.DONE:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)  # bounded poll: the check runs once due
        await communicator.disconnect()

    asyncio.run(scenario())
    assert mail.outbox == [] and not Notification.objects.exists()


def test_previews_are_opt_in_and_show_display_names_not_usernames(notify, emailed_donor, conversation):
    from desk.services import agent_update

    notify.CHAT = {**notify.CHAT, "NOTIFY_EMAIL_PREVIEW": True, "NOTIFY_DELAY_S": 0.0}
    agent_update(actor=ADMIN, display_name="Dana")
    send(conversation, "Your receipt number is R-4471", sender=ADMIN)
    quiet_jobs()
    (message,) = mail.outbox
    assert "Dana:\nYour receipt number is R-4471" in message.body
    assert ADMIN.user_id not in message.body and ADMIN.user_id not in message.alternatives[0][0]


def test_notes_and_notices_notify_nobody(notify, emailed_donor, conversation):
    notify.CHAT = {**notify.CHAT, "NOTIFY_DELAY_S": 0.0}
    send(conversation, "internal: check the CRM", sender=ADMIN, message_type="NOTE")
    conversation_services.conversation_assign(conversation=conversation, actor=ADMIN, admin_id=ADMIN.user_id)
    quiet_jobs()
    assert not Job.objects.filter(kind=CHECK_KIND).exists()
    assert mail.outbox == [] and not Notification.objects.exists()


def test_unsubscribe_asks_on_get_and_stops_emails_on_post(notify, emailed_donor, conversation, client):
    notify.CHAT = {**notify.CHAT, "NOTIFY_DELAY_S": 0.0, "NOTIFY_MIN_INTERVAL_S": 0.0}
    send(conversation, "First answer", sender=ADMIN)
    quiet_jobs()
    (message,) = mail.outbox
    link = re.search(r"Stop these emails: (\S+)", message.body).group(1)
    path = link.removeprefix("http://localhost:3006")

    page = client.get(path)  # a mail system's link scanner opens links: that changes nothing
    assert page.status_code == 200 and b"Stop email notifications?" in page.content
    assert b'method="post"' in page.content and page["Referrer-Policy"] == "no-referrer"
    assert Contact.objects.get().email_enabled is True

    forged = path.replace(path.rsplit(":", 1)[1][:6], "AAAAAA")
    refused = client.post(forged)
    assert refused.status_code == 400 and b"This link does not work" in refused.content
    assert Contact.objects.get().email_enabled is True

    # The mail client's one-click button (RFC 8058): a POST without any session or CSRF token.
    done = client.post(path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert done.status_code == 200 and b"You will no longer get these emails" in done.content
    assert emailed_donor.get("/api/me/notifications").json() == {"email": False, "emailAddressKnown": True}

    emailed_donor.put(f"/api/conversations/{conversation.pk}/read", {}, format="json")
    send(conversation, "Second answer", sender=ADMIN)
    quiet_jobs()
    assert len(mail.outbox) == 1  # no second email
    latest = Notification.objects.order_by("-created_at").first()
    assert (Notification.objects.count(), latest.email_status) == (2, NotificationStatus.UNSUBSCRIBED)


def test_an_unsubscribe_token_names_its_person_by_id_and_role(notify):
    staff_token = unsubscribe_token(Principal("u1", Role.ADMIN))
    assert staff_token != unsubscribe_token(Principal("u1", Role.USER))


def test_preferences_round_trip_and_bad_input_changes_nothing(donor, client_for):
    assert donor.get("/api/me/notifications").json() == {"email": True, "emailAddressKnown": False}
    for body in ({}, {"email": "false"}, {"email": 0}, {"email": None}, [], "false", {"mail": False}):
        response = donor.put("/api/me/notifications", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["code"] in {"required", "invalid", "null", "parse_error"}, response.json()
    assert not Contact.objects.exists()
    answer = donor.put("/api/me/notifications", {"email": False}, format="json")
    assert (answer.status_code, answer.json()) == (200, {"email": False, "emailAddressKnown": False})
    assert client_for("u1", "ADMIN").get("/api/me/notifications").json()["email"] is True  # another person
    assert donor.put("/api/me/notifications", {"email": True}, format="json").json()["email"] is True
    unauthenticated = donor.__class__().get("/api/me/notifications")
    assert unauthenticated.status_code == 401


def test_the_email_claim_keeps_the_latest_valid_address_of_donors_only(client_for, make_token):
    from rest_framework.test import APIClient

    def call_with(sub: str, role: str = "USER", **claims: object) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(sub, role, **claims)}")
        return client.get("/api/me/notifications").status_code

    assert call_with("u1", email="old@example.org") == 200
    assert call_with("u1", email="new@example.org") == 200
    assert Contact.objects.get().email == "new@example.org"
    for bad in ("not an address", 42, ["a@example.org"], "x" * 250 + "@example.org"):
        assert call_with("u1", email=bad) == 200  # the token stays valid; the claim is ignored
    assert Contact.objects.get().email == "new@example.org"
    assert call_with("agent9", "ADMIN", email="agent9@example.org") == 200
    assert Contact.objects.count() == 1  # staff addresses are not kept


def test_erasure_removes_the_address_and_notification_records(notify, emailed_donor, conversation):
    notify.CHAT = {**notify.CHAT, "NOTIFY_DELAY_S": 0.0}
    send(conversation, "Your receipt", sender=ADMIN)
    quiet_jobs()
    assert Contact.objects.exists() and Notification.objects.exists() and NotificationState.objects.exists()
    conversation_services.user_erase(user_id="u1", role=Role.USER)
    assert not Contact.objects.exists()
    assert not Notification.objects.exists() and not NotificationState.objects.exists()


def test_notification_pending_reaches_the_platform_without_text_or_address(notify, emailed_donor, conversation):
    from standardwebhooks.webhooks import Webhook

    from tests.test_webhooks import Receiver
    from webhooks.services import endpoint_create

    notify.CHAT = {**notify.CHAT, "NOTIFY_DELAY_S": 0.0}
    receiver = Receiver()
    try:
        endpoint = endpoint_create(url=receiver.url, events=["notification.pending"])
        send(conversation, "Your receipt number is R-4471", sender=ADMIN)
        (delivery,) = receiver.wait_for(1)
    finally:
        runner.stop_embedded()
        receiver.close()
    event = Webhook(endpoint.secret).verify(delivery["body"], delivery["headers"])
    notification = Notification.objects.get()
    assert event["type"] == "notification.pending"
    assert event["data"] == {
        "notificationId": notification.pk,
        "conversationId": conversation.pk,
        "recipient": {"userId": "u1", "role": "USER"},
        "unreadCount": 1,
        "conversationUrl": f"http://localhost:3006/chat/#conversation={conversation.pk}",
        "emailStatus": event["data"]["emailStatus"],
        "createdAt": event["data"]["createdAt"],
    }
    assert event["data"]["emailStatus"] in {"queued", "sent"}
    assert "R-4471" not in delivery["body"] and DONOR_EMAIL not in delivery["body"]


def test_presence_in_redis_counts_sockets_of_every_worker_until_they_expire(settings):
    from realtime.presence import PRESENCE_TTL_S, RedisPresence

    donor = Principal("u1", Role.USER)
    with redis_server() as redis:
        presence = RedisPresence(redis.url)

        async def open_elsewhere() -> bool:  # another worker's socket: only Redis knows it
            return await presence.claim_socket(donor, "worker-b.socket-1", 20)

        assert asyncio.run(open_elsewhere())
        assert presence.online(donor) is True
        assert presence.online(Principal("u1", Role.ADMIN)) is False  # the same id, another person
        import redis as redis_client

        # Its worker died: the entry is no longer refreshed, and after PRESENCE_TTL_S it has expired.
        lapsed = {"worker-b.socket-1": time.time() - 1}
        redis_client.Redis.from_url(redis.url).zadd(presence._sockets_key(donor), lapsed, xx=True)
        assert presence.online(donor) is False
        assert PRESENCE_TTL_S == 90


PRODUCTION = {"DJANGO_DEBUG": "false", "DJANGO_SECRET_KEY": "s", "ALLOWED_HOSTS": "h"}


def test_email_goes_to_files_in_development_and_needs_smtp_and_links_in_production(keypair):
    from chatservice.config import ConfigError, load_config

    production = {**PRODUCTION, "JWT_PUBLIC_KEY": keypair[1].decode()}
    development = load_config({"DJANGO_DEBUG": "true", "JWT_PUBLIC_KEY": keypair[1].decode()}).notify
    assert development.email_backend == "django.core.mail.backends.filebased.EmailBackend"
    assert development.email_settings["EMAIL_FILE_PATH"].endswith("var/mail")
    assert load_config(production).notify.email_backend is None  # no EMAIL_HOST: no email, webhook only
    on_another_port = load_config({"DJANGO_DEBUG": "true", "JWT_PUBLIC_KEY": keypair[1].decode(), "PORT": "3016"})
    assert on_another_port.notify.public_url == "http://localhost:3016"  # make run's links follow PORT
    assert on_another_port.notify.donor_url_template.startswith("http://localhost:3016/chat/")
    with pytest.raises(ConfigError, match="CHAT_PUBLIC_URL and CHAT_DONOR_URL_TEMPLATE are required"):
        load_config({**production, "EMAIL_HOST": "smtp.example.org"})
    smtp = load_config(
        {
            **production,
            "EMAIL_HOST": "smtp.example.org",
            "EMAIL_USE_TLS": "true",
            "EMAIL_HOST_PASSWORD": "hunter2",
            "CHAT_PUBLIC_URL": "https://chat.example.org/",
            "CHAT_DONOR_URL_TEMPLATE": "https://www.example.org/support/#c={conversationId}",
        }
    ).notify
    assert smtp.email_backend == "django.core.mail.backends.smtp.EmailBackend"
    assert (smtp.email_settings["EMAIL_PORT"], smtp.public_url) == (587, "https://chat.example.org")
    assert "hunter2" not in repr(smtp)
    off = load_config({**production, "EMAIL_HOST": "smtp.example.org", "CHAT_NOTIFY_EMAIL": "false"}).notify
    assert off.email_backend is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHAT_DONOR_URL_TEMPLATE": "https://www.example.org/support/"}, "must be an http(s) URL containing"),
        ({"CHAT_DONOR_URL_TEMPLATE": "javascript:alert({conversationId})"}, "must be an http(s) URL containing"),
        ({"CHAT_PUBLIC_URL": "chat.example.org"}, "is not an http(s) URL"),
        ({"EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"}, "not both"),
        ({"CHAT_NOTIFY_DELAY_S": "-1"}, "out of range"),
        ({"CHAT_NOTIFY_EMAIL_PREVIEW": "maybe"}, "not a boolean"),
    ],
)
def test_bad_notification_settings_stop_start_up(keypair, env, message):
    from chatservice.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config({"DJANGO_DEBUG": "true", "JWT_PUBLIC_KEY": keypair[1].decode(), **env})


def test_one_check_is_pending_per_conversation_and_a_dead_one_does_not_silence_it(settings, conversation):
    settings.CHAT = {**settings.CHAT, "NOTIFY_DELAY_S": 120.0}
    send(conversation, "first", sender=ADMIN)
    send(conversation, "second", sender=ADMIN)
    (check,) = Job.objects.filter(kind=CHECK_KIND)  # one pending check, whatever the number of replies
    assert check.payload == {"state": f"{conversation.pk}:USER:u1"} and check.status == JobStatus.PENDING
    # The check's job ran out of attempts two hours ago: the next reply schedules a new one.
    Job.objects.filter(pk=check.pk).update(status=JobStatus.DEAD)
    NotificationState.objects.update(due_at=timezone.now() - timedelta(hours=2))
    send(conversation, "third", sender=ADMIN)
    fresh = Job.objects.filter(kind=CHECK_KIND, status=JobStatus.PENDING).get()
    assert fresh.run_at == NotificationState.objects.get().due_at > timezone.now() + timedelta(seconds=100)
