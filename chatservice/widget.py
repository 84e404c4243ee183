"""The embeddable widget: `/widget.js`, the script a host page adds with one tag, and `/chat/embed`, the
donor page in the widget's iframe.

The host page and the iframe share nothing but postMessage: the host sends the donor's token (identify),
the iframe sends back an unread count and a request to close. The iframe accepts messages only from its
parent window on an origin of CHAT_WIDGET_ALLOWED_ORIGINS, and only those origins may frame it (CSP
frame-ancestors); with none configured it may be framed nowhere.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET

from chatservice.webclient import chat_page

# Host pages cache the script briefly: a release reaches every page within five minutes.
SCRIPT_MAX_AGE_S = 300


@cache
def _script() -> bytes:
    path = finders.find("chat/widget.js")
    if path is None:  # pragma: no cover - a broken installation
        raise RuntimeError("chat/widget.js is missing from the static files")
    return Path(path).read_bytes()


@require_GET
def widget_script(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(_script(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = f"public, max-age={SCRIPT_MAX_AGE_S}"
    # Loaded by pages of other origins, including ones that require explicit permission (COEP).
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def frame_ancestors() -> str:
    origins = settings.CHAT["WIDGET_ALLOWED_ORIGINS"]
    return " ".join(origins) if origins else "'none'"


@xframe_options_exempt  # CSP frame-ancestors decides, per allowed origin (X-Frame-Options cannot list them)
@require_GET
def embedded_chat(request: HttpRequest) -> HttpResponse:
    return chat_page(
        request,
        embed=True,
        frame_ancestors=frame_ancestors(),
        extra={"widget_origins": list(settings.CHAT["WIDGET_ALLOWED_ORIGINS"])},
    )
