"""The support console's conversation table (Django admin) in real headless Chromium against a real
Daphne worker; conversations open in the workspace (tests/test_browser_workspace.py works them).

The donor is real too: a `websockets` client with a donor token, speaking the protocol exactly as the
donor page does. Nothing is mocked.
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
from tests.browser import LiveServer, document

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
    """The conversation's admin page: the workspace with it open, its socket live (the admin session
    authenticates it; no token in the page)."""
    page.goto(f"{server.url}{CHANGELIST}{conversation}/change/")
    expect(page.locator("[data-desk-connection]")).to_have_text("Live")


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


def test_the_inbox_table_fits_previews_what_people_wrote_and_opens_the_workspace(chat_server, staff_account, new_page):
    conversation = new_conversation(chat_server, "Card charged twice")
    first = chat_server.api(
        "POST", f"/api/conversations/{conversation}/messages", DONOR, json={"content": "I was charged twice"}
    )
    assert first.status_code == 201, first.text
    # A SYSTEM notice after the donor's message is not what the preview shows.
    chat_server.api("POST", f"/api/conversations/{conversation}/assign", "agent-q", "ADMIN", json={})
    chat_server.api("POST", f"/api/conversations/{conversation}/unassign", "agent-q", "ADMIN", json={})
    page = new_page()
    log_in(page, chat_server)
    page.goto(f"{chat_server.url}{CHANGELIST}")
    inbox_row = row(page, conversation)
    expect(inbox_row.locator(".field-last_message")).to_have_text(f"{DONOR}: I was charged twice")
    expect(inbox_row.locator(".field-title")).to_contain_text(DONOR)
    # maria takes no part: no unread count of hers, but the unanswered donor is visible.
    expect(inbox_row.locator(".field-unread")).to_contain_text("waiting")
    # The table fits its box at 1280 px: no column cut off or off-screen.
    document(page, "admin-inbox")
    widths = page.evaluate(
        "() => { const t = document.querySelector('#result_list');"
        " return [t.scrollWidth, t.parentElement.clientWidth]; }"
    )
    assert widths[0] <= widths[1], widths
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    # Opening a conversation opens it in the workspace.
    inbox_row.locator("th a").click()
    expect(page.locator("[data-desk-connection]")).to_have_text("Live")
    expect(page.locator("[data-desk-subject]")).to_have_text("Card charged twice")


def test_close_action_from_the_inbox_reaches_the_open_workspace_and_the_donor(chat_server, staff_account, new_page):
    conversation = new_conversation(chat_server, "Please close")
    inbox = new_page()
    log_in(inbox, chat_server)
    # A second tab of the same session has the conversation open in the workspace.
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
        # Live in the open workspace (reply box replaced by Reopen) and at the donor's socket.
        expect(thread.locator("[data-desk-status-badge]")).to_have_text("Closed")
        expect(thread.locator(".desk-msg-SYSTEM .desk-msg-body").last).to_have_text("Conversation closed by Support")
        expect(thread.locator("[data-desk-reply]")).to_be_hidden()
        expect(thread.locator("[data-desk-closed] [data-desk-action=reopen]")).to_be_visible()
        notice = wait_for(donor, lambda f: f["type"] == "system")
        assert notice["metadata"] == {
            "event": "status_changed",
            "status": "CLOSED",
            "actorName": "Support",
            "kind": "csat_request",
        }

    detail = chat_server.api("GET", f"/api/conversations/{conversation}", DONOR).json()
    assert detail["status"] == "CLOSED"
    thread.locator("[data-desk-closed] [data-desk-action=reopen]").click()
    expect(thread.locator("[data-desk-reply]")).to_be_visible()
    expect(thread.locator("[data-desk-status-badge]")).to_have_text("Open")
