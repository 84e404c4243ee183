"""The two pages people use, talking to each other: a donor on /chat/ and a staff member in the admin
workspace, in two browser contexts (two separate people) of real headless Chromium, through one real
Daphne worker. Then the staff member closes the conversation from the inbox and the donor's page shows
the SYSTEM message."""

from __future__ import annotations

from playwright.sync_api import expect

from tests import browser as kit
from tests.browser import screenshot
from tests.test_browser_admin import CHANGELIST, DONOR, STAFF_ID, log_in, new_conversation, open_conversation, row
from tests.test_browser_admin import staff_account as staff_account  # the fixture, for this module's tests

browser, chat_server, new_page = kit.browser, kit.chat_server, kit.new_page


def test_donor_page_and_staff_console_talk_live_and_the_close_reaches_the_donor(chat_server, staff_account, new_page):
    conversation = new_conversation(chat_server, "Where is my receipt?")
    donor = new_page(width=420, height=760)  # a phone-sized window; new_page gives each its own context
    donor.goto(f"{chat_server.url}/chat/#token={chat_server.mint(DONOR)}&conversation={conversation}")
    expect(donor.locator("#connection")).to_have_attribute("data-state", "online")
    staff = new_page()
    log_in(staff, chat_server)
    open_conversation(staff, chat_server, conversation)
    staff_messages = staff.locator("[data-desk-messages] .desk-msg-body")

    # Donor -> staff, typed and sent with Enter; the workspace shows it live, as text.
    message_box = donor.get_by_label("Message", exact=True)
    message_box.fill("Hi, I donated <b>50</b> and got no receipt")
    expect(staff.locator("[data-desk-typing]")).to_have_text("The donor is typing…")
    message_box.press("Enter")
    expect(staff_messages.last).to_have_text("Hi, I donated <b>50</b> and got no receipt")
    expect(staff.locator("[data-desk-messages] .desk-msg-body b")).to_have_count(0)
    # The staff page had it on screen, so it was read: the donor's tick says so.
    mine = donor.locator("#messages > li.mine", has_text="got no receipt")
    expect(mine.locator(".tick")).to_have_attribute("aria-label", "Read")

    # Staff -> donor: typing shows on the donor's page, then the reply.
    reply = staff.get_by_label("Message", exact=True)
    reply.fill("Sorry! Sending it again now.")
    expect(donor.locator("#typing")).to_have_text("Support is typing…")
    reply.press("Enter")
    expect(donor.locator("#messages > li.theirs .content").last).to_have_text("Sorry! Sending it again now.")
    expect(donor.locator("#typing")).to_have_text("")
    # The donor's page read the reply: the staff page shows the receipt.
    expect(staff.locator(".desk-msg").last.locator(".desk-receipt")).to_have_text("Seen by the donor")
    # Test artifacts under var/test-artifacts/; the README's copies in docs/screenshots/ come from here.
    screenshot(donor, "e2e-donor")
    screenshot(staff, "e2e-staff")

    # The close action from the inbox (checkbox, action, Go): the donor's page shows the notice.
    staff.goto(f"{chat_server.url}{CHANGELIST}")
    row(staff, conversation).locator('input[name="_selected_action"]').check()
    staff.select_option('select[name="action"]', "close")
    staff.get_by_role("button", name="Go").click()
    expect(row(staff, conversation).locator(".field-status")).to_have_text("Closed")
    # The donor sees the staff member's display name, never their username.
    expect(donor.locator("#messages > li.system").last).to_contain_text("Conversation closed by Support")
    expect(donor.locator("#messages")).not_to_contain_text(STAFF_ID)
    screenshot(donor, "e2e-donor-closed")

    # Each message exactly once on the donor's page, as stored.
    history = chat_server.api("GET", f"/api/conversations/{conversation}/messages", DONOR).json()["results"]
    stored = [m["content"] for m in history if m["messageType"] == "TEXT"]
    assert stored == ["Hi, I donated <b>50</b> and got no receipt", "Sorry! Sending it again now."]
    expect(donor.locator("#messages > li:not(.system) .content")).to_have_text(stored)
