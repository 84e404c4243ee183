"""The donor chat page (/chat/) in real headless Chromium against a real Daphne worker.

The other side of each conversation is real too: support staff speak through the REST API or a
`websockets` client, exactly as the admin console would. Nothing in the browser or the server is mocked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect
from websockets.sync.client import ClientConnection, connect

from chatservice.config import BASE_DIR
from tests import browser as kit
from tests.browser import EXPECT_TIMEOUT_MS, LiveServer, screenshot

# The kit's fixtures, exposed to this module's tests (see tests/browser.py).
browser, chat_server, new_page = kit.browser, kit.chat_server, kit.new_page

DONOR = "donor-b"
AGENT = "agent-b"
TIMEOUT_MS = EXPECT_TIMEOUT_MS  # for frames on the staff socket too


def new_conversation(server: LiveServer, subject: str = "Browser test", *, assign: bool = True) -> str:
    response = server.api("POST", "/api/conversations", DONOR, json={"subject": subject})
    assert response.status_code == 201, response.text
    conversation = response.json()["conversationId"]
    if assign:
        # The agent becomes a participant: their reads move a watermark and produce receipts.
        assigned = server.api("POST", f"/api/conversations/{conversation}/assign", AGENT, "ADMIN", json={})
        assert assigned.status_code == 200, assigned.text
    return conversation


def post(server: LiveServer, conversation: str, content: str, user: str = AGENT, role: str = "ADMIN") -> dict:
    response = server.api("POST", f"/api/conversations/{conversation}/messages", user, role, json={"content": content})
    assert response.status_code == 201, response.text
    return response.json()


def stored(server: LiveServer, conversation: str) -> list[dict[str, Any]]:
    response = server.api("GET", f"/api/conversations/{conversation}/messages?limit=200", DONOR)
    assert response.status_code == 200, response.text
    return [m for m in response.json()["results"] if m["messageType"] != "SYSTEM"]


def open_chat(page: Page, server: LiveServer, conversation: str) -> None:
    page.goto(f"{server.url}/chat/#token={server.mint(DONOR)}&conversation={conversation}")
    # Connected: "Online", or "Closed" / "Archived" for a conversation that ended.
    expect(page.locator("#connection")).to_have_attribute("data-state", re.compile("^(online|ended)$"))


def bubbles(page: Page) -> Any:
    """Every message bubble but SYSTEM notices (the assignment's), unsent ones included."""
    return page.locator("#messages > li:not(.system)")


def texts(page: Page) -> list[str]:
    return page.locator("#messages > li:not(.system) .content").all_text_contents()


class Staff:
    """A support agent's socket that keeps every frame it was not asked for, in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pending: list[dict[str, Any]] = []

    def send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def next(self, accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first frame, received earlier or now, that `accept` wants; the others stay pending."""
        for index, frame in enumerate(self.pending):
            if accept(frame):
                return self.pending.pop(index)
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while True:
            frame = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if accept(frame):
                return frame
            self.pending.append(frame)


@contextmanager
def staff_socket(server: LiveServer, conversation: str) -> Iterator[Staff]:
    url = f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation}?token={server.mint(AGENT, 'ADMIN')}"
    with connect(url) as ws:
        staff = Staff(ws)
        staff.send({"type": "ping"})
        staff.next(lambda f: f["type"] == "pong")  # answered: the socket has joined the conversation
        yield staff


def test_history_pages_and_send_with_enter(chat_server, new_page):
    conversation = new_conversation(chat_server)
    for n in range(1, 36):  # more than one page (30): the oldest come only when scrolled to the top
        post(chat_server, conversation, f"history {n}", *((AGENT, "ADMIN") if n % 2 else (DONOR, "USER")))
    page = new_page()
    response = page.goto(f"{chat_server.url}/chat/#token={chat_server.mint(DONOR)}&conversation={conversation}")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp

    # The fragment (with the token) is gone from the address bar and the history entry.
    expect(page).to_have_url(f"{chat_server.url}/chat/")
    expect(page.locator("#connection")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    expect(page.locator("#connection")).to_have_text("Online")
    expect(page.locator("#chat-title")).to_have_text("Browser test")
    expect(bubbles(page)).to_have_count(30)
    expect(bubbles(page).last).to_contain_text("history 35")

    page.locator("#messages").evaluate("list => { list.scrollTop = 0; }")
    expect(bubbles(page)).to_have_count(35)
    assert texts(page) == [f"history {n}" for n in range(1, 36)]
    expect(page.locator("#load-older")).to_be_hidden()  # nothing older is left

    textarea = page.get_by_label("Message", exact=True)
    textarea.fill("Hello from the browser")
    textarea.press("Enter")
    sent = page.locator("#messages > li.mine", has_text="Hello from the browser")
    expect(sent).to_have_attribute("data-status", "sent")  # acknowledged by the server: stored
    expect(textarea).to_have_value("")

    # Shift+Enter is a newline inside the message; Enter alone sends it.
    textarea.type("line one")
    textarea.press("Shift+Enter")
    textarea.type("line two")
    textarea.press("Enter")
    expect(page.locator("#messages > li.mine", has_text="line two")).to_have_attribute("data-status", "sent")
    assert texts(page)[-2:] == ["Hello from the browser", "line one\nline two"]
    expect(page.locator("#messages > li[data-status=sending]")).to_have_count(0)
    assert texts(page).count("Hello from the browser") == 1

    rows = stored(chat_server, conversation)
    assert [m["content"] for m in rows[-2:]] == ["Hello from the browser", "line one\nline two"]
    assert all(m["clientMessageId"] for m in rows[-2:])  # sent with an idempotency key
    screenshot(page, "donor-history-desktop")


XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_SCRIPT = "<script>window.__xss=1</script>"


def test_markup_from_the_other_side_is_shown_as_text(chat_server, new_page):
    conversation = new_conversation(chat_server)
    post(chat_server, conversation, XSS_IMG)  # through history (REST)
    page = new_page()
    open_chat(page, chat_server, conversation)
    with staff_socket(chat_server, conversation) as staff:  # and live, over the socket
        staff.send({"type": "message", "content": XSS_SCRIPT})
        staff.next(lambda f: f["type"] == "message_sent")
    expect(page.locator("#messages > li.theirs .content")).to_have_text([XSS_IMG, XSS_SCRIPT])
    # No element was created from the content, so nothing could have run; the flag proves it.
    expect(page.locator("#messages img, #messages script")).to_have_count(0)
    assert page.evaluate("typeof window.__xss") == "undefined"
    screenshot(page, "donor-xss-as-text")


def test_reconnects_after_the_worker_dies_and_shows_every_message_once(chat_server, keypair, new_page, tmp_path):
    conversation = new_conversation(chat_server)
    post(chat_server, conversation, "before the crash")
    page = new_page()
    open_chat(page, chat_server, conversation)
    expect(bubbles(page)).to_have_count(1)

    # A second worker on the same database, so staff can keep writing while the page's worker is dead.
    other = LiveServer(chat_server.env, keypair[0], tmp_path)
    other.start()
    try:
        chat_server.stop()  # SIGKILL: the socket drops without a close frame
        expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        expect(page.locator("#connection")).to_contain_text("Reconnecting")
        for n in (1, 2, 3):
            post(other, conversation, f"while down {n}")
        # The donor writes while offline too: REST cannot reach the dead worker, so it waits, unsent.
        page.get_by_label("Message", exact=True).fill("typed while offline")
        page.keyboard.press("Enter")
        expect(page.locator("#messages > li[data-status=sending]")).to_have_count(1)
        chat_server.start()  # same port: the page's backoff finds it again
        expect(page.locator("#connection")).to_have_attribute("data-state", "online")
        expect(page.locator("#messages > li.mine", has_text="typed while offline")).to_have_attribute(
            "data-status", "sent"
        )
        post(chat_server, conversation, "after the restart")
        expect(bubbles(page)).to_have_count(6)
    finally:
        other.stop()
    expected = ["before the crash", "while down 1", "while down 2", "while down 3", "typed while offline"]
    assert texts(page) == [*expected, "after the restart"]
    assert [m["content"] for m in stored(chat_server, conversation)] == [*expected, "after the restart"]
    screenshot(page, "donor-after-reconnect")


def test_typing_indicator_and_read_ticks_both_ways(chat_server, new_page):
    conversation = new_conversation(chat_server, "Receipts")
    page = new_page(width=420, height=760)
    open_chat(page, chat_server, conversation)
    textarea = page.get_by_label("Message", exact=True)
    with staff_socket(chat_server, conversation) as staff:
        # The donor's own typing reaches staff (throttled: one typing_start for a burst of keys).
        textarea.type("Is my donation", delay=20)
        assert staff.next(lambda f: f["type"].startswith("typing")) == {
            "type": "typing_start",
            "userId": DONOR,
        }
        textarea.type(" tax deductible?")
        textarea.press("Enter")
        mine = page.locator("#messages > li.mine", has_text="tax deductible")
        expect(mine).to_have_attribute("data-status", "sent")
        received = staff.next(lambda f: f["type"] == "message_received")
        staff.next(lambda f: f["type"] == "typing_stop")  # sending ends the donor's typing

        staff.send({"type": "typing", "isTyping": True})
        expect(page.locator("#typing")).to_have_text("Support is typing…")
        staff.send({"type": "typing", "isTyping": False})
        expect(page.locator("#typing")).to_have_text("")

        staff.send({"type": "read", "messageId": received["messageId"]})
        expect(mine).to_have_attribute("data-status", "read")
        expect(mine.locator(".tick")).to_have_attribute("aria-label", "Read")

        # The staff reply is on screen, so the page reads it: staff get the donor's receipt.
        staff.send({"type": "message", "content": "Yes, and we will send a receipt."})
        reply = staff.next(lambda f: f["type"] == "message_sent")
        receipt = staff.next(lambda f: f["type"] == "read_receipt" and f["userId"] == DONOR)
        assert receipt["messageId"] == reply["messageId"]
    expect(page.locator("#messages > li.theirs")).to_have_text(re.compile("we will send a receipt"))
    screenshot(page, "donor-read-ticks")


def test_narrow_screen_has_no_horizontal_scroll_and_keyboard_reaches_the_textarea(chat_server, new_page):
    conversation = new_conversation(chat_server, "A subject long enough to wrap on a small phone screen")
    post(chat_server, conversation, "x" * 400)  # one unbreakable word
    post(chat_server, conversation, "https://example.org/" + "a-very-long-path/" * 20)
    post(chat_server, conversation, "Thanks for writing in! How can we help?")
    page = new_page(width=360, height=740)
    page.goto(f"{chat_server.url}/chat/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # the form fits too
    open_chat(page, chat_server, conversation)
    expect(bubbles(page)).to_have_count(3)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360

    # From the top of the page, Tab goes to the message log (scrollable by keyboard), the paperclip, the textarea.
    page.locator("body").focus()
    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id"))
        if order[-1] == "message":
            break
    assert order == ["messages", "attach", "message"]
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    page.keyboard.type("Sent with the keyboard only")
    page.keyboard.press("Enter")
    expect(page.locator("#messages > li.mine", has_text="keyboard only")).to_have_attribute("data-status", "sent")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "send"
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(page, "donor-chat-360px")


@pytest.mark.parametrize(("width", "name"), [(1280, "donor-signed-out"), (360, "donor-signed-out-360px")])
def test_without_a_token_the_page_explains_and_never_asks_for_one(chat_server, new_page, width, name):
    page = new_page(width=width, height=740)
    page.goto(f"{chat_server.url}/chat/#token={chat_server.mint(DONOR)}")
    expect(page.locator("#chat")).to_be_visible()
    page.reload()  # the token was in memory only
    expect(page.get_by_role("heading", name="Chat with CareForAll support")).to_be_visible()
    expect(page.locator("#signed-out")).to_contain_text("sign in to your CareForAll account")
    expect(page.get_by_label("Access token")).to_be_hidden()  # folded away in the developer section
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    kit.document(page, name)


def test_start_a_new_conversation_from_the_developer_form(chat_server, new_page):
    page = new_page(width=360, height=740)
    page.goto(f"{chat_server.url}/chat/")
    expect(page.locator("#connection")).to_be_hidden()  # nothing tried yet: neither online nor offline

    page.get_by_text("Developers: open a chat with an access token").click()
    page.get_by_label("Access token").fill("not-a-token")
    page.get_by_role("button", name="Open chat").click()
    expect(page.get_by_role("alert")).to_contain_text("refused")

    page.get_by_label("Access token").fill(chat_server.mint(DONOR))
    page.get_by_label("Subject of a new conversation").fill("Gift Aid question")
    page.get_by_role("button", name="Open chat").click()
    expect(page.locator("#chat-title")).to_have_text("Gift Aid question")
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    expect(page.get_by_role("alert")).to_be_hidden()
    expect(page.get_by_label("Message", exact=True)).to_be_focused()  # the form is gone; typing goes here
    page.keyboard.type("Can I claim Gift Aid?")
    page.keyboard.press("Enter")
    expect(page.locator("#messages > li.mine", has_text="Gift Aid")).to_have_attribute("data-status", "sent")

    mine = chat_server.api("GET", "/api/conversations", DONOR).json()["results"]
    created = [c for c in mine if c["subject"] == "Gift Aid question"]
    assert len(created) == 1
    assert [m["content"] for m in stored(chat_server, created[0]["conversationId"])] == ["Can I claim Gift Aid?"]
    assert "token" not in page.url
    screenshot(page, "donor-new-conversation")


def test_too_many_open_windows_says_so_and_gets_in_once_one_closes(chat_server, new_page):
    """The 21st socket of one person is refused (4429): the page says why instead of failing silently,
    keeps trying (slowly), and gets in once another window closes."""
    conversation = new_conversation(chat_server)
    url = f"ws://127.0.0.1:{chat_server.port}/ws/conversations/{conversation}?token={chat_server.mint(DONOR)}"
    with ExitStack() as stack:
        others = [stack.enter_context(connect(url)) for _ in range(20)]  # the donor's other windows: the cap
        for page, width in ((new_page(), 1280), (new_page(width=360, height=740), 360)):
            page.goto(f"{chat_server.url}/chat/#token={chat_server.mint(DONOR)}&conversation={conversation}")
            alert = page.get_by_role("alert")
            expect(alert).to_contain_text("open in too many windows or tabs")
            expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
            screenshot(page, f"donor-too-many-windows-{width}")
        others.pop().close()
        others.pop().close()
        # Backoff with jitter starts at 4 s here (README): within the expectation's time.
        expect(page.locator("#connection")).to_have_attribute("data-state", "online", timeout=30_000)
        expect(alert).to_be_hidden()


def test_a_closed_conversation_asks_for_a_rating_live_and_thanks_once_sent(chat_server, new_page):
    conversation = new_conversation(chat_server, "Refund of a double charge")
    post(chat_server, conversation, "The duplicate charge is refunded; you will see it within 5 days.")
    page = new_page()
    open_chat(page, chat_server, conversation)
    expect(page.locator("#csat")).to_be_hidden()  # open: nothing to rate

    closed = chat_server.api("PUT", f"/api/conversations/{conversation}", AGENT, "ADMIN", json={"status": "CLOSED"})
    assert closed.status_code == 200, closed.text
    survey = page.locator("#csat")
    expect(survey).to_be_visible()  # asked live, by the close notice
    expect(page.get_by_role("group", name="How did we do?")).to_be_visible()
    kit.document(page, "donor-csat")

    survey.get_by_role("button", name="Send rating").click()
    expect(page.locator("#alert")).to_have_text("Choose a rating from 1 to 5.")  # nothing sent
    survey.locator("label", has_text="4").click()
    page.get_by_label("Anything to add?").fill("Quick and kind")
    survey.get_by_role("button", name="Send rating").click()
    expect(page.locator("#csat-thanks")).to_be_visible()
    expect(survey).to_be_hidden()
    rated = chat_server.api("GET", f"/api/conversations/{conversation}", DONOR).json()["csat"]
    assert (rated["rating"], rated["comment"]) == (4, "Quick and kind")

    # Opened again later: already rated, so thanked and not asked again.
    again = new_page(width=360, height=740)
    open_chat(again, chat_server, conversation)
    expect(again.locator("#csat-thanks")).to_be_visible()
    expect(again.locator("#csat")).to_be_hidden()


def test_the_rating_form_fits_a_small_screen(chat_server, new_page):
    conversation = new_conversation(chat_server, "Tax receipt")
    closed = chat_server.api("PUT", f"/api/conversations/{conversation}", AGENT, "ADMIN", json={"status": "CLOSED"})
    assert closed.status_code == 200, closed.text
    page = new_page(width=360, height=740)
    open_chat(page, chat_server, conversation)
    expect(page.locator("#csat")).to_be_visible()  # asked on opening a closed, unrated conversation
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    kit.document(page, "donor-csat-360px")


def test_a_notification_email_link_opens_its_conversation_once_signed_in(chat_server, new_page):
    """The email's link names the conversation, never a token: the page says to sign in (production points
    CHAT_DONOR_URL_TEMPLATE at the platform's page with the widget); the developer form has it filled in."""
    conversation = new_conversation(chat_server, "Receipt for March")
    page = new_page(width=360, height=740)
    page.goto(f"{chat_server.url}/chat/#conversation={conversation}")
    expect(page.locator("#signed-out")).to_contain_text("Sign in to your account first")
    page.get_by_text("Developers: open a chat with an access token").click()
    expect(page.get_by_label("Conversation id")).to_have_value(conversation)
    page.get_by_label("Access token").fill(chat_server.mint(DONOR))
    page.get_by_role("button", name="Open chat").click()
    expect(page.locator("#chat-title")).to_have_text("Receipt for March")
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")


def test_the_unsubscribe_page_asks_once_then_confirms(chat_server, new_page):
    from django.core import signing

    from notifications.services import UNSUBSCRIBE_SALT

    # The link a notification email carries, signed with the server's DJANGO_SECRET_KEY.
    donor = "donor-unsubscribing"  # not DONOR: the server is shared by this module's tests
    token = signing.dumps(
        ["USER", donor], key=chat_server.env["DJANGO_SECRET_KEY"], salt=UNSUBSCRIBE_SALT, compress=True
    )
    url = f"{chat_server.url}/notifications/unsubscribe/{token}"
    for width, suffix in ((1280, ""), (360, "-360px")):
        page = new_page(width=width, height=740)
        page.goto(url)
        expect(page.get_by_role("heading", name="Stop email notifications?")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        kit.document(page, f"unsubscribe-ask{suffix}")
        page.get_by_role("button", name="Stop emails").click()
        expect(page.get_by_role("heading", name="You will no longer get these emails")).to_be_visible()
        kit.document(page, f"unsubscribe-done{suffix}")
    preferences = chat_server.api("GET", "/api/me/notifications", donor).json()
    assert preferences == {"email": False, "emailAddressKnown": False}
    page.goto(url[:-4] + "AAAA")  # a link that was cut or changed
    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()


def test_the_notification_email_reads_well_wide_and_narrow(browser):
    from notifications.emails import render_email
    from notifications.models import Notification

    notification = Notification(
        conversation_id="conv_example", user_id=DONOR, role="USER", unread_count=2, first_unread_seq=3, last_seq=4
    )
    email = render_email(notification, "donor@example.org")
    html = email.alternatives[0][0]
    assert "Read and reply" in html and "Stop these emails" in html
    for width, suffix in ((1280, ""), (360, "-360px")):
        page = browser.new_page(viewport={"width": width, "height": 600})
        try:
            page.set_content(html)
            expect(page.get_by_role("link", name="Read and reply")).to_have_attribute(
                "href", "http://localhost:3006/chat/#conversation=conv_example"
            )
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            kit.document(page, f"notification-email{suffix}")
        finally:
            page.close()


def test_the_email_switch_shows_with_an_address_and_saves_the_choice(chat_server, new_page):
    conversation = new_conversation(chat_server, "Gift receipt")
    page = new_page(width=360, height=740)
    open_chat(page, chat_server, conversation)  # a token without an email claim
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    expect(page.locator("#notify")).to_be_hidden()  # no address: no promise of emails

    token = chat_server.mint(DONOR, email="donor-b@example.org")
    page.goto(f"{chat_server.url}/chat/#token={token}&conversation={conversation}")
    switch = page.get_by_label("Email me when support replies while I am away")
    expect(switch).to_be_visible()
    expect(switch).to_be_checked()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    kit.document(page, "donor-email-switch-360px")
    page.set_viewport_size({"width": 1280, "height": 740})
    kit.document(page, "donor-email-switch")
    switch.uncheck()
    expect(switch).to_be_enabled()
    expect(switch).not_to_be_checked()
    choice = chat_server.api("GET", "/api/me/notifications", DONOR).json()
    assert choice == {"email": False, "emailAddressKnown": True}
    page.reload()
    page.goto(f"{chat_server.url}/chat/#token={token}&conversation={conversation}")
    expect(page.get_by_label("Email me when support replies while I am away")).not_to_be_checked()


def test_a_close_is_seen_live_the_draft_survives_and_a_new_conversation_starts(chat_server, new_page):
    conversation = new_conversation(chat_server, "Receipt for March")
    page = new_page(width=360, height=740)
    open_chat(page, chat_server, conversation)
    textarea = page.get_by_label("Message", exact=True)
    textarea.fill("And one more question about April")  # typed, not sent, when support closes

    closed = chat_server.api("PUT", f"/api/conversations/{conversation}", AGENT, "ADMIN", json={"status": "CLOSED"})
    assert closed.status_code == 200, closed.text
    ended = page.locator("#ended")
    expect(ended).to_contain_text("This conversation was closed.")
    expect(page.locator("#composer")).to_be_hidden()
    expect(page.locator("#connection")).to_have_text("Closed")  # not a green "Online"
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    kit.document(page, "donor-closed-360px")
    page.set_viewport_size({"width": 1280, "height": 740})
    kit.document(page, "donor-closed")
    page.set_viewport_size({"width": 360, "height": 740})

    # Reopened by staff: the composer is back, with the draft.
    reopened = chat_server.api("PUT", f"/api/conversations/{conversation}", AGENT, "ADMIN", json={"status": "ACTIVE"})
    assert reopened.status_code == 200, reopened.text
    expect(textarea).to_be_visible()
    expect(textarea).to_have_value("And one more question about April")
    expect(page.locator("#connection")).to_have_text("Online")
    chat_server.api("PUT", f"/api/conversations/{conversation}", AGENT, "ADMIN", json={"status": "CLOSED"})
    expect(ended).to_be_visible()

    before = {c["conversationId"] for c in chat_server.api("GET", "/api/conversations", DONOR).json()["results"]}
    ended.get_by_role("button", name="Start a new conversation").click()
    expect(page.locator("#composer")).to_be_visible()
    expect(textarea).to_have_value("And one more question about April")  # nothing typed is lost
    expect(textarea).to_be_focused()
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    after = {c["conversationId"] for c in chat_server.api("GET", "/api/conversations", DONOR).json()["results"]}
    assert len(after - before) == 1 and conversation in after


def test_an_archived_conversation_is_read_only(chat_server, new_page):
    conversation = new_conversation(chat_server, "Old question")
    post(chat_server, conversation, "Answered long ago")
    archived = chat_server.api("PUT", f"/api/conversations/{conversation}", AGENT, "ADMIN", json={"status": "ARCHIVED"})
    assert archived.status_code == 200, archived.text
    page = new_page()
    open_chat(page, chat_server, conversation)
    expect(page.locator("#ended")).to_contain_text("archived")
    expect(page.locator("#composer")).to_be_hidden()
    expect(page.locator("#messages .content", has_text="Answered long ago")).to_be_visible()
    expect(page.locator("#messages > li.theirs").get_by_role("button")).to_have_count(0)  # read-only: no actions


def test_times_carry_a_date_when_not_today(chat_server, new_page):
    conversation = new_conversation(chat_server, "Dates")
    post(chat_server, conversation, "Sent today, seen two days later")
    page = new_page()
    page.clock.install(time=time.time() + 2 * 86400)  # the donor opens it two days later
    open_chat(page, chat_server, conversation)
    stamp = page.locator("#messages li.theirs time").first
    expect(stamp).to_be_visible()
    shown, iso = stamp.text_content(), stamp.get_attribute("datetime")
    day = page.evaluate("(iso) => new Date(iso).toLocaleString([], {month: 'short', day: 'numeric'})", iso)
    assert shown.startswith(day) or day in shown, (shown, day)


def react_as(server: LiveServer, conversation: str, message_id: str, emoji: str, user: str, role: str, on=True) -> dict:
    path = f"/api/conversations/{conversation}/messages/{message_id}/reactions/{quote(emoji)}"
    response = server.api("PUT" if on else "DELETE", path, user, role)
    assert response.status_code == 200, response.text
    return response.json()


def change_as(server: LiveServer, conversation: str, message_id: str, method: str, user: str, role: str, **body):
    response = server.api(method, f"/api/conversations/{conversation}/messages/{message_id}", user, role, **body)
    assert response.status_code in (200, 204), response.text
    return response


def age_message(server: LiveServer, message_id: str, minutes: int) -> None:
    """Moves a stored message's time back, through the worker's own database (a manage.py shell)."""
    code = (
        "from datetime import timedelta; from django.utils import timezone; from messaging.models import Message; "
        f"Message.objects.filter(pk={message_id!r}).update(created_at=timezone.now() - timedelta(minutes={minutes}))"
    )
    command = [sys.executable, "manage.py", "shell", "-c", code]
    subprocess.run(command, cwd=BASE_DIR, env=server.env, check=True, timeout=60)


def bubble(page: Page, message_id: str):
    return page.locator(f'#messages > li[data-message-id="{message_id}"]')


def test_edits_deletions_reactions_and_replies_both_ways_live_and_after_being_offline(chat_server, new_page):
    conversation = new_conversation(chat_server, "Which appeal")
    question = post(chat_server, conversation, "Which appeal did you give to?")
    page = new_page(width=420, height=800)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    open_chat(page, chat_server, conversation)
    textarea = page.get_by_label("Message", exact=True)
    asked = bubble(page, question["messageId"])
    with staff_socket(chat_server, conversation) as staff:
        # Reply: the quote shows above the box, goes out as replyTo, and shows above the sent text.
        asked.hover()
        asked.get_by_role("button", name="Reply").click()
        expect(page.locator("#replying")).to_contain_text("Replying to Support:")
        expect(page.locator("#replying")).to_contain_text("Which appeal did you give to?")
        expect(textarea).to_be_focused()
        textarea.fill("The Sylhet flood appeal, 4111 1111 1111 1111")
        textarea.press("Enter")
        answer = staff.next(lambda f: f["type"] == "message_received")
        assert answer["replyTo"]["messageId"] == question["messageId"]
        assert answer["content"] == "The Sylhet flood appeal, **** **** **** 1111"
        mine = bubble(page, answer["messageId"])
        expect(mine.locator(".quote")).to_have_text(re.compile("Support.*Which appeal did you give to"))
        expect(mine.locator(".redacted")).to_have_text("Card number hidden for your safety")
        expect(page.locator("#replying")).to_be_hidden()

        # The donor edits their own message: "edited" on both sides, live.
        mine.hover()
        mine.get_by_role("button", name="Edit").click()
        editor = mine.get_by_label("Edit your message")
        expect(editor).to_be_focused()
        editor.fill("The Sylhet flood appeal")
        editor.press("Enter")
        expect(mine.locator(".content")).to_have_text("The Sylhet flood appeal")
        expect(mine.locator(".edited")).to_have_text("edited")
        updated = staff.next(lambda f: f["type"] == "message_updated")
        assert updated["message"]["content"] == "The Sylhet flood appeal"
        assert updated["message"]["editedAt"]

        # Staff react to it: the count shows live, not pressed (not the donor's own).
        react_as(chat_server, conversation, answer["messageId"], "🙏", AGENT, "ADMIN")
        chip = mine.locator(".reaction", has_text="🙏")
        expect(chip).to_have_text("🙏1")
        expect(chip).to_have_attribute("aria-pressed", "false")
        # The donor reacts through the picker, by keyboard: the list, the arrows, Tab to the actions.
        page.locator("#messages").focus()
        page.keyboard.press("ArrowUp")  # the newest message: the donor's answer
        page.keyboard.press("ArrowUp")  # the question
        expect(asked).to_be_focused()
        page.keyboard.press("Tab")
        expect(asked.get_by_role("button", name="Add a reaction")).to_be_focused()
        page.keyboard.press("Enter")
        picker = asked.get_by_role("group", name="Reactions")
        expect(picker.get_by_role("button")).to_have_count(6)
        page.keyboard.press("Escape")  # closes the picker only; focus goes back to its button
        expect(picker).to_have_count(0)
        expect(asked.get_by_role("button", name="Add a reaction")).to_be_focused()
        page.keyboard.press("Enter")
        picker.get_by_role("button", name="❤️").click()
        heart = asked.locator(".reaction", has_text="❤️")
        expect(heart).to_have_attribute("aria-pressed", "true")
        on_question = lambda f: f["type"] == "reaction_updated" and f["messageId"] == question["messageId"]  # noqa: E731
        frame = staff.next(on_question)
        assert frame["reactions"] == [{"emoji": "❤️", "count": 1, "userIds": [DONOR]}]
        react_as(chat_server, conversation, question["messageId"], "❤️", AGENT, "ADMIN")
        expect(heart).to_have_text("❤️2")  # staff added theirs: live
        heart.click()  # the donor takes theirs back
        expect(heart).to_have_text("❤️1")
        expect(heart).to_have_attribute("aria-pressed", "false")
        assert staff.next(on_question)["reactions"][0]["count"] == 2
        assert staff.next(on_question)["reactions"][0]["count"] == 1

        # Staff edit their question: the text, "edited", and the quote in the donor's reply follow.
        change_as(
            chat_server, conversation, question["messageId"], "PATCH", AGENT, "ADMIN", json={"content": "Which appeal?"}
        )
        expect(asked.locator(".content")).to_have_text("Which appeal?")
        expect(asked.locator(".edited")).to_be_visible()
        expect(mine.locator(".quote-text")).to_have_text("Which appeal?")

        # The donor deletes a message of theirs, after a confirmation: a tombstone on both sides.
        extra = "Sent to the wrong chat"
        textarea.fill(extra)
        textarea.press("Enter")
        wrong = staff.next(lambda f: f["type"] == "message_received")
        mistaken = bubble(page, wrong["messageId"])
        mistaken.hover()
        mistaken.get_by_role("button", name="Delete").click()
        dialog = page.get_by_role("dialog", name="Delete this message?")
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Cancel").click()
        expect(mistaken.locator(".content")).to_have_text(extra)  # cancelled: nothing happened
        mistaken.hover()
        mistaken.get_by_role("button", name="Delete").click()
        dialog.get_by_role("button", name="Delete").click()
        expect(mistaken.locator(".content")).to_have_text("This message was deleted")
        expect(mistaken.get_by_role("button")).to_have_count(0)  # no reactions, no actions
        deleted = staff.next(lambda f: f["type"] == "message_deleted")
        assert deleted["messageId"] == wrong["messageId"]
        stored_copy = next(m for m in stored(chat_server, conversation) if m["messageId"] == wrong["messageId"])
        assert (stored_copy["content"], stored_copy["deletedAt"] is not None) == ("", True)
        # How it looks: wide with a message's actions showing, narrow with the reaction picker open.
        page.set_viewport_size({"width": 1280, "height": 800})
        asked.hover()
        kit.document(page, "donor-changes")
        page.set_viewport_size({"width": 360, "height": 740})
        asked.hover()
        asked.get_by_role("button", name="Add a reaction").click()
        expect(picker).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        kit.document(page, "donor-changes-360px")
        page.keyboard.press("Escape")
        expect(picker).to_have_count(0)

    # Offline: the page's socket closes; staff change things meanwhile; back online, the page resumes
    # with changedSince and shows every change before anything new.
    page.context.set_offline(True)
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    change_as(
        chat_server,
        conversation,
        question["messageId"],
        "PATCH",
        AGENT,
        "ADMIN",
        json={"content": "Which appeal, please?"},
    )
    react_as(chat_server, conversation, answer["messageId"], "👍", AGENT, "ADMIN")
    change_as(chat_server, conversation, question["messageId"], "DELETE", AGENT, "ADMIN")
    post(chat_server, conversation, "Thank you, that is all we needed.")
    page.context.set_offline(False)
    expect(page.locator("#connection")).to_have_attribute("data-state", "online")
    expect(asked.locator(".content")).to_have_text("This message was deleted")
    expect(mine.locator(".quote-text")).to_have_text("Deleted message")
    expect(mine.locator(".reaction", has_text="👍")).to_have_text("👍1")
    expect(bubbles(page).last).to_contain_text("that is all we needed")
    resumed = sockets[-1]
    assert "changedSince=" in resumed and "lastMessageId=" in resumed, resumed


def test_edit_is_offered_only_within_the_window_and_a_late_edit_says_why(chat_server, new_page):
    conversation = new_conversation(chat_server, "Late edit")
    mine = post(chat_server, conversation, "Written a while ago", DONOR, "USER")
    later = new_page()
    later.clock.install(time=time.time() + 16 * 60)  # the donor comes back 16 minutes later
    open_chat(later, chat_server, conversation)
    old = bubble(later, mine["messageId"])
    old.hover()
    expect(old.get_by_role("button", name="Delete")).to_be_visible()
    expect(old.get_by_role("button", name="Edit")).to_have_count(0)

    # Opened while the window was open, the page offers Edit; by the time the donor saves, the server says
    # it is too late (the message's time is moved back on the server, as if the page had been left open).
    early = new_page()
    fresh = post(chat_server, conversation, "Written just now", DONOR, "USER")
    open_chat(early, chat_server, conversation)
    age_message(chat_server, fresh["messageId"], minutes=20)
    item = bubble(early, fresh["messageId"])
    item.hover()
    item.get_by_role("button", name="Edit").click()
    item.get_by_label("Edit your message").fill("Changed too late")
    item.get_by_label("Edit your message").press("Enter")
    expect(early.get_by_role("alert")).to_contain_text("can no longer be changed")
    expect(item.locator(".content")).to_have_text("Written just now")
    expect(item.get_by_role("button", name="Edit")).to_have_count(0)
