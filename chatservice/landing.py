"""The landing page (/): what this service is, where its pages are, and its version. In development
(DJANGO_DEBUG on) it also gives the commands that get a staff login and a donor token; in production it
shows no command (they only work against the development key pair and a local database)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from chatservice import guide
from chatservice.version import VERSION
from chatservice.webclient import CONTENT_SECURITY_POLICY


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    groups = {
        audience: [place for place in guide.PLACES if place.audience == audience]
        for audience in ("donors", "staff", "developers")
    }
    context = {
        "groups": groups,
        "version": VERSION,
        "debug": settings.DEBUG,
        "commands": {
            "staff_login": guide.STAFF_LOGIN_COMMAND,
            "demo": guide.DEMO_COMMAND,
            "token": guide.TOKEN_COMMAND,
            "token_manage": guide.TOKEN_MANAGE_COMMAND,
        },
    }
    response = render(request, "landing.html", context)
    # The donor page's policy: nothing inline, nothing from another origin, never framed.
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
