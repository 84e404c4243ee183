"""`make demo` end to end: a development-mode Daphne worker (DEBUG on, the development key pair, as
`make demo` runs it), `manage.py seed_demo` against its database, and each printed link opened in Chromium.
Also the landing page, with axe and its screenshots.

The reports page's screenshots in README are taken here, from the demo's data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from chatservice.config import BASE_DIR
from tests import browser as kit
from tests.browser import LiveServer, document, live_server
from tests.test_accessibility import audit, axe_source  # noqa: F401 - a fixture

browser, new_page = kit.browser, kit.new_page

LINK = re.compile(r"^(Console|Donor page|Reports)[^:]*: (\S+)$")


@pytest.fixture(scope="module")
def demo_server(keypair, tmp_path_factory) -> Iterator[LiveServer]:
    # JWT_PUBLIC_KEY empty: the development key pair under var/, which seed_demo signs the donor token with.
    with live_server(keypair, tmp_path_factory.mktemp("demo"), DJANGO_DEBUG="true", JWT_PUBLIC_KEY="") as server:
        yield server


@pytest.fixture(scope="module")
def printed(demo_server, tmp_path_factory) -> str:
    password_file = tmp_path_factory.mktemp("demo-password") / "pw"
    return manage(demo_server, "seed_demo", "--base-url", demo_server.url, "--password-file", str(password_file))


def manage(server: LiveServer, *command: str) -> str:
    """What `manage.py <command>` prints, run against the demo server's database."""
    result = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=BASE_DIR,
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return result.stdout


def link(printed: str, label: str) -> str:
    lines = printed.strip().splitlines()[-3:]
    found = {m.group(1): m.group(2) for m in map(LINK.match, lines) if m}
    assert set(found) == {"Console", "Donor page", "Reports"}, printed
    return found[label]


def test_the_landing_page(demo_server, new_page, axe_source):  # noqa: F811
    for width, name in ((1280, "landing"), (360, "landing-360px")):
        page = new_page(width=width, height=900)
        page.goto(f"{demo_server.url}/")
        expect(page.locator("h1")).to_have_text("CareForAll support chat")
        expect(page.get_by_role("link", name="Donor chat page")).to_have_attribute("href", "/chat/")
        # Development mode: the commands that get a staff login and a donor token.
        expect(page.locator("pre").first).to_have_text(".venv/bin/python manage.py createsuperuser")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        audit(page, axe_source, name)
        document(page, name)
    page.get_by_role("link", name="Health check").click()
    expect(page.locator("body")).to_contain_text('"status"')


def test_demo_console_link(demo_server, printed, new_page):
    page = new_page()
    page.goto(link(printed, "Console"))
    expect(page).to_have_url(f"{demo_server.url}/admin/desk/")
    expect(page.get_by_text("Receipt shows the wrong name").first).to_be_visible()
    expect(page.get_by_text("Donation page not loading").first).to_be_visible()
    document(page, "demo-workspace")
    # The console's header links (workspace, reports) at phone width, while this session is logged in.
    page.set_viewport_size({"width": 360, "height": 800})
    page.reload()
    expect(page.get_by_role("link", name="Reports")).to_be_visible()
    document(page, "demo-workspace-360")
    page.goto(f"{demo_server.url}/admin/")
    expect(page.get_by_role("link", name="Reports")).to_be_visible()
    document(page, "console-360")
    # Single use: the same link again, in a fresh browser, is the ordinary login page.
    other = new_page()
    other.goto(link(printed, "Console"))
    expect(other).to_have_url(re.compile(r"/admin/login/"))


def test_demo_donor_link(demo_server, printed, new_page):
    page = new_page()
    page.goto(link(printed, "Donor page"))
    expect(page.get_by_text("I've corrected the spelling and issued a new receipt")).to_be_visible()
    expect(page.get_by_text("My receipt shows my name misspelled")).to_be_visible()
    # Staff only: the internal note never reaches the donor.
    expect(page.get_by_text("Checked the payment record")).to_have_count(0)
    assert "#" not in page.url  # the token left the address bar


def test_demo_reports_link(demo_server, printed, new_page):
    # Staff only: log in with the printed password (the console link is single use, spent above).
    username, password = re.search(r'Staff login: username "([^"]+)", password "([^"]+)"', printed).groups()
    page = new_page()
    page.goto(link(printed, "Reports"))
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page).to_have_url(link(printed, "Reports"))
    expect(page.locator("h1")).to_contain_text("Reports")
    drawn(page)
    expect(page.locator("[data-rp-error]")).to_be_hidden()
    # The page's figures against chat_stats, an independent reading of the same database (every demo
    # conversation is younger than the page's default 30 days, so period and all-time totals agree).
    stats = json.loads(manage(demo_server, "chat_stats", "--json"))
    expect(page.locator("[data-rp-stat=conversations]")).to_have_text(str(stats["conversations"]["total"]))
    expect(page.locator("[data-rp-stat=unassigned]")).to_have_text(str(stats["unassignedActive"]))
    csat = page.locator('[data-rp-panel="csat"]')
    expect(csat.locator(".rp-csat-count")).to_have_text(f"from {stats['csat']['count']} ratings")
    assert float(csat.locator(".rp-csat-average").inner_text()) == pytest.approx(stats["csat"]["average"], abs=0.01)
    document(page, "reports")
    page.set_viewport_size({"width": 360, "height": 800})
    page.reload()  # drawn for this width from the start (a resize redraws after a pause)
    drawn(page)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    document(page, "reports-360")
    # 90 days do not fit a phone: each chart scrolls inside its card, opened on its latest days.
    page.goto(f"{link(printed, 'Reports')}?range=90")
    drawn(page)
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    volume = page.locator('[data-rp-panel="volume"] .rp-scroll')
    at_end = "(s) => s.scrollWidth > s.clientWidth && s.scrollLeft + s.clientWidth >= s.scrollWidth - 1"
    assert volume.evaluate(at_end)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def drawn(page: Page) -> None:
    """Wait until the report is drawn: its five charts' SVGs (aria-busy is not yet set when the page's
    script has not run, so it cannot tell "loaded" from "not started")."""
    expect(page.locator(".rp-scroll svg")).to_have_count(5)
    expect(page.locator("[data-reports]")).not_to_have_attribute("aria-busy", "true")
