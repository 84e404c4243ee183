"""axe-core (npm, pinned in package-lock.json) run in real Chromium on the three pages people use: the widget
on a host page (its launcher and the chat inside the iframe), the donor page, and the console's conversation
page. No serious or critical violation is allowed; the others are printed for a person to judge."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Frame, Page, expect

from chatservice.config import BASE_DIR
from tests import browser as kit
from tests.test_browser_donor import AGENT, DONOR, change_as, new_conversation, open_chat, post, react_as
from tests.test_browser_widget import HOST, chat, host_sites, launcher, staff_says, widget_server  # noqa: F401
from tests.test_browser_workspace import agents, log_in  # noqa: F401

browser, chat_server, new_page = kit.browser, kit.chat_server, kit.new_page

AXE = BASE_DIR / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make test` installs it (npm ci)")
    return Path(AXE).read_text()


def audit(target: Page | Frame, axe_source: str, name: str) -> None:
    """Run axe in `target` (evaluated through the DevTools protocol, so the pages' CSP does not stop it)."""
    target.evaluate(axe_source + ";0")
    result = target.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    blocking = [v for v in result if v["impact"] in BLOCKING]
    for violation in result:
        print(f"{name}: {violation['impact']} {violation['id']}: {violation['help']} {violation['nodes'][:3]}")
    assert not blocking, f"{name}: {blocking}"


def test_the_widget_has_no_serious_violations(widget_server, host_sites, new_page, axe_source):  # noqa: F811
    created = widget_server.api("POST", "/api/conversations", "donor-widget", json={"subject": "Accessibility"})
    staff_says(widget_server, created.json()["conversationId"], "How can we help you today?")
    page = new_page()
    page.goto(f"{HOST}/campaigns/sylhet")
    expect(page.locator("#careforall-chat .badge")).to_be_visible()
    audit(page, axe_source, "widget closed (host page)")
    launcher(page).click()
    expect(chat(page).locator("#messages .content").last).to_have_text("How can we help you today?")
    audit(page, axe_source, "widget open (host page)")
    frame = next(f for f in page.frames if "/chat/embed" in f.url)
    audit(frame, axe_source, "widget open (chat)")


def test_the_donor_page_has_no_serious_violations(chat_server, new_page, axe_source):
    conversation = new_conversation(chat_server, "Accessibility of the donor page")
    hello = post(chat_server, conversation, "Hello, how can we help?")
    # What a conversation has once messages change: a reaction, a reply quoting an edited message, a tombstone.
    react_as(chat_server, conversation, hello["messageId"], "👍", DONOR, "USER")
    change_as(chat_server, conversation, hello["messageId"], "PATCH", AGENT, "ADMIN", json={"content": "Hello!"})
    reply = {"content": "Where is my receipt?", "replyTo": hello["messageId"]}
    assert chat_server.api("POST", f"/api/conversations/{conversation}/messages", DONOR, json=reply).status_code == 201
    gone = post(chat_server, conversation, "A mistake", DONOR, "USER")
    change_as(chat_server, conversation, gone["messageId"], "DELETE", DONOR, "USER")
    page = new_page()
    page.goto(f"{chat_server.url}/chat/")
    audit(page, axe_source, "donor page (signed out)")
    open_chat(page, chat_server, conversation)
    expect(page.locator("#messages .tombstone")).to_have_text("This message was deleted")
    audit(page, axe_source, "donor page (conversation)")
    # A message's actions, the reaction picker, the reply strip and the delete dialog.
    mine = page.locator("#messages > li.mine.actionable")
    mine.focus()
    mine.get_by_role("button", name="Add a reaction").click()
    expect(mine.get_by_role("group", name="Reactions")).to_be_visible()
    audit(page, axe_source, "donor page (reaction picker)")
    page.keyboard.press("Escape")
    mine.get_by_role("button", name="Reply").click()
    expect(page.locator("#replying")).to_be_visible()
    audit(page, axe_source, "donor page (replying)")
    mine.focus()
    mine.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    audit(page, axe_source, "donor page (delete dialog)")


def test_the_console_conversation_page_has_no_serious_violations(chat_server, agents, new_page, axe_source):  # noqa: F811
    created = chat_server.api("POST", "/api/conversations", "donor-a11y", json={"subject": "Receipt missing"})
    conversation = created.json()["conversationId"]
    path = f"/api/conversations/{conversation}/messages"
    hello = chat_server.api("POST", path, "donor-a11y", json={"content": "Hi!"}).json()
    # An edited message with a reaction, a reply quoting it, a tombstone.
    assert chat_server.api(
        "PATCH", f"{path}/{hello['messageId']}", "donor-a11y", json={"content": "Hi there!"}
    ).is_success
    assert chat_server.api("PUT", f"{path}/{hello['messageId']}/reactions/%F0%9F%91%8D", "donor-a11y").is_success
    reply = {"content": "Which receipt?", "replyTo": hello["messageId"]}
    assert chat_server.api("POST", path, "agent-a11y", "ADMIN", json=reply).status_code == 201
    gone = chat_server.api("POST", path, "donor-a11y", json={"content": "Oops"}).json()
    assert chat_server.api("DELETE", f"{path}/{gone['messageId']}", "donor-a11y").status_code == 204
    page = new_page()
    log_in(page, chat_server, "maria")
    page.goto(f"{chat_server.url}/admin/desk/?c={conversation}")
    expect(page.locator("[data-desk-connection]")).to_have_text("Live")
    expect(page.locator(".desk-tombstone")).to_be_visible()
    audit(page, axe_source, "console conversation page")
    first = page.locator(f'.desk-msg[data-message-id="{hello["messageId"]}"]')
    first.focus()
    first.get_by_role("button", name="Add a reaction").click()
    expect(first.get_by_role("group", name="Reactions")).to_be_visible()
    audit(page, axe_source, "console (reaction picker)")
    page.keyboard.press("Escape")
    first.get_by_role("button", name="Reply", exact=True).click()
    audit(page, axe_source, "console (replying)")
    first.get_by_role("button", name="edited").click()
    expect(page.get_by_role("dialog", name="Earlier versions")).to_contain_text("Hi!")
    audit(page, axe_source, "console (earlier versions)")
    page.keyboard.press("Escape")
    first.focus()
    first.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog", name="Delete this message?")).to_be_visible()
    audit(page, axe_source, "console (delete dialog)")
