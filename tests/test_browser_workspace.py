"""The agent workspace in real headless Chromium against a real Daphne worker: two agents (two browser
sessions), two donors (real `websockets` clients speaking the protocol as the donor page does),
auto-assignment, a transfer, a note the donor never sees, live list updates and a canned response.
Nothing is mocked. Screenshots at 1280 and 360 px go to docs/screenshots/."""

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
from tests.browser import LiveServer
from tests.browser import document as save

browser, chat_server, new_page = kit.browser, kit.chat_server, kit.new_page

PASSWORD = "pw-desk-12345"  # test accounts on a throwaway database
AGENTS = {"maria": "Maria", "john": "John"}
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def agents(chat_server: LiveServer) -> dict[str, str]:
    """Two staff accounts with first names (what donors see), made by the standard commands."""
    for username, first_name in AGENTS.items():
        email = f"{username}@example.org"
        manage(chat_server, "createsuperuser", "--noinput", "--username", username, "--email", email)
        update = f"User.objects.filter(username={username!r}).update(first_name={first_name!r})"
        manage(chat_server, "shell", "-c", f"from django.contrib.auth.models import User; {update}")
    return AGENTS


def manage(server: LiveServer, *args: str) -> None:
    env = {**server.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True, timeout=60)


# The page's own session and CSRF token, as workspace.js sends them.
PAGE_FETCH = """([method, path, body]) => fetch(path, {
    method, credentials: "same-origin",
    headers: {"Content-Type": "application/json",
              "X-CSRFToken": JSON.parse(document.getElementById("desk-config").textContent).csrfToken},
    body: JSON.stringify(body)}).then((response) => response.status)"""


def page_api(page: Page, method: str, path: str, body: dict) -> None:
    status = page.evaluate(PAGE_FETCH, [method, path, body])
    assert status < 300, status


def log_in(page: Page, server: LiveServer, username: str) -> None:
    page.goto(f"{server.url}/admin/login/?next=/admin/desk/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("[data-desk]")).to_be_visible()


def go_online(page: Page) -> None:
    page.select_option("[data-desk-availability]", "ONLINE")
    expect(page.locator("[data-desk-dot]")).to_have_class("desk-dot ONLINE")


def donor_socket(server: LiveServer, donor: str, conversation: str) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation}?token={server.mint(donor)}")


def frames_until(ws: ClientConnection, match: Any, timeout: float = TIMEOUT_MS / 1000) -> list[dict]:
    """Every frame up to and including the first that `match` accepts."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"frame not received in time; got {seen}"
        frame = json.loads(ws.recv(timeout=remaining))
        seen.append(frame)
        if match(frame):
            return seen


def item(page: Page, conversation: str):
    return page.locator(f'.desk-item[data-id="{conversation}"]')


def test_two_agents_two_donors_assignment_transfer_notes_and_canned(chat_server, agents, new_page):
    maria, john = new_page(), new_page()
    log_in(maria, chat_server, "maria")
    log_in(john, chat_server, "john")
    go_online(maria)
    maria.locator("[data-desk-tab=me]").click()
    john.locator("[data-desk-tab=none]").click()  # John watches the queue; he is offline

    # A donor opens a conversation: auto-assigned to Maria, the only agent online; it appears live.
    body = {"subject": "Card charged twice", "metadata": {"donationId": "d-981", "amount": "25 EUR"}}
    created = chat_server.api("POST", "/api/conversations", "donor-a", json=body)
    assert created.status_code == 201, created.text
    first = created.json()["conversationId"]
    expect(item(maria, first)).to_be_visible()
    text = "I was charged twice for one donation"
    chat_server.api("POST", f"/api/conversations/{first}/messages", "donor-a", json={"content": text})
    expect(item(maria, first).locator(".desk-item-preview")).to_have_text(f"donor-a: {text}")
    expect(item(maria, first).locator(".desk-unread")).to_have_text("2")  # the assignment notice and the message

    # A second donor while Maria is at capacity 1: it waits in the queue, live in John's Unassigned tab.
    page_api(maria, "PUT", "/api/agents/me", {"capacity": 1})
    second = chat_server.api("POST", "/api/conversations", "donor-b", json={"subject": "Tax receipt"})
    second = second.json()["conversationId"]
    question = {"content": "Where is my tax receipt?"}
    chat_server.api("POST", f"/api/conversations/{second}/messages", "donor-b", json=question)
    expect(item(john, second)).to_be_visible()
    expect(item(john, second).locator(".desk-waiting")).to_contain_text("waiting")

    # Maria opens the first conversation; a canned response and a note.
    refund = "I have refunded the duplicate charge; it shows within 5 days."
    page_api(maria, "POST", "/api/canned-responses", {"shortCode": "refund", "content": refund, "shared": True})
    maria.reload()
    expect(maria.locator("[data-desk]")).to_be_visible()
    item(maria, first).click()
    expect(maria.locator("[data-desk-connection]")).to_have_text("Live")
    expect(item(maria, first).locator(".desk-unread")).to_have_count(0)  # read as it opened
    with donor_socket(chat_server, "donor-a", first) as donor:
        donor.send(json.dumps({"type": "ping"}))
        frames_until(donor, lambda f: f["type"] == "pong")  # the socket is open and live
        box = maria.locator("[data-desk-input]")
        maria.locator("[data-desk-mode][value=NOTE]").check()
        box.fill("Duplicate charge confirmed in Stripe")
        box.press("Enter")
        expect(maria.locator(".desk-msg-NOTE .desk-msg-body")).to_have_text("Duplicate charge confirmed in Stripe")
        maria.locator("[data-desk-mode][value=TEXT]").check()
        box.fill("/ref")
        expect(maria.locator("[data-desk-canned] li")).to_have_count(1)
        box.press("Enter")
        expect(box).to_have_value(refund)
        box.press("Enter")
        expect(box).to_have_value("")
        # The donor gets the reply, named by Maria's first name, and never the note.
        seen = frames_until(donor, lambda f: f["type"] == "message_received")
        reply = seen[-1]
        assert (reply["content"], reply["senderName"]) == (refund, "Maria")
        assert not any("Stripe" in json.dumps(frame) for frame in seen)
        assert not any(f.get("messageType") == "NOTE" for f in seen)
        donor.send(json.dumps({"type": "read"}))
        expect(maria.locator(".desk-receipt")).to_have_text("Seen by the donor")
        save(maria, "workspace-1280")

        # Transfer to John (online now): the donor sees John's name, never a username.
        go_online(john)
        maria.reload()
        item(maria, first).click()
        expect(maria.locator("[data-desk-connection]")).to_have_text("Live")
        maria.select_option("[data-desk-transfer]", "staff:john")
        expect(maria.locator("[data-desk-assignees]")).to_have_text("· John")
        notice = frames_until(donor, lambda f: f["type"] == "system")[-1]
        assert notice["message"] == "Maria transferred the conversation to John"
        assert "maria" not in notice["message"] and "john" not in notice["message"]

    history = chat_server.api("GET", f"/api/conversations/{first}/messages", "donor-a").json()["results"]
    assert all(m["messageType"] != "NOTE" for m in history)
    assert "Stripe" not in json.dumps(history)
    # John's Mine tab shows it live; the second conversation went to John when he came online.
    john.locator("[data-desk-tab=me]").click()
    expect(item(john, first)).to_be_visible()
    expect(item(john, second)).to_be_visible()

    # Closing disables the reply box and offers Reopen; the list updates.
    item(john, first).click()
    expect(john.locator("[data-desk-connection]")).to_have_text("Live")
    john.locator(".desk-toolbar [data-desk-action=close]").click()
    expect(john.locator("[data-desk-closed]")).to_be_visible()
    expect(john.locator("[data-desk-reply]")).to_be_hidden()
    expect(item(john, first)).to_have_count(0)  # the Open filter hides it now
    # The donor rates it; the context pane shows the rating live (conversation_updated), as text.
    rated = chat_server.api(
        "POST", f"/api/conversations/{first}/csat", "donor-a", json={"rating": 5, "comment": "<b>Great</b> help"}
    )
    assert rated.status_code == 201, rated.text
    expect(john.locator("[data-desk-clocks]")).to_contain_text("5 / 5 · “<b>Great</b> help”")
    # The team list shows each agent's average; John's moves with the rating, live.
    expect(john.locator(".desk-team-member", has_text="John (you)")).to_contain_text("★ 5.0 (1)")
    expect(john.locator(".desk-team-member", has_text="Maria")).to_contain_text("No ratings")
    save(john, "workspace-1280-rated")

    small = new_page(width=360, height=740)
    log_in(small, chat_server, "maria")
    small.locator("[data-desk-tab=all]").click()
    small.select_option("[data-desk-filter=status]", "")
    expect(small.locator(".desk-item").first).to_be_visible()
    save(small, "workspace-360-list")
    small.locator(".desk-item").first.click()
    expect(small.locator("[data-desk-connection]")).to_have_text("Live")
    save(small, "workspace-360-thread")
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"horizontal scroll at 360 px: {width}"
    wide = maria.evaluate("document.documentElement.scrollWidth")
    assert wide <= 1280, f"horizontal scroll at 1280 px: {wide}"


def test_a_refused_send_never_puts_the_text_back(chat_server, agents, new_page):
    created = chat_server.api("POST", "/api/conversations", "donor-c", json={"subject": "Refused"})
    conversation = created.json()["conversationId"]
    page = new_page()
    log_in(page, chat_server, "maria")
    page.goto(f"{chat_server.url}/admin/desk/?c={conversation}")
    expect(page.locator("[data-desk-connection]")).to_have_text("Live")
    box = page.locator("[data-desk-input]")
    # Over CHAT_MAX_MESSAGE_LENGTH: the server refuses it (content_too_long). The text stays in the
    # thread, marked, with Retry; the box stays empty, so nothing invites sending it twice.
    box.fill("x" * 10_001)
    box.press("Enter")
    expect(page.locator(".desk-msg-failed .desk-msg-retry")).to_contain_text("Not sent")
    expect(box).to_have_value("")
    history = chat_server.api("GET", f"/api/conversations/{conversation}/messages", "donor-c").json()["results"]
    # nothing was stored (an agent left ONLINE by the test before may have been assigned: a SYSTEM notice)
    assert [m for m in history if m["messageType"] != "SYSTEM"] == []


def test_files_both_ways_in_the_workspace(chat_server, agents, new_page):
    from tests.test_attachments import PDF_BYTES, receipt_photo

    created = chat_server.api("POST", "/api/conversations", "donor-f", json={"subject": "Receipt attached"})
    conversation = created.json()["conversationId"]
    photo = chat_server.api(
        "POST",
        f"/api/conversations/{conversation}/attachments",
        "donor-f",
        files={"file": ("receipt.jpg", receipt_photo(), "image/jpeg")},
    ).json()
    sent = {"content": "Here is my receipt", "messageType": "FILE", "metadata": {"attachmentId": photo["attachmentId"]}}
    assert (
        chat_server.api("POST", f"/api/conversations/{conversation}/messages", "donor-f", json=sent).status_code == 201
    )
    page = new_page()
    log_in(page, chat_server, "maria")
    page.goto(f"{chat_server.url}/admin/desk/?c={conversation}")
    expect(page.locator("[data-desk-connection]")).to_have_text("Live")
    thumbnail = page.locator(".desk-file-image img")
    expect(thumbnail).to_have_js_property("complete", True)
    assert thumbnail.evaluate("img => img.naturalWidth") > 0  # fetched with the staff session
    expect(page.locator(".desk-file-caption")).to_have_text("Here is my receipt")
    # Staff send a PDF with the paperclip: it uploads, then goes out as a FILE message the donor receives.
    page.locator("[data-desk-file]").set_input_files(
        files=[{"name": "tax-receipt-2026.pdf", "mimeType": "application/pdf", "buffer": PDF_BYTES}]
    )
    chip = page.locator(".desk-msg-ADMIN .desk-file").filter(has_text="tax-receipt-2026.pdf")
    expect(chip.locator(".desk-file-size")).to_have_text(f"{len(PDF_BYTES)} bytes")
    # Or dropped on the conversation.
    page.evaluate(
        """() => {
            const data = new DataTransfer();
            data.items.add(new File(["Gift Aid declaration\\n"], "gift-aid.txt", { type: "text/plain" }));
            const pane = document.querySelector("[data-desk-thread]");
            for (const type of ["dragenter", "dragover", "drop"]) {
                pane.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
            }
        }"""
    )
    expect(page.locator(".desk-msg-ADMIN .desk-file").filter(has_text="gift-aid.txt")).to_be_visible()
    history = chat_server.api("GET", f"/api/conversations/{conversation}/messages", "donor-f").json()["results"]
    files = [m["metadata"]["name"] for m in history if m["messageType"] == "FILE"]
    assert files == ["receipt.jpg", "tax-receipt-2026.pdf", "gift-aid.txt"]
    # A note cannot carry a file.
    page.locator("[data-desk-mode][value=NOTE]").check()
    expect(page.locator("[data-desk-attach]")).to_be_hidden()
    page.locator("[data-desk-mode][value=TEXT]").check()
    save(page, "workspace-attachments")
    page.set_viewport_size({"width": 360, "height": 740})
    expect(page.locator(".desk-file-image img")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    save(page, "workspace-attachments-360px")
