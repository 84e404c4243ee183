"""The widget's two resources in-process: the host script and the embed page's framing rules (the browser
side is tests/test_browser_widget.py)."""

from __future__ import annotations

import json
import re

import pytest

from chatservice.config import ConfigError, load_config
from tests.test_config import PROD


def test_the_widget_script_is_served_for_other_origins_to_load(client):
    response = client.get("/widget.js")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response["Cache-Control"] == "public, max-age=300"
    assert b"CareForAllChat" in response.content


def test_the_embed_page_may_be_framed_only_by_the_allowed_origins(client, settings):
    settings.CHAT = {**settings.CHAT, "WIDGET_ALLOWED_ORIGINS": ("https://www.example.org", "https://give.example.org")}
    response = client.get("/chat/embed")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "frame-ancestors https://www.example.org https://give.example.org" in policy
    assert "X-Frame-Options" not in response  # CSP decides; X-Frame-Options cannot name origins
    assert b'data-mode="embed"' in response.content
    assert b'["https://www.example.org", "https://give.example.org"]' in response.content  # the postMessage check
    assert b"open-token" not in response.content  # the host supplies the token: no form for one


def test_without_allowed_origins_the_embed_page_is_framed_nowhere(client, settings):
    settings.CHAT = {**settings.CHAT, "WIDGET_ALLOWED_ORIGINS": ()}
    assert "frame-ancestors 'none'" in client.get("/chat/embed")["Content-Security-Policy"]
    standalone = client.get("/chat/")
    assert "frame-ancestors 'none'" in standalone["Content-Security-Policy"]
    assert standalone["X-Frame-Options"] == "DENY"


def test_widget_origins_are_parsed_like_every_origin_list():
    config = load_config({**PROD, "CHAT_WIDGET_ALLOWED_ORIGINS": "https://WWW.Example.org:443, http://localhost:8080"})
    assert config.widget_allowed_origins == ("https://www.example.org", "http://localhost:8080")
    assert load_config(PROD).widget_allowed_origins == ()
    with pytest.raises(ConfigError, match="CHAT_WIDGET_ALLOWED_ORIGINS"):
        load_config({**PROD, "CHAT_WIDGET_ALLOWED_ORIGINS": "https://www.example.org/support"})


def test_the_donor_page_offers_the_edit_window_and_reactions_the_server_enforces(client, settings):
    settings.CHAT = {**settings.CHAT, "EDIT_WINDOW_S": 120.0, "REACTIONS": ("👍", "🎉")}
    for path in ("/chat/", "/chat/embed"):
        body = client.get(path).content.decode()
        assert 'data-edit-window-s="120"' in body
        reactions = re.search(r'<script id="chat-reactions" type="application/json">(.*?)</script>', body).group(1)
        assert json.loads(reactions) == ["👍", "🎉"]
