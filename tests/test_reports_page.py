"""The reports page (/admin/reports/): who may open it (plain HTTP), and what it shows in real headless
Chromium against a real Daphne worker and the real GET /api/reports, for a small dataset whose figures
are known in advance (rows written through the ORM with fixed timestamps, relative to today in UTC).

The page's figures are the API's (tests/test_reports.py checks those numbers); here the page must draw one
bar per bucket and series, one point per measured bucket, the backlog's "now", CSV links with the page's
filters, and keep the filters in the URL."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlparse

import pytest
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Page, expect

from chatservice.config import BASE_DIR
from tests import browser as kit
from tests.browser import LiveServer
from tests.test_accessibility import audit, axe_source  # noqa: F401

browser, chat_server, new_page = kit.browser, kit.chat_server, kit.new_page

PASSWORD = "pw-reports-12345"  # test accounts on a throwaway database
PAGE = "/admin/reports/"
DAYS = 7  # the period the browser tests look at: ?range=7, the last 7 UTC days ending today

# ---- who may open the page (no browser) -------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_the_admin_login():
    response = Client().get(PAGE)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={PAGE}"


@pytest.mark.django_db
def test_a_signed_in_account_that_is_not_staff_is_sent_to_the_admin_login():
    client = Client()
    client.force_login(User.objects.create_user("donor-account", password=PASSWORD, is_staff=False))
    response = client.get(PAGE + "?range=7")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/admin/reports/")


@pytest.mark.django_db
def test_staff_get_the_page_shell_with_its_configuration():
    client = Client()
    client.force_login(User.objects.create_user("lead", password=PASSWORD, is_staff=True))
    response = client.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r"<h1>\s*Reports\s*</h1>", html)
    assert 'id="reports-config"' in html and '"api": "/api/reports"' in html
    assert f'"today": "{datetime.now(UTC).date().isoformat()}"' in html
    assert "reports/reports.js" in html and "reports/reports.css" in html
    assert "<script>" not in html  # the CSP allows no inline script: the configuration is JSON data
    # Staff find the page from the console's header.
    assert 'href="/admin/reports/"' in client.get("/admin/").content.decode()


@pytest.mark.django_db
def test_the_page_is_translated_to_bengali():
    client = Client()
    client.force_login(User.objects.create_user("lead-bn", password=PASSWORD, is_staff=True))
    html = client.get(PAGE, HTTP_ACCEPT_LANGUAGE="bn").content.decode()
    assert "CSV ডাউনলোড" in html
    assert "/jsi18n/bn.js" in html


# ---- the page in a browser, against the real endpoint ----------------------------------------------------

# Written in the worker's database with the ORM, at fixed times relative to today (UTC): D-3, D-2 and D-1
# at noon, so every row is in the 7-day period whatever the time of day the test runs.
SEED = """
from datetime import timedelta
from django.contrib.auth.models import User
from django.utils import timezone
from conversations.models import Conversation, ConversationLabel
from csat.models import CsatResponse
from messaging.models import Message

for username, first_name in (("lead", "Lee"), ("maria", "Maria"), ("john", "John")):
    User.objects.create_superuser(username, f"{username}@example.org", PASSWORD, first_name=first_name)
today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
def day(n, minutes=0):
    return today - timedelta(days=n) + timedelta(minutes=minutes)
def conversation(donor, created, agent=None, first=None, closed=None, waiting=False, labels=(), admins=0):
    c = Conversation.objects.create(
        created_by=donor, subject=f"Question from {donor}", created_at=created, updated_at=created,
        last_agent_id=agent, first_response_at=first, closed_at=closed, status="CLOSED" if closed else "ACTIVE",
        waiting_since=created if waiting else None, admin_count=admins, labels=list(labels))
    for label in labels:
        ConversationLabel.objects.create(conversation=c, label=label)
    return c
def message(c, seq, sender, role, at):
    Message.objects.create(conversation=c, seq=seq, sender_id=sender, sender_role=role, content="hello",
                           message_type="TEXT", created_at=at, updated_at=at)
    Conversation.objects.filter(pk=c.pk).update(last_seq=seq, last_message_at=at)

c1 = conversation("donor-1", day(3), "staff:maria", day(3, 10), day(3, 120), labels=["billing"], admins=1)
message(c1, 1, "donor-1", "USER", day(3))
message(c1, 2, "staff:maria", "ADMIN", day(3, 10))
CsatResponse.objects.create(conversation=c1, closed_at=day(3, 120), rating=5, donor_id="donor-1",
                            agent_id="staff:maria", created_at=day(3, 130))
c2 = conversation("donor-2", day(2), "staff:john", day(2, 120), labels=["refund"], admins=1)
message(c2, 1, "donor-2", "USER", day(2))
message(c2, 2, "staff:john", "ADMIN", day(2, 120))
message(c2, 3, "donor-2", "USER", day(2, 150))
c5 = conversation("donor-5", day(2, -180), "staff:maria", day(2, -150), day(2, 360), admins=1)
message(c5, 1, "donor-5", "USER", day(2, -180))
message(c5, 2, "staff:maria", "ADMIN", day(2, -150))
CsatResponse.objects.create(conversation=c5, closed_at=day(2, 360), rating=3, donor_id="donor-5",
                            agent_id="staff:maria", created_at=day(2, 370))
for n, donor in ((0, "donor-3"), (60, "donor-4")):
    waiting = conversation(donor, day(1, n), waiting=True)
    message(waiting, 1, donor, "USER", day(1, n))
"""
# What the seed makes of the 7-day period: conversations opened, first responses on D-3 and D-2, closings
# on D-3 and D-2, two waiting now (both unassigned), two ratings (5 and 3).
SEEDED = {"conversations": 5, "measured_days": 2, "waiting": 2, "unassigned": 2, "ratings": 2, "agents": 2}


@pytest.fixture(scope="module")
def seeded(chat_server: LiveServer) -> LiveServer:
    script = f"PASSWORD = {PASSWORD!r}\n{SEED}"
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=BASE_DIR, env=chat_server.env, check=True, timeout=60
    )
    return chat_server


def log_in(page: Page, server: LiveServer, next_path: str) -> None:
    page.goto(f"{server.url}/admin/login/?next={quote(next_path)}")
    page.fill("#id_username", "lead")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.get_by_role("heading", level=1, name="Reports")).to_be_visible()


def loaded(page: Page) -> None:
    """The page has drawn the answer of its last request (aria-busy is set while one is in flight)."""
    expect(page.locator("[data-reports]")).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("[data-rp-error]")).to_be_hidden()


def panel(page: Page, name: str):
    return page.locator(f'[data-rp-panel="{name}"]')


def period() -> tuple[str, str]:
    today = datetime.now(UTC).date()
    return (today - timedelta(days=DAYS - 1)).isoformat(), today.isoformat()


def test_staff_see_every_chart_of_the_seeded_period(seeded, new_page):
    page = new_page()
    log_in(page, seeded, f"{PAGE}?range={DAYS}")
    loaded(page)
    expect(page.locator("[data-rp-preset='7']")).to_have_attribute("aria-pressed", "true")
    # Volume: one bar per day and kind of message, one point per day for conversations opened.
    volume = panel(page, "volume")
    expect(volume.locator("svg .rp-bar[data-series=donorMessages]")).to_have_count(DAYS)
    expect(volume.locator("svg .rp-bar[data-series=staffMessages]")).to_have_count(DAYS)
    expect(volume.locator("svg .rp-point[data-series=conversations]")).to_have_count(DAYS)
    # Durations: a point only where something was measured; the dashed SLA target, labelled.
    first = panel(page, "firstResponse")
    expect(first.locator(".rp-point[data-series=firstResponseMedian]")).to_have_count(SEEDED["measured_days"])
    expect(first.locator(".rp-point[data-series=firstResponseP90]")).to_have_count(SEEDED["measured_days"])
    expect(first.locator(".rp-target-label")).to_have_text(re.compile(r"^Target 1 hr?$"))
    resolution = panel(page, "resolution")
    expect(resolution.locator(".rp-point[data-series=resolutionMedian]")).to_have_count(SEEDED["measured_days"])
    expect(panel(page, "backlog").locator(".rp-point[data-series=waiting]")).to_have_count(DAYS)
    # The backlog now, and the oldest waiting conversation opens in the workspace.
    expect(page.locator("[data-rp-stat=conversations]")).to_have_text(str(SEEDED["conversations"]))
    expect(page.locator("[data-rp-stat=waiting]")).to_have_text(str(SEEDED["waiting"]))
    expect(page.locator("[data-rp-stat=unassigned]")).to_have_text(str(SEEDED["unassigned"]))
    oldest = page.locator(".rp-oldest-link")
    expect(oldest).to_have_text("Question from donor-3")
    expect(oldest).to_have_attribute("href", re.compile(r"^/admin/desk/\?c=conv_"))
    # Satisfaction: five bars, the average of 5 and 3.
    csat = panel(page, "csat")
    expect(csat.locator("svg .rp-bar")).to_have_count(5)
    expect(csat.locator(".rp-csat-average")).to_have_text("4.0")
    expect(csat.locator(".rp-csat-count")).to_have_text("from 2 ratings")
    # Per agent: one row each, by display name (the console's first names).
    agents = panel(page, "agents").locator("tbody tr")
    expect(agents).to_have_count(SEEDED["agents"])
    expect(agents.first.locator("th")).to_have_text("Maria")
    # Every chart's data is also a table.
    volume.get_by_text("Show data").click()
    expect(volume.locator(".rp-data tbody tr")).to_have_count(DAYS)
    kit.screenshot(page, "reports-seeded")


def test_csv_links_carry_the_filters_and_a_filter_change_updates_the_url_and_refetches(seeded, new_page):
    page = new_page()
    log_in(page, seeded, f"{PAGE}?range={DAYS}")
    loaded(page)
    start, end = period()
    for link in page.locator("[data-rp-csv]").all():
        chart = link.get_attribute("data-rp-csv")
        href = urlparse(link.get_attribute("href"))
        assert href.path == f"/api/reports/{chart}.csv"
        assert parse_qs(href.query) == {"from": [start], "to": [end], "granularity": ["day"]}

    # A label: the URL says so, the page asks the API again, the links follow.
    with page.expect_response(lambda r: "/api/reports?" in r.url and "label=billing" in r.url) as answer:
        page.locator("[data-rp-label]").select_option("billing")
    assert answer.value.status == 200
    assert parse_qs(urlparse(page.url).query) == {"range": ["7"], "label": ["billing"]}
    loaded(page)
    expect(page.locator("[data-rp-stat=conversations]")).to_have_text("1")
    expect(page.locator("[data-rp-csv=volume]")).to_have_attribute("href", re.compile(r"[?&]label=billing(&|$)"))

    # By hour (offered for 7 days): 24 bars a day.
    with page.expect_response(lambda r: "/api/reports?" in r.url and "granularity=hour" in r.url):
        page.locator("[data-rp-granularity]").select_option("hour")
    loaded(page)
    expect(panel(page, "volume").locator("svg .rp-bar[data-series=donorMessages]")).to_have_count(DAYS * 24)

    # 90 days: hours are no longer offered, the page goes back to days.
    page.locator("[data-rp-preset='90']").click()
    loaded(page)
    assert parse_qs(urlparse(page.url).query) == {"range": ["90"], "label": ["billing"]}
    expect(page.locator("[data-rp-granularity] option[value=hour]")).to_be_disabled()
    expect(panel(page, "volume").locator("svg .rp-bar[data-series=donorMessages]")).to_have_count(90)

    # Back: the previous view, from the URL.
    page.go_back()
    loaded(page)
    assert parse_qs(urlparse(page.url).query)["granularity"] == ["hour"]
    expect(page.locator("[data-rp-granularity]")).to_have_value("hour")


def test_a_period_the_api_refuses_is_a_sentence_not_json(seeded, new_page):
    page = new_page()
    log_in(page, seeded, f"{PAGE}?from=2026-02-01&to=2026-01-01")
    error = page.locator("[data-rp-error]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("This period cannot be shown")
    expect(error).not_to_contain_text("invalid_period")
    expect(error.get_by_role("link", name="Back to the last 30 days")).to_be_visible()


def test_keyboard_focus_on_a_chart_shows_its_tooltip(seeded, new_page):
    page = new_page()
    log_in(page, seeded, f"{PAGE}?range={DAYS}")
    loaded(page)
    chart = panel(page, "volume").locator(".rp-scroll")
    chart.focus()
    tip = panel(page, "volume").locator(".rp-tip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("Conversations opened")
    today = datetime.now(UTC).date()
    # The last day first; the left arrow moves back a day, to D-1 (two conversations opened).
    page.keyboard.press("ArrowLeft")
    yesterday = today - timedelta(days=1)
    expect(tip.locator(".rp-tip-title")).to_contain_text(str(yesterday.day))
    expect(tip.locator(".rp-tip-row").first).to_contain_text("2")
    page.keyboard.press("Escape")
    expect(tip).to_be_hidden()


def test_the_page_has_no_serious_accessibility_violations(seeded, new_page, axe_source):  # noqa: F811
    page = new_page()
    log_in(page, seeded, f"{PAGE}?range={DAYS}")
    loaded(page)
    audit(page, axe_source, "reports page")
    panel(page, "firstResponse").locator(".rp-scroll").focus()
    panel(page, "csat").get_by_text("Show data").click()
    audit(page, axe_source, "reports page (tooltip, data table)")
    narrow = new_page(width=360, height=800)
    log_in(narrow, seeded, f"{PAGE}?range={DAYS}")
    loaded(narrow)
    audit(narrow, axe_source, "reports page at 360 px")
    # At 360 px the charts stack and the page itself never scrolls sideways.
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 360


def test_anonymous_browsers_land_on_the_admin_login(chat_server, new_page):
    page = new_page()
    page.goto(f"{chat_server.url}{PAGE}?range=7")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/admin/reports/"))
    expect(page.locator("#id_username")).to_be_visible()
