"""Card numbers and IBANs are masked before storage (messaging.redaction), over REST and WebSocket, in content
and string metadata; the original is written nowhere: database, logs, traces, webhooks, notifications."""

from __future__ import annotations

import asyncio
import logging
import string

import pytest
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chatservice.asgi import application
from chatservice.config import ConfigError, load_config
from conversations.models import Conversation
from messaging.models import Message
from messaging.redaction import luhn_valid, redact_message, redact_text
from tests.helpers import ADMIN, snapshot
from tests.test_notifications import emailed_donor as emailed_donor  # the fixtures, for this module's tests
from tests.test_notifications import notify as notify
from tests.test_notifications import smtp as smtp
from tests.test_tracing import exporter as exporter

CARDS = ("card", "iban")

VISA = "4111 1111 1111 1111"
AMEX = "3782-822463-10005"
IBAN_DE = "DE89 3704 0044 0532 0130 00"


@pytest.mark.parametrize(
    ("text", "expected", "found"),
    [
        (f"my card is {VISA} thanks", "my card is **** **** **** 1111 thanks", {"card"}),
        (f"amex {AMEX}.", "amex ****-******-*0005.", {"card"}),
        ("4242424242424242", "************4242", {"card"}),
        # Glued to an expiry date or a CVC: the card is still found, the rest is left alone.
        ("4242424242424242 12 27 cvc 123", "************4242 12 27 cvc 123", {"card"}),
        (f"IBAN {IBAN_DE} THANKS", "IBAN **** **** **** **** **30 00 THANKS", {"iban"}),
        ("gb82west12345698765432", "******************5432", {"iban"}),
        # Numbers that fail their checksum stay: order numbers, phone numbers, a mistyped IBAN.
        ("order 1234567890123456", "order 1234567890123456", set()),
        ("call +1 415 555 2671 or 0044 20 7946 0958", "call +1 415 555 2671 or 0044 20 7946 0958", set()),
        ("DE89 3704 0044 0532 0130 02", "DE89 3704 0044 0532 0130 02", set()),
        ("too long 42424242424242424242424", "too long 42424242424242424242424", set()),
        ("12 digits 424242424242", "12 digits 424242424242", set()),
    ],
)
def test_numbers_that_pass_their_checksum_are_masked_keeping_the_last_four(text, expected, found):
    assert redact_text(text, CARDS) == (expected, found)


def test_metadata_strings_are_masked_and_the_server_names_what_it_found():
    content, metadata = redact_message(
        "see metadata",
        {"note": f"pay with {VISA}", "nested": [{"iban": IBAN_DE}], "count": 4111111111111111, "redacted": ["x"]},
        CARDS,
    )
    assert content == "see metadata"
    assert metadata == {
        "note": "pay with **** **** **** 1111",
        "nested": [{"iban": "**** **** **** **** **30 00"}],
        "count": 4111111111111111,  # numbers are not text anyone pasted
        "redacted": ["card", "iban"],
    }
    # Nothing found: the client's own `redacted` key is dropped all the same, it is the server's.
    assert redact_message("hello", {"redacted": ["card"]}, CARDS) == ("hello", {})
    assert redact_message(VISA, {}, ()) == (VISA, {})  # CHAT_REDACT=off


def test_chat_redact_is_read_and_checked():
    assert load_config({"CHAT_REDACT": "off"}).messages.redact == ()
    assert load_config({"CHAT_REDACT": "card"}).messages.redact == ("card",)
    assert load_config({}).messages.redact == CARDS
    with pytest.raises(ConfigError, match="CHAT_REDACT names ssn"):
        load_config({"CHAT_REDACT": "card,ssn"})


# ---- properties ----------------------------------------------------------------------------------------

_words = st.text(alphabet=string.ascii_letters + " .,!?'", max_size=40)


def _with_check_digit(body: list[int], valid: bool) -> str:
    for last in range(10):
        digits = "".join(map(str, body)) + str(last)
        if luhn_valid(digits) == valid:
            return digits
    raise AssertionError("unreachable")


@st.composite
def card_numbers(draw: st.DrawFn, valid: bool) -> str:
    body = draw(st.lists(st.integers(0, 9), min_size=12, max_size=18))
    return _with_check_digit(body, valid)


@st.composite
def grouped(draw: st.DrawFn, digits: str) -> str:
    """`digits` as people type them: in groups of 4, separated by spaces, dashes or nothing."""
    separator = draw(st.sampled_from(["", " ", "-"]))
    return separator.join(digits[i : i + 4] for i in range(0, len(digits), 4))


@given(before=_words, after=_words, number=card_numbers(valid=True), data=st.data())
@hypothesis_settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_property_every_luhn_valid_card_is_masked_and_nothing_else_changes(before, after, number, data):
    typed = data.draw(grouped(number))
    text = f"{before} {typed} {after}"
    masked, found = redact_text(text, CARDS)
    assert found == {"card"}
    assert len(masked) == len(text)
    assert masked.startswith(f"{before} ") and masked.endswith(f" {after}")
    middle = masked[len(before) + 1 : len(masked) - len(after) - 1]
    assert "".join(c for c in middle if c.isdigit()) == number[-4:]  # only the last four digits are left
    assert redact_text(masked, CARDS) == (masked, set())  # masking is final


@given(before=_words, after=_words, number=card_numbers(valid=False))
@hypothesis_settings(max_examples=300)
def test_property_order_numbers_that_fail_luhn_are_left_alone(before, after, number):
    text = f"{before} order {number} {after}"
    assert redact_text(text, CARDS) == (text, set())


@given(st.text(alphabet=string.digits + " -+()/.", max_size=60))
@hypothesis_settings(max_examples=300)
def test_property_phone_numbers_and_dates_under_thirteen_digits_are_left_alone(text):
    # Fewer than 13 digits in any run with single separators: never a card.
    groups = text.replace("-", " ").split()
    if any(sum(c.isdigit() for c in group) >= 13 for group in groups) or sum(c.isdigit() for c in text) >= 13:
        return
    assert redact_text(text, CARDS) == (text, set())


# ---- through the API --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_rest_send_stores_and_answers_the_masked_text(donor, conversation):
    response = donor.post(
        f"/api/conversations/{conversation.pk}/messages",
        {"content": f"card {VISA}", "metadata": {"ref": IBAN_DE}, "clientMessageId": "k1"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["content"] == "card **** **** **** 1111"
    assert body["metadata"] == {"ref": "**** **** **** **** **30 00", "redacted": ["card", "iban"]}
    stored = Message.objects.get(pk=body["messageId"])
    assert (stored.content, stored.metadata) == (body["content"], body["metadata"])
    # The retry carries the original again: it is the same message, not a reused key.
    retry = donor.post(
        f"/api/conversations/{conversation.pk}/messages",
        {"content": f"card {VISA}", "metadata": {"ref": IBAN_DE}, "clientMessageId": "k1"},
        format="json",
    )
    assert (retry.status_code, retry.json()["messageId"]) == (200, body["messageId"])
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_redaction_off_stores_what_was_sent(donor, conversation, settings):
    settings.CHAT = {**settings.CHAT, "REDACT": ()}
    response = donor.post(f"/api/conversations/{conversation.pk}/messages", {"content": VISA}, format="json")
    assert response.json()["content"] == VISA and "redacted" not in response.json()["metadata"]


@pytest.mark.django_db(transaction=True)
def test_a_websocket_acknowledgement_shows_the_sender_the_masked_text(make_token, conversation):
    async def scenario() -> tuple[dict, dict]:
        donor = WebsocketCommunicator(application, f"/ws/conversations/{conversation.pk}?token={make_token('u1')}")
        staff = WebsocketCommunicator(
            application, f"/ws/conversations/{conversation.pk}?token={make_token('agent1', 'ADMIN')}"
        )
        assert (await donor.connect())[0] and (await staff.connect())[0]
        await donor.send_json_to({"type": "message", "content": f"here: {AMEX}"})
        ack = await _next(donor, "message_sent")
        received = await _next(staff, "message_received")
        await donor.disconnect()
        await staff.disconnect()
        return ack, received

    ack, received = asyncio.run(scenario())
    for frame in (ack, received):
        assert frame["content"] == "here: ****-******-*0005" and frame["metadata"] == {"redacted": ["card"]}
    assert Message.objects.get().content == "here: ****-******-*0005"


async def _next(socket: WebsocketCommunicator, frame_type: str) -> dict:
    while True:
        frame = await socket.receive_json_from(timeout=10)
        if frame["type"] == frame_type:
            return frame


@pytest.mark.django_db
def test_a_refused_message_with_a_card_stores_nothing(donor, conversation):
    before = snapshot(conversation)
    response = donor.post(
        f"/api/conversations/{conversation.pk}/messages", {"content": VISA, "messageType": "NOTE"}, format="json"
    )
    assert response.status_code == 403 and VISA not in response.content.decode()
    assert snapshot(conversation) == before


def _everything_stored() -> str:
    """Every row of every table of every model, as text (any backend: through the ORM)."""
    from django.apps import apps

    return "\n".join(repr(row) for model in apps.get_models() for row in model._base_manager.values_list())


@pytest.mark.django_db(transaction=True)
def test_the_original_number_is_written_nowhere(smtp, emailed_donor, make_token, notify, caplog):
    """Sent over REST and WebSocket by a donor, and by staff in a reply a donor is emailed about (with
    previews on), to a webhook endpoint: the database, the logs, the traces, the webhook bodies and the
    email hold the masked text only."""
    from jobs import runner
    from tests.test_notifications import quiet_jobs, visit_and_leave
    from tests.test_webhooks import Receiver
    from webhooks.services import endpoint_create

    caplog.set_level(logging.DEBUG)
    notify.CHAT = {**notify.CHAT, "NOTIFY_EMAIL_PREVIEW": True, "NOTIFY_DELAY_S": 0.2}
    receiver = Receiver()
    try:
        endpoint_create(url=receiver.url, events=["message.created"], include_notes=True)
        created = emailed_donor.post("/api/conversations", {"subject": "Payment"}, format="json").json()
        conversation = Conversation.objects.get(pk=created["conversationId"])
        url = f"/api/conversations/{conversation.pk}/messages"
        assert emailed_donor.post(url, {"content": f"rest {VISA}"}, format="json").status_code == 201
        token = make_token("u1", email="donor@example.org")

        async def over_websocket() -> None:
            socket = WebsocketCommunicator(application, f"/ws/conversations/{conversation.pk}?token={token}")
            assert (await socket.connect())[0]
            await socket.send_json_to({"type": "message", "content": f"ws {AMEX}", "metadata": {"iban": IBAN_DE}})
            await _next(socket, "message_sent")
            await socket.disconnect()

        asyncio.run(over_websocket())
        asyncio.run(visit_and_leave(conversation, token))
        from rest_framework.test import APIClient

        staff = APIClient()
        staff.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(ADMIN.user_id, 'ADMIN')}")
        reply = staff.post(url, {"content": f"Did you mean {VISA}?"}, format="json")
        assert reply.status_code == 201
        note = staff.post(url, {"content": f"note {VISA}", "messageType": "NOTE"}, format="json")
        assert note.status_code == 201
        (email,) = smtp.wait_for(1)
        bodies = [r["body"] for r in receiver.wait_for(4)]
        quiet_jobs()
        runner.stop_embedded()
    finally:
        receiver.close()

    places = {
        "database": _everything_stored(),
        "logs": "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records),
        "webhooks": "\n".join(bodies),
        "email": email.as_string(),
    }
    assert "**** **** **** 1111" in places["database"] and "**** **** **** 1111" in places["webhooks"]
    assert "1111" in places["email"]  # the preview is there, masked
    for original in ("4111 1111 1111 1111", "4111111111111111", "3782-822463-10005", "0532 0130", "05320130"):
        for place, text in places.items():
            assert original not in text, f"{original!r} found in the {place}"


def test_the_original_number_is_not_traced(exporter, make_token, db):
    from rest_framework.test import APIClient

    from conversations import services as conversation_services
    from tests.helpers import USER
    from tests.test_tracing import attribute_text

    conversation = conversation_services.conversation_create(creator=USER, subject="Card")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('u1')}")
    url = f"/api/conversations/{conversation.pk}/messages"
    assert client.post(url, {"content": f"card {VISA}"}, format="json").status_code == 201
    text = attribute_text(exporter.get_finished_spans())
    assert "4111 1111" not in text and "4111111111111111" not in text
