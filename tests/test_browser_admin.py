"""The support console (Django admin) in real headless Chromium against a real Daphne worker.

A staff member logs into admin and works a conversation whose donor is real too: a `websockets` client
with a donor token, speaking the protocol exactly as the donor page does. Nothing is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from websockets.sync.client import ClientConnection, connect

from chatservice.config import BASE_DIR
from tests import browser as kit
from tests.browser import LiveServer, screenshot

# The kit's fixtures, exposed to this module's tests (see tests/browser.py).
browser, chat_server, new_page = kit.browser, kit.chat_server, kit.new_page

STAFF = "maria"  # the console account's username
STAFF_ID = f"staff:{STAFF}"  # the chat id it acts as (identity: console ids never meet token subjects)
PASSWORD = "pw-console-123"  # a test account on a throwaway database
DONOR = "donor-a"
CHANGELIST = "/admin/conversations/conversation/"
TIMEOUT_MS = 15_000  # for a loaded 2-core machine; a passing test never waits this long for one thing
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def staff_account(chat_server: LiveServer) -> str:
    """A staff user in the worker's database, made by the standard command."""
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", STAFF, "--email", "m@example.org"],
        cwd=BASE_DIR,
        env={**chat_server.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
        check=True,
        timeout=60,
    )
    return STAFF


def log_in(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/admin/login/")
    page.fill("#id_username", STAFF)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_have_text("CareForAll support console")


def open_conversation(page: Page, server: LiveServer, conversation: str) -> None:
    page.goto(f"{server.url}{CHANGELIST}{conversation}/change/")
    # data-live: the page's socket is open (the admin session authenticated it; no token in the page)
    expect(page.locator(f'#live-thread[data-conversation-id="{conversation}"]')).to_have_attribute("data-live", "true")


def donor_socket(server: LiveServer, conversation: str) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation}?token={server.mint(DONOR)}")


def wait_for(ws: ClientConnection, match: Any, timeout: float = TIMEOUT_MS / 1000) -> dict:
    """The first frame `match` accepts (earlier ones are dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "frame not received in time"
        frame = json.loads(ws.recv(timeout=remaining))
        if match(frame):
            return frame


def new_conversation(server: LiveServer, subject: str) -> str:
    response = server.api("POST", "/api/conversations", DONOR, json={"subject": subject})
    assert response.status_code == 201, response.text
    return response.json()["conversationId"]


def row(page: Page, conversation: str):
    return page.locator("#result_list tbody tr").filter(has=page.locator(f'input[value="{conversation}"]'))


def test_staff_work_a_conversation_live(chat_server, staff_account, new_page):
    conversation = new_conversation(chat_server, "Card charged twice")
    first = chat_server.api(
        "POST", f"/api/conversations/{conversation}/messages", DONOR, json={"content": "I was charged twice"}
    )
    assert first.status_code == 201, first.text
    page = new_page()
    log_in(page, chat_server)

    # The inbox: the donor's message previewed; maria takes no part yet, so no unread count of hers.
    page.goto(f"{chat_server.url}{CHANGELIST}")
    inbox_row = row(page, conversation)
    expect(inbox_row.locator(".field-last_message")).to_have_text(f"{DONOR}: I was charged twice")
    expect(inbox_row.locator(".field-donor")).to_have_text(DONOR)
    expect(inbox_row.locator(".field-unread")).to_have_text("—")

    open_conversation(page, chat_server, conversation)
    messages = page.locator("[data-console-messages] .console-content")
    expect(messages).to_have_text(["I was charged twice"])
    # The donor's watermark covers their own message (sending reads everything before), but "Read by" is
    # never shown under the reader's own words: it tells nobody anything.
    expect(page.locator("[data-console-receipts]")).to_have_text([""])

    with donor_socket(chat_server, conversation) as donor:
        # The donor types: the page shows it; then their message arrives live, as text.
        donor.send(json.dumps({"type": "typing", "isTyping": True}))
        expect(page.locator("[data-console-typing]")).to_have_text(f"{DONOR} is typing…")
        donor.send(json.dumps({"type": "message", "content": "<img src=x onerror=alert(1)> still waiting"}))
        expect(messages.last).to_have_text("<img src=x onerror=alert(1)> still waiting")
        expect(page.locator("[data-console-messages] img")).to_have_count(0)
        expect(page.locator("[data-console-typing]")).to_have_text("")
        # The page marked it read at once (it is visible): the donor gets maria's receipt.
        wait_for(donor, lambda f: f["type"] == "read_receipt" and f["userId"] == STAFF_ID)

        # maria types (the donor sees it), then Enter sends the reply.
        reply = page.get_by_label("Reply")
        reply.fill("Sorry about that, refunding now")
        wait_for(donor, lambda f: f["type"] == "typing_start" and f["userId"] == STAFF_ID)
        reply.press("Enter")
        expect(messages.last).to_have_text("Sorry about that, refunding now")
        expect(reply).to_have_value("")
        received = wait_for(donor, lambda f: f["type"] == "message_received")
        assert (received["senderId"], received["senderRole"], received["content"]) == (
            STAFF_ID,
            "ADMIN",
            "Sorry about that, refunding now",
        )

        # The donor reads it: the receipt shows under the reply; the donor starts typing again.
        donor.send(json.dumps({"type": "read"}))
        expect(page.locator(".console-msg").last.locator("[data-console-receipts]")).to_have_text(f"Read by {DONOR}")
        donor.send(json.dumps({"type": "typing", "isTyping": True}))
        expect(page.locator("[data-console-typing]")).to_have_text(f"{DONOR} is typing…")
        screenshot(page, "admin-console")  # a test artifact, under var/test-artifacts/

    # Stored as the page showed it, and maria's unread count (she is a participant now) is 0.
    history = chat_server.api("GET", f"/api/conversations/{conversation}/messages", "agent-z", "ADMIN").json()
    assert [(m["senderId"], m["content"]) for m in history["results"] if m["messageType"] == "TEXT"] == [
        (DONOR, "I was charged twice"),
        (DONOR, "<img src=x onerror=alert(1)> still waiting"),
        (STAFF_ID, "Sorry about that, refunding now"),
    ]
    page.goto(f"{chat_server.url}{CHANGELIST}")
    expect(row(page, conversation).locator(".field-unread")).to_have_text("0")
    expect(row(page, conversation).locator(".field-assigned_admins")).to_have_text(STAFF_ID)


def test_close_action_from_the_inbox_reaches_the_open_page_and_the_donor(chat_server, staff_account, new_page):
    conversation = new_conversation(chat_server, "Please close")
    inbox = new_page()
    log_in(inbox, chat_server)
    # A second tab of the same session has the conversation open.
    thread = inbox.context.new_page()
    open_conversation(thread, chat_server, conversation)

    with donor_socket(chat_server, conversation) as donor:
        inbox.goto(f"{chat_server.url}{CHANGELIST}")
        expect(inbox.locator('select[name="assignee"] option', has_text=STAFF)).to_have_count(1)
        row(inbox, conversation).locator('input[name="_selected_action"]').check()
        inbox.select_option('select[name="action"]', "close")
        inbox.get_by_role("button", name="Go").click()

        # Straight back to the list (no confirmation page), the change done.
        expect(inbox.locator(".messagelist")).to_contain_text("1 conversation(s) closed.")
        expect(row(inbox, conversation).locator(".field-status")).to_have_text("Closed")
        # Live on the open page and at the donor's socket.
        expect(thread.locator("[data-console-status]")).to_have_text("CLOSED")
        expect(thread.locator(".console-msg-system .console-content").last).to_have_text(
            f"Conversation closed by {STAFF_ID}"
        )
        notice = wait_for(donor, lambda f: f["type"] == "system")
        assert notice["metadata"] == {"event": "status_changed", "status": "CLOSED"}

    detail = chat_server.api("GET", f"/api/conversations/{conversation}", DONOR).json()
    assert detail["status"] == "CLOSED"
    # A reply on a closed conversation is refused, and the page says so and keeps the text.
    reply = thread.get_by_label("Reply")
    reply.fill("one more thing")
    reply.press("Enter")
    expect(thread.locator("[data-console-error]")).to_contain_text("conversation_closed")
    expect(reply).to_have_value("one more thing")
