"""The landing page (/): what the service is, where its pages are, its version; the commands to get in,
in development only. Its browser test (axe, screenshots) is in tests/test_browser_demo.py."""

from __future__ import annotations

import re
import tomllib

import pytest
from django.core.management import get_commands
from django.test import Client

from chatservice import guide
from chatservice.config import BASE_DIR

pytestmark = pytest.mark.django_db

PYPROJECT_VERSION = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]["version"]
COMMANDS = (guide.STAFF_LOGIN_COMMAND, guide.DEMO_COMMAND, guide.TOKEN_COMMAND, guide.TOKEN_MANAGE_COMMAND)


def landing(**headers: str):
    response = Client().get("/", **headers)
    assert response.status_code == 200
    return response, response.content.decode()


def test_the_landing_page_links_every_place_and_shows_the_version():
    response, page = landing()
    for path in ("/chat/", "/admin/", "/admin/desk/", "/admin/reports/", "/api/docs/", "/health"):
        assert f'href="{path}"' in page
    assert f"Version {PYPROJECT_VERSION}" in page
    assert "Donors talk with CareForAll support staff live" in page
    # Nothing inline and nothing from elsewhere: the global CSP holds.
    assert "<script" not in page and "style=" not in page and "<style" not in page
    assert "http://" not in page and "https://" not in page
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_one_version_for_the_page_and_the_api_schema():
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["info"]["version"] == PYPROJECT_VERSION


def test_production_shows_no_command():
    _, page = landing()  # pytest-django runs with DEBUG off
    for command in COMMANDS:
        assert command not in page
    assert "Getting started" not in page


def test_development_shows_the_commands_to_get_in(settings):
    settings.DEBUG = True
    _, page = landing()
    for command in COMMANDS:
        assert f"{command}</code>" in page


def test_the_commands_shown_exist():
    make_targets = set(re.findall(r"^([a-z][a-z-]*):", (BASE_DIR / "Makefile").read_text(), re.MULTILINE))
    for command in COMMANDS:
        words = command.split()
        if words[0] == "make":
            assert words[1] in make_targets, command
        else:
            assert words[:2] == [".venv/bin/python", "manage.py"] and words[2] in get_commands(), command


def test_the_landing_page_speaks_bengali():
    response, page = landing(HTTP_ACCEPT_LANGUAGE="bn")
    assert response["Content-Language"] == "bn"
    assert '<html lang="bn">' in page
    assert "দাতাদের জন্য" in page and f"সংস্করণ {PYPROJECT_VERSION}" in page


def test_the_landing_page_is_read_only():
    assert Client().post("/").status_code == 405


def test_the_consoles_view_site_link_leads_to_the_landing_page(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in page


def test_make_run_prints_what_to_open_next(capsys):
    from django.core.management import call_command

    call_command("open_next", "--base-url", "http://127.0.0.1:3006")
    out = capsys.readouterr().out
    for path in ("/", "/chat/#token=<token>", "/admin/desk/", "/admin/", "/admin/reports/", "/api/docs/", "/health"):
        assert f"http://127.0.0.1:3006{path}" in out
    for command in COMMANDS:
        assert command in out


def test_open_next_refuses_a_base_url_that_is_not_one():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=r"is not a base URL like http://127\.0\.0\.1:3006"):
        call_command("open_next", "--base-url", "ftp://example.org/x")
