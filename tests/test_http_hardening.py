"""HTTP hardening: CORS for the platform's origins (never with cookies), admin login lockout, security
headers on every page, and Django's deployment checks on the compose stack's settings."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from playwright.sync_api import Page, expect

from chatservice.config import BASE_DIR
from tests import browser as kit
from tests.servers import free_port, migrate, server_env
from tests.test_deploy import one_line, resolved_environment, services

browser, new_page = kit.browser, kit.new_page

PORTAL = "https://donate.example.org"


# ---- CORS ------------------------------------------------------------------------------------------


@pytest.fixture
def portal_allowed(settings) -> None:
    settings.CORS_ALLOWED_ORIGINS = [PORTAL]


def test_an_allowed_origin_may_call_the_api_with_a_bearer_token(portal_allowed, db, donor):
    response = donor.get("/api/conversations", HTTP_ORIGIN=PORTAL)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == PORTAL
    assert "Access-Control-Allow-Credentials" not in response  # never cookies across origins


def test_the_preflight_is_answered_before_authentication(portal_allowed, db):
    """It used to get 401: a browser never sends credentials with a preflight."""
    response = Client().options(
        "/api/conversations",
        HTTP_ORIGIN=PORTAL,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == PORTAL
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in response["Access-Control-Allow-Methods"]


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://donate.example.org", "https://donate.example.org:8443"]
)
def test_any_other_origin_gets_no_cors_headers(portal_allowed, db, donor, origin):
    response = donor.get("/api/conversations", HTTP_ORIGIN=origin)
    assert "Access-Control-Allow-Origin" not in response


def test_nothing_outside_the_api_is_shared(portal_allowed, db):
    assert "Access-Control-Allow-Origin" not in Client().get("/admin/login/", HTTP_ORIGIN=PORTAL)
    assert "Access-Control-Allow-Origin" not in Client().get("/health", HTTP_ORIGIN=PORTAL)


@pytest.fixture(scope="module")
def portal_site(tmp_path_factory) -> Iterator[str]:
    """A page of the donation platform, on its own origin (another local port)."""
    root = tmp_path_factory.mktemp("portal")
    (root / "portal.html").write_text(
        """<!doctype html><title>Donate</title><p id="result">…</p>
<script>
  const params = new URLSearchParams(location.hash.slice(1));
  fetch(params.get("api") + "/api/conversations", {headers: {Authorization: "Bearer " + params.get("token")}})
    .then((r) => r.json())
    .then((body) => { document.getElementById("result").textContent = "conversations: " + body.count; })
    .catch((error) => { document.getElementById("result").textContent = "blocked: " + error.name; });
</script>"""
    )
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(SimpleHTTPRequestHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def cors_server(keypair, tmp_path_factory, portal_site) -> Iterator[kit.LiveServer]:
    directory = tmp_path_factory.mktemp("cors-server")
    env = server_env(keypair[1].decode(), f"sqlite:///{directory / 'chat.sqlite3'}", CORS_ALLOWED_ORIGINS=portal_site)
    migrate(env)
    server = kit.LiveServer(env, keypair[0], directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_page_on_the_platforms_origin_calls_the_api_in_a_real_browser(cors_server, portal_site, new_page):
    page: Page = new_page()
    page.goto(f"{portal_site}/portal.html#api={cors_server.url}&token={cors_server.mint('donor-cors')}")
    expect(page.locator("#result")).to_have_text("conversations: 0")


def test_a_page_on_another_origin_is_blocked_by_the_browser(cors_server, new_page, tmp_path):
    other = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(Path(kit.__file__).parent))
    )
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        page: Page = new_page()
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/")  # a listing page: an origin of its own
        result = page.evaluate(
            """async ([api, token]) => {
                try {
                    await fetch(api + "/api/conversations", {headers: {Authorization: "Bearer " + token}});
                    return "allowed";
                } catch (error) { return "blocked"; }
            }""",
            [cors_server.url, cors_server.mint("donor-cors")],
        )
        assert result == "blocked"
    finally:
        other.shutdown()


# ---- admin login lockout ---------------------------------------------------------------------------


def log_in(client: Client, password: str) -> object:
    return client.post("/admin/login/?next=/admin/", {"username": "maria", "password": password, "next": "/admin/"})


@pytest.fixture
def maria(db) -> User:
    return User.objects.create_user("maria", password="the-right-password-42", is_staff=True)


def test_a_username_is_locked_out_after_five_failures_even_with_the_right_password(maria, settings):
    """30 wrong passwords in a row, then the right one, used to log in."""
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "wrong").status_code == 200  # the form again, with its error
    locked = log_in(client, "wrong")
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert b"paused for" in locked.content and b"15 minutes" in locked.content
    right = log_in(client, "the-right-password-42")
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_an_operator_unlocks_the_account(maria, settings, caplog):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong")
    (lockout,) = [r for r in caplog.records if r.getMessage() == "admin login locked out"]
    assert (lockout.username, lockout.ip_address) == ("maria", "127.0.0.1")  # what the command below needs
    call_command("axes_reset_ip_username", "127.0.0.1", "maria", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert log_in(client, "the-right-password-42").status_code == 302


def test_a_success_resets_the_count(maria, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "wrong")
    assert log_in(client, "the-right-password-42").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "wrong").status_code == 200


# ---- security headers ------------------------------------------------------------------------------


def script_tags(html: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>", html)


@pytest.mark.parametrize("path", ["/admin/login/", "/api/docs/"])
def test_every_page_has_a_csp_without_inline_scripts(db, path):
    response = Client().get(path)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", policy).group(1)
    assert script_src.split() == ["'self'"]
    assert "frame-ancestors 'none'" in policy
    # Nothing the policy would block: every script is a file, or data (json_script).
    for tag in script_tags(response.content.decode()):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_the_console_pages_have_the_policy_too(db):
    from conversations import services as conversation_services
    from tests.helpers import USER

    conversation = conversation_services.conversation_create(creator=USER, subject="csp")
    client = Client()
    client.force_login(
        User.objects.create_user("maria", password="x-long-password-1", is_staff=True, is_superuser=True)
    )
    for path in ("/admin/conversations/conversation/", f"/admin/conversations/conversation/{conversation.pk}/change/"):
        response = client.get(path)
        assert "script-src 'self'" in response["Content-Security-Policy"], path
        for tag in script_tags(response.content.decode()):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)


def test_the_donor_page_keeps_its_stricter_policy(db):
    assert Client().get("/chat/")["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_console_runs_under_its_policy_in_a_real_browser(cors_server, new_page):
    """No CSP violation on the admin pages staff use (the browser reports each one on the console)."""
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            "csp-admin",
            "--email",
            "csp@example.org",
        ],
        cwd=BASE_DIR,
        env={**cors_server.env, "DJANGO_SUPERUSER_PASSWORD": "a-long-staff-password-42"},
        check=True,
        capture_output=True,
        timeout=60,
    )
    page: Page = new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.goto(f"{cors_server.url}/admin/login/")
    page.fill("#id_username", "csp-admin")
    page.fill("#id_password", "a-long-staff-password-42")
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{cors_server.url}/admin/")
    for path in ("/admin/conversations/conversation/", "/api/docs/"):
        page.goto(f"{cors_server.url}{path}")
        page.wait_for_load_state("networkidle")
    expect(page.locator(".swagger-ui")).to_be_visible()
    assert not violations, violations


# ---- Django's deployment checks ----------------------------------------------------------------------


def deploy_check(keypair, tmp_path, **extra: str) -> str:
    dotenv = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "chat.example.com",
        "JWT_PUBLIC_KEY": one_line(keypair[1]),
    }
    env = {
        **server_env(keypair[1].decode(), f"sqlite:///{tmp_path / 'chat.sqlite3'}"),
        **resolved_environment(services()["worker1"], dotenv),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'chat.sqlite3'}",  # the check reads settings, not MongoDB
        **extra,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout + result.stderr


def test_the_compose_settings_pass_djangos_deployment_checks(keypair, tmp_path):
    """`manage.py check --deploy` used to warn W004 (no HSTS) and W008 (no SSL redirect). Two warnings
    stay by default, justified in the README: HSTS for subdomains and the preload list are decisions about
    the operator's whole domain, which this service cannot make (both are one variable away)."""
    report = deploy_check(keypair, tmp_path)
    assert sorted(re.findall(r"\(([a-z]+\.[WE]\d+)\)", report)) == ["security.W005", "security.W021"], report
    report = deploy_check(keypair, tmp_path, SECURE_HSTS_INCLUDE_SUBDOMAINS="true", SECURE_HSTS_PRELOAD="true")
    assert "System check identified no issues" in report, report
