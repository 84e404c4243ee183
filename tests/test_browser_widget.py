"""The embeddable widget in real Chromium: a host page on one local origin (http://localhost:H) embeds
widget.js served by a real Daphne worker on another (http://127.0.0.1:S). Covered: identify, send and
receive, the live unread badge, a reload and a navigation that keep the conversation, the focus trap and
Escape, 320 px, and origins that are refused (the iframe does not render; a message from another window is
ignored)."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import FrameLocator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests import browser as kit
from tests.browser import LiveServer
from tests.servers import free_port

browser, new_page = kit.browser, kit.new_page

DONOR = "donor-widget"
AGENT = "agent-widget"
HOST_PORT = free_port()
HOST = f"http://localhost:{HOST_PORT}"  # allowed
ELSEWHERE_PORT = free_port()
ELSEWHERE = f"http://localhost:{ELSEWHERE_PORT}"  # not on the list


class HostPages(BaseHTTPRequestHandler):
    """A donation platform's pages: each embeds the widget and identifies the donor it is given."""

    service = ""
    tokens: dict[str, str] = {}
    locale = ""

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/opener.html":
            body = OPENER_PAGE.replace("TOKEN", self.tokens.get("mallory", ""))
        else:
            query = self.path.partition("?")[2]
            anonymous = "anonymous" in query  # a page that identifies nobody (yet)
            locale = "bn" if "bn" in query else ""  # the host's data-locale
            body = host_page(self.service, "" if anonymous else self.tokens.get(DONOR, ""), path, locale)
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def host_page(service: str, token: str, path: str, locale: str) -> str:
    locale_attr = f' data-locale="{locale}"' if locale else ""
    identify = f"CareForAllChat.identify({token!r});" if token else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>CareForAll: Clean water for Sylhet</title>
<style>
 body {{ margin: 0; font: 16px/1.5 system-ui, sans-serif; color: #1b1f24; background: #fff; }}
 header {{ padding: 14px 24px; background: #137333; color: #fff; font-weight: 700; }}
 main {{ max-width: 760px; margin: 24px auto; padding: 0 20px; }}
 .bar {{ height: 10px; background: #e3e8ee; border-radius: 5px; }} .bar span {{ display: block; width: 64%;
 height: 10px; background: #137333; border-radius: 5px; }} a {{ color: #0b57d0; }}
</style>
<script src="{service}/widget.js"{locale_attr} async></script>
<script>
 window.CareForAllChat = window.CareForAllChat || {{ q: [], identify(t) {{ this.q.push(["identify", t]); }} }};
 {identify}
</script></head>
<body><header>CareForAll</header><main>
<h1>Clean water for Sylhet</h1><p>{html.escape(path)}: 640 donors have given 64% of the goal.</p>
<div class="bar"><span></span></div>
<p>Questions about your donation or your receipt? Our support team answers here.</p>
<p><a href="/receipts">Your receipts</a></p>
</main></body></html>"""


# A page of another origin that opens the chat page in a window of its own (no frame-ancestors check applies
# to a top-level window) and hands it a token: a donor typing there would write into the attacker's chat.
OPENER_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body><script>
 window.openChat = (url) => { window.chat = window.open(url, "_blank"); };
 window.fire = () => window.chat.postMessage({source: "careforall-chat-host", type: "identify", token: "TOKEN"}, "*");
</script></body></html>"""


@pytest.fixture(scope="module")
def widget_server(keypair, tmp_path_factory) -> Iterator[LiveServer]:
    with kit.live_server(keypair, tmp_path_factory.mktemp("widget-server"), CHAT_WIDGET_ALLOWED_ORIGINS=HOST) as server:
        yield server


@pytest.fixture(scope="module")
def host_sites(widget_server) -> Iterator[None]:
    HostPages.service = widget_server.url
    HostPages.tokens = {DONOR: widget_server.mint(DONOR, ttl=3600), "mallory": widget_server.mint("mallory", ttl=3600)}
    HostPages.locale = ""
    servers = [ThreadingHTTPServer(("127.0.0.1", port), HostPages) for port in (HOST_PORT, ELSEWHERE_PORT)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def chat(page: Page) -> FrameLocator:
    return page.frame_locator("#careforall-chat iframe")


def launcher(page: Page):
    return page.locator("#careforall-chat .launcher")


def donor_unread(server: LiveServer) -> int:
    listing = server.api("GET", "/api/conversations?limit=100", DONOR).json()["results"]
    return sum(c["unreadCount"] or 0 for c in listing)


def read_everything(server: LiveServer) -> None:
    """Waits (polling the server, as expect() polls the page) until the donor has nothing unread."""
    deadline = time.monotonic() + kit.EXPECT_TIMEOUT_MS / 1000
    while donor_unread(server):
        assert time.monotonic() < deadline, "the donor's reads never reached the server"
        time.sleep(0.05)


def staff_says(server: LiveServer, conversation: str, text: str) -> None:
    response = server.api("POST", f"/api/conversations/{conversation}/messages", AGENT, "ADMIN", json={"content": text})
    assert response.status_code == 201, response.text


def test_identify_badge_send_receive_reload_and_navigation(widget_server, host_sites, new_page):
    created = widget_server.api("POST", "/api/conversations", DONOR, json={"subject": "My receipt for March"})
    conversation = created.json()["conversationId"]
    widget_server.api("POST", f"/api/conversations/{conversation}/messages", DONOR, json={"content": "Where is it?"})
    staff_says(widget_server, conversation, "It is on its way; you will have it today.")
    expected = donor_unread(widget_server)
    assert expected >= 1

    page = new_page()
    page.goto(f"{HOST}/campaigns/sylhet")
    badge = page.locator("#careforall-chat .badge")
    expect(badge).to_have_text(str(expected))  # before the panel was ever opened
    expect(launcher(page)).to_have_attribute("aria-label", f"Chat with support, {expected} unread")
    kit.document(page, "widget-closed")

    launcher(page).click()
    expect(chat(page).locator("#chat-title")).to_have_text("My receipt for March")
    expect(chat(page).locator("#messages .content").last).to_have_text("It is on its way; you will have it today.")
    expect(chat(page).locator("#message")).to_be_focused()
    expect(badge).to_be_hidden()  # read as it was shown
    page.keyboard.type("Thank you! Can it go to my new address?")
    page.keyboard.press("Enter")
    expect(chat(page).locator("#messages li.mine").last).to_have_attribute("data-status", re.compile("sent|read"))
    history = widget_server.api("GET", f"/api/conversations/{conversation}/messages", DONOR).json()["results"]
    assert history[-1]["content"] == "Thank you! Can it go to my new address?"
    staff_says(widget_server, conversation, "Yes, send it here and we will update it.")
    expect(chat(page).locator("#messages .content").last).to_have_text("Yes, send it here and we will update it.")
    read_everything(widget_server)  # shown in the open panel: read (the server's count says so)
    expect(badge).to_be_hidden()
    kit.document(page, "widget-open")

    # Closed, a reply arrives: the badge counts it live.
    page.keyboard.press("Escape")
    expect(page.locator("#careforall-chat .panel")).to_be_hidden()
    staff_says(widget_server, conversation, "Done: the receipt goes to the new address.")
    expect(badge).to_have_text("1")

    # Reload and navigate: the conversation comes back; only its id is stored, never the token.
    for url in (f"{HOST}/campaigns/sylhet", f"{HOST}/receipts"):
        page.goto(url)
        launcher(page).click()
        expect(chat(page).locator("#chat-title")).to_have_text("My receipt for March")
        expect(chat(page).locator("#messages .content").last).to_have_text("Done: the receipt goes to the new address.")
        stored = page.evaluate("() => JSON.stringify(sessionStorage)")  # the host page's: the iframe's is blocked
        assert conversation in stored and "eyJ" not in stored


def test_focus_is_trapped_escape_closes_and_320_px_fits(widget_server, host_sites, new_page):
    page = new_page(width=320, height=640)
    page.goto(f"{HOST}/help")
    launcher(page).focus()
    page.keyboard.press("Enter")
    expect(chat(page).locator("#chat-title")).to_be_visible()
    for _ in range(12):  # round and round: focus never leaves the panel for the host page
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "careforall-chat"
        assert page.evaluate("document.activeElement.shadowRoot.activeElement.tagName") in ("IFRAME", "SPAN")
    for _ in range(4):
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.activeElement.id") == "careforall-chat"
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    assert chat(page).locator("body").evaluate("() => document.documentElement.scrollWidth") <= 320
    kit.document(page, "widget-open-320")
    chat(page).locator("#close-widget").click()
    expect(page.locator("#careforall-chat .panel")).to_be_hidden()
    assert page.evaluate("document.activeElement.shadowRoot.activeElement.className") == "launcher"


def test_a_host_not_on_the_list_gets_no_chat(widget_server, host_sites, new_page):
    page = new_page()
    with page.expect_response(re.compile(r"/chat/embed")) as embed:
        page.goto(f"{ELSEWHERE}/campaigns/sylhet")
    policy = embed.value.headers["content-security-policy"]
    assert f"frame-ancestors {HOST}" in policy and ELSEWHERE not in policy
    launcher(page).click()
    expect(page.locator("#careforall-chat iframe")).to_be_visible()
    frame = next(f for f in page.frames if f.parent_frame is not None)
    frame.wait_for_load_state()
    # Chromium refuses to render it (frame-ancestors): an error page, not the chat.
    assert frame.url.startswith("chrome-error://"), frame.url
    expect(page.locator("#careforall-chat .badge")).to_be_hidden()


def test_the_chat_takes_identify_only_from_its_parent_on_an_allowed_origin(widget_server, host_sites, new_page):
    widget_server.api("POST", "/api/conversations", DONOR, json={"subject": "Only mine"})
    page = new_page()
    page.goto(f"{HOST}/campaigns/sylhet?anonymous=1")
    expect(chat(page).locator("#waiting")).to_be_attached()
    frame = next(f for f in page.frames if "/chat/embed" in f.url)
    frame.wait_for_load_state()  # its listener is installed (deferred scripts ran before `load`)
    forged = {"source": "careforall-chat-host", "type": "identify", "token": HostPages.tokens["mallory"]}
    # Messages as the browser would deliver them from a page of another origin, and from a window that is not
    # the parent (both impossible to arrange for real here: frame-ancestors, COOP and the shadow root stop them
    # first), dispatched into the chat's own window.
    for origin, source in ((ELSEWHERE, "window.parent"), (HOST, "window")):
        script = (
            f"data => window.dispatchEvent(new MessageEvent('message', {{data, origin: {origin!r}, source: {source}}}))"
        )
        with pytest.raises(PlaywrightTimeout), page.expect_request(lambda r: "/api/" in r.url, timeout=2000):
            frame.evaluate(script, forged)  # taken, the token would be used at once: the conversation list
    expect(chat(page).locator("#chat")).to_have_attribute("hidden", "")  # still waiting for its donor
    # The parent on an allowed origin is heard.
    page.evaluate(f"CareForAllChat.identify({HostPages.tokens[DONOR]!r})")
    launcher(page).click()
    expect(chat(page).locator("#chat-title")).to_have_text("Only mine")


def test_a_window_that_opens_the_chat_cannot_reach_it(widget_server, host_sites, new_page):
    page = new_page()
    page.goto(f"{ELSEWHERE}/opener.html")
    with page.expect_popup() as opened:
        page.evaluate(f"openChat({widget_server.url + '/chat/embed'!r})")
    chat_window = opened.value
    chat_window.wait_for_load_state()  # its listener is installed (deferred scripts ran before `load`)
    # Taken, the token would be used at once (the inbox socket, the conversation list); ignored, nothing.
    with pytest.raises(PlaywrightTimeout), chat_window.expect_request(lambda r: "/api/" in r.url, timeout=2000):
        page.evaluate("fire()")
    expect(chat_window.locator("#waiting")).to_be_visible()
    expect(chat_window.locator("#chat")).to_be_hidden()


def test_the_widget_speaks_bengali_when_the_host_says_so(widget_server, host_sites, new_page):
    created = widget_server.api("POST", "/api/conversations", DONOR, json={"subject": "রসিদ"})
    conversation = created.json()["conversationId"]
    staff_says(widget_server, conversation, "আপনার রসিদ আজই পাঠানো হবে।")
    page = new_page(width=1280, height=800)
    page.goto(f"{HOST}/campaigns/sylhet?bn")  # data-locale="bn"; the browser itself asks for English
    expect(launcher(page)).to_have_attribute("aria-label", re.compile("^সহায়তার সাথে চ্যাট, .+টি অপঠিত$"))
    launcher(page).click()
    frame = chat(page)
    expect(frame.locator("html")).to_have_attribute("lang", "bn")
    expect(frame.locator("h1")).to_have_text("CareForAll সহায়তা")
    expect(frame.locator("#connection")).to_have_text("অনলাইন")
    expect(frame.locator("label[for=message]")).to_have_text("বার্তা")
    expect(frame.locator("#send")).to_have_text("পাঠান")
    expect(frame.locator("#messages .meta .sender").last).to_have_text("সহায়তা")
    # Times and numbers in the donor's locale: Bengali digits.
    expect(frame.locator("#messages time").last).to_have_text(re.compile("[\u09e6-\u09ef]"))
    expect(frame.locator("#composer-hint")).to_contain_text("মেগাবাইট")
    page.keyboard.type("ধন্যবাদ!")
    page.keyboard.press("Enter")
    expect(frame.locator("#messages li.mine .sender").last).to_have_text("আপনি")
    kit.document(page, "widget-bn")
    page.set_viewport_size({"width": 360, "height": 740})
    assert chat(page).locator("body").evaluate("() => document.documentElement.scrollWidth") <= 360
    kit.document(page, "widget-bn-360px")


def test_the_widget_at_360_px_closed_and_open(widget_server, host_sites, new_page):
    page = new_page(width=360, height=740)
    page.goto(f"{HOST}/campaigns/sylhet")
    expect(launcher(page)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    kit.document(page, "widget-closed-360px")
    launcher(page).click()
    expect(chat(page).locator("#message")).to_be_focused()
    assert chat(page).locator("body").evaluate("() => document.documentElement.scrollWidth") <= 360
    kit.document(page, "widget-open-360px")


def test_another_donor_on_the_same_page_starts_afresh_and_a_double_enter_sends_once(
    widget_server, host_sites, new_page
):
    first = widget_server.api("POST", "/api/conversations", DONOR, json={"subject": "The first donor's"})
    assert first.status_code == 201
    page = new_page()
    page.goto(f"{HOST}/campaigns/sylhet")
    launcher(page).click()
    expect(chat(page).locator("#chat-title")).to_have_text(re.compile("."))
    # The host page signs another donor in without a reload: nothing of the first may remain.
    newcomer = widget_server.mint("donor-newcomer", ttl=3600)
    page.evaluate(f"CareForAllChat.identify({newcomer!r})")
    expect(chat(page).locator("#chat-title")).to_have_text("How can we help?")
    expect(chat(page).locator("#messages li")).to_have_count(0)
    box = chat(page).locator("#message")
    box.fill("Is my donation tax deductible?")
    box.press("Enter")
    box.press("Enter")  # again, while the conversation is still being created
    expect(chat(page).locator("#messages li.mine")).to_have_count(1)
    expect(chat(page).locator("#messages li.mine").last).to_have_attribute("data-status", re.compile("sent|read"))
    mine = widget_server.api("GET", "/api/conversations", "donor-newcomer").json()
    assert mine["count"] == 1
    history = widget_server.api(
        "GET", f"/api/conversations/{mine['results'][0]['conversationId']}/messages", "donor-newcomer"
    ).json()["results"]
    assert [m["content"] for m in history if m["messageType"] != "SYSTEM"] == ["Is my donation tax deductible?"]


def test_escape_in_the_picker_an_edit_or_the_delete_dialog_closes_that_not_the_widget(
    widget_server, host_sites, new_page
):
    created = widget_server.api("POST", "/api/conversations", DONOR, json={"subject": "Escape keys"})
    staff_says(widget_server, created.json()["conversationId"], "Anything else?")
    page = new_page(width=360, height=740)
    page.goto(f"{HOST}/help")
    launcher(page).click()
    frame = chat(page)
    expect(frame.locator("#chat-title")).to_have_text("Escape keys")
    page.keyboard.type("No, thanks")
    page.keyboard.press("Enter")
    mine = frame.locator("#messages > li.mine.actionable")
    expect(mine).to_have_attribute("data-status", re.compile("sent|read"))
    panel = page.locator("#careforall-chat .panel")

    frame.locator("#messages > li.theirs.actionable").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the reaction picker, focus on its first reaction
    expect(frame.get_by_role("group", name="Reactions")).to_be_visible()
    page.keyboard.press("Escape")
    expect(frame.get_by_role("group", name="Reactions")).to_have_count(0)
    expect(panel).to_be_visible()

    mine.focus()
    mine.get_by_role("button", name="Edit").click()
    expect(mine.get_by_label("Edit your message")).to_be_focused()
    page.keyboard.press("Escape")
    expect(mine.get_by_label("Edit your message")).to_have_count(0)
    expect(panel).to_be_visible()

    mine.focus()
    mine.get_by_role("button", name="Delete").click()
    expect(frame.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(frame.get_by_role("dialog")).to_be_hidden()
    expect(panel).to_be_visible()
    expect(mine.locator(".content")).to_have_text("No, thanks")  # nothing was deleted

    page.keyboard.press("Escape")  # nothing else open: the widget closes, as always
    expect(panel).to_be_hidden()
