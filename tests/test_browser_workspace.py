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
from urllib.parse import quote

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
    # Nothing to reply with, so no message offers Reply; reacting still works on a closed conversation.
    expect(john.locator(".desk-msg").get_by_role("button", name="Reply", exact=True)).to_have_count(0)
    expect(john.locator(".desk-msg-USER").get_by_role("button", name="Add a reaction")).to_have_count(1)
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
    small.mouse.move(0, 0)  # not resting on a message: its action bar would show in the picture
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


def audited_deletions(server: LiveServer, message_id: str) -> int:
    code = (
        "from audit.models import AuditRecord; "
        f"print(AuditRecord.objects.filter(target_id={message_id!r}, action='message.delete').count())"
    )
    command = [sys.executable, "manage.py", "shell", "-c", code]
    done = subprocess.run(command, cwd=BASE_DIR, env=server.env, check=True, timeout=60, capture_output=True, text=True)
    return int(done.stdout.strip().splitlines()[-1])


def test_staff_delete_read_earlier_versions_react_and_never_quote_a_note_in_a_reply(chat_server, agents, new_page):
    donor = "donor-e"
    created = chat_server.api("POST", "/api/conversations", donor, json={"subject": "Wrong amount"})
    conversation = created.json()["conversationId"]
    path = f"/api/conversations/{conversation}/messages"

    def donor_writes(content: str) -> dict:
        response = chat_server.api("POST", path, donor, json={"content": content})
        assert response.status_code == 201, response.text
        return response.json()

    amount = donor_writes("I gave 50 EUR")
    edited = chat_server.api("PATCH", f"{path}/{amount['messageId']}", donor, json={"content": "I gave 500 EUR"})
    assert edited.status_code == 200, edited.text
    card = donor_writes("My card is 4111 1111 1111 1111")
    page = new_page()
    log_in(page, chat_server, "maria")
    page.goto(f"{chat_server.url}/admin/desk/?c={conversation}")
    expect(page.locator("[data-desk-connection]")).to_have_text("Live")
    message = lambda message_id: page.locator(f'.desk-msg[data-message-id="{message_id}"]')  # noqa: E731
    expect(message(card["messageId"]).locator(".desk-msg-body")).to_have_text("My card is **** **** **** 1111")
    expect(message(card["messageId"]).locator(".desk-redacted")).to_have_text("Card number hidden before storage")
    transcript = page.get_by_role("link", name="Transcript (text)")
    expect(transcript).to_have_attribute("href", f"/api/conversations/{conversation}/transcript?type=text")
    expect(transcript).to_have_attribute("download", "")
    # The link downloads the transcript with the staff session (the request the browser makes on a click).
    text = page.request.get(chat_server.url + transcript.get_attribute("href"))
    assert text.status == 200 and "disposition" in " ".join(text.headers).lower()
    assert "(donor): I gave 500 EUR" in text.text() and "4111 1111" not in text.text()
    page.get_by_label("with notes").check()
    as_json = page.get_by_role("link", name="Transcript (JSON)")
    expect(as_json).to_have_attribute("href", f"/api/conversations/{conversation}/transcript?type=json&notes=true")
    assert page.request.get(chat_server.url + as_json.get_attribute("href")).json()["includesNotes"] is True

    # "edited" opens what the donor's message said before, who replaced it and when.
    message(amount["messageId"]).get_by_role("button", name="edited").click()
    versions = page.get_by_role("dialog", name="Earlier versions")
    expect(versions).to_contain_text("Now: I gave 500 EUR")
    expect(versions.locator(".desk-version-text")).to_have_text(["I gave 50 EUR"])
    expect(versions.locator(".desk-version-meta")).to_contain_text("replaced by donor-e")
    versions.get_by_role("button", name="Close").click()
    expect(versions).to_be_hidden()

    with donor_socket(chat_server, donor, conversation) as ws:
        ws.send(json.dumps({"type": "ping"}))
        frames_until(ws, lambda f: f["type"] == "pong")
        # Staff delete the donor's message: the dialog says what the donor will see and that it is audited.
        message(card["messageId"]).hover()
        message(card["messageId"]).get_by_role("button", name="Delete").click()
        confirm = page.get_by_role("dialog", name="Delete this message?")
        expect(confirm).to_contain_text("The donor will see that a message was deleted here")
        expect(confirm).to_contain_text("recorded in the audit log")
        confirm.get_by_role("button", name="Delete").click()
        expect(message(card["messageId"]).locator(".desk-tombstone")).to_have_text("This message was deleted")
        gone = frames_until(ws, lambda f: f["type"] == "message_deleted")[-1]
        assert gone["messageId"] == card["messageId"]
        assert audited_deletions(chat_server, card["messageId"]) == 1

        # A note is answered with a note: in Reply mode it offers "Reply with a note", never a public "Reply".
        box = page.locator("[data-desk-input]")
        page.locator("[data-desk-mode][value=NOTE]").check()
        box.fill("Check the bank statement before refunding")
        box.press("Enter")
        note = page.locator(".desk-msg-NOTE[data-message-id]", has_text="bank statement")
        expect(note).to_be_visible()
        page.locator("[data-desk-mode][value=TEXT]").check()
        note.hover()
        expect(note.get_by_role("button", name="Reply", exact=True)).to_have_count(0)
        note.get_by_role("button", name="Reply with a note").click()
        expect(page.locator("[data-desk-mode][value=NOTE]")).to_be_checked()
        expect(page.locator("[data-desk-replying]")).to_contain_text("bank statement")
        page.locator("[data-desk-mode][value=TEXT]").check()  # a public reply cannot quote it: the quote goes
        expect(page.locator("[data-desk-replying]")).to_be_hidden()

        # A public reply quoting the donor's edited message; the donor gets it with replyTo.
        asked = message(amount["messageId"])
        asked.hover()
        asked.get_by_role("button", name="Reply", exact=True).click()
        expect(page.locator("[data-desk-replying]")).to_contain_text("I gave 500 EUR")
        box.fill("Thanks, I see 500 EUR.")
        box.press("Enter")
        reply = frames_until(ws, lambda f: f["type"] == "message_received")[-1]
        assert reply["replyTo"]["messageId"] == amount["messageId"]
        assert "bank statement" not in json.dumps(reply)
        ours = message(reply["messageId"])
        expect(ours.locator(".desk-quote")).to_contain_text("I gave 500 EUR")

        # Maria reacts with the picker; the donor's reaction to her reply shows live.
        asked.hover()
        asked.get_by_role("button", name="Add a reaction").click()
        asked.get_by_role("group", name="Reactions").get_by_role("button", name="👍").click()
        expect(asked.locator(".desk-reaction")).to_have_attribute("aria-pressed", "true")
        frames_until(ws, lambda f: f["type"] == "reaction_updated" and f["messageId"] == amount["messageId"])
        emoji = quote("🙏")
        reacted = chat_server.api("PUT", f"{path}/{reply['messageId']}/reactions/{emoji}", donor)
        assert reacted.status_code == 200, reacted.text
        expect(ours.locator(".desk-reaction")).to_have_text("🙏1")
        expect(ours.locator(".desk-reaction")).to_have_attribute("aria-pressed", "false")

        # Maria edits her own reply; the donor sees it; her edit shows in the quote too.
        ours.hover()
        ours.get_by_role("button", name="Edit").click()
        ours.get_by_label("Edit your reply").fill("Thanks, I see 500 EUR; refund on its way.")
        ours.get_by_label("Edit your reply").press("Enter")
        expect(ours.locator(".desk-msg-body")).to_have_text("Thanks, I see 500 EUR; refund on its way.")
        updated = frames_until(ws, lambda f: f["type"] == "message_updated")[-1]
        assert updated["message"]["content"] == "Thanks, I see 500 EUR; refund on its way."

        # The donor's own changes arrive live: a deletion quoted by Maria's reply reads "Deleted message".
        thanks = donor_writes("Thank you!")
        expect(message(thanks["messageId"])).to_be_visible()
        assert chat_server.api(
            "PATCH", f"{path}/{thanks['messageId']}", donor, json={"content": "Thank you!!"}
        ).is_success
        expect(message(thanks["messageId"]).get_by_role("button", name="edited")).to_be_visible()
        assert chat_server.api("DELETE", f"{path}/{amount['messageId']}", donor).status_code == 204
        expect(asked.locator(".desk-tombstone")).to_be_visible()
        expect(ours.locator(".desk-quote")).to_contain_text("Deleted message")

    # How it looks, wide (with a message's actions showing) and at 360 px.
    page.locator("[data-desk-tab=all]").click()
    expect(page.locator(f'.desk-item[data-id="{conversation}"]')).to_be_visible()
    page.locator("[data-desk-input]").focus()
    message(thanks["messageId"]).hover()
    save(page, "workspace-changes")
    page.set_viewport_size({"width": 360, "height": 740})
    expect(ours).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    ours.scroll_into_view_if_needed()
    ours.focus()
    save(page, "workspace-changes-360px")


def test_changes_made_while_the_workspace_was_cut_off_arrive_on_reconnect(
    chat_server, agents, keypair, new_page, tmp_path
):
    donor = "donor-g"
    created = chat_server.api("POST", "/api/conversations", donor, json={"subject": "Resume"})
    conversation = created.json()["conversationId"]
    path = f"/api/conversations/{conversation}/messages"
    first = chat_server.api("POST", path, donor, json={"content": "First try"}).json()
    second = chat_server.api("POST", path, donor, json={"content": "Never mind"}).json()
    page = new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    log_in(page, chat_server, "maria")
    page.goto(f"{chat_server.url}/admin/desk/?c={conversation}")
    expect(page.locator("[data-desk-connection]")).to_have_text("Live")
    message = lambda message_id: page.locator(f'.desk-msg[data-message-id="{message_id}"]')  # noqa: E731

    # The page's worker dies; the donor edits, deletes and reacts through another worker meanwhile.
    other = LiveServer(chat_server.env, keypair[0], tmp_path)
    other.start()
    try:
        chat_server.stop()
        expect(page.locator("[data-desk-connection]")).to_have_text("Offline")
        assert other.api("PATCH", f"{path}/{first['messageId']}", donor, json={"content": "Second try"}).is_success
        assert other.api("DELETE", f"{path}/{second['messageId']}", donor).status_code == 204
        assert other.api("PUT", f"{path}/{first['messageId']}/reactions/{quote('😮')}", donor).is_success
        chat_server.start()
        expect(page.locator("[data-desk-connection]")).to_have_text("Live")
    finally:
        other.stop()
    expect(message(first["messageId"]).locator(".desk-msg-body")).to_have_text("Second try")
    expect(message(first["messageId"]).get_by_role("button", name="edited")).to_be_visible()
    expect(message(first["messageId"]).locator(".desk-reaction")).to_have_text("😮1")
    expect(message(second["messageId"]).locator(".desk-tombstone")).to_be_visible()
    thread_sockets = [url for url in sockets if "/ws/conversations/" in url]
    assert "changedSince=" in thread_sockets[-1], thread_sockets
