"""The donor web client: one static page (templates/chat.html + chatservice/static/chat/) that talks to the
public REST and WebSocket API like any other client. The server only serves the page; it never sees the
token, which the page reads from the URL fragment (never sent to a server) or from its form."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.http import require_GET


# No inline script or style and nothing from another origin: user content that slipped past
# textContent could still not run. connect-src 'self' covers the same-origin ws:/wss: socket (CSP3).
def content_security_policy(frame_ancestors: str = "'none'") -> str:
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


CONTENT_SECURITY_POLICY = content_security_policy()


def attachment_context() -> dict[str, object]:
    """What the page tells the donor about attachments, from the same settings the server enforces."""
    limit = settings.CHAT["ATTACHMENT_MAX_BYTES"]
    return {
        "attachment_max_bytes": limit,
        "attachment_max_size": filesizeformat(limit),
        "attachment_accept": ",".join(settings.CHAT["ATTACHMENT_TYPES"]),
    }


def message_change_context() -> dict[str, object]:
    """The edit window and the reaction set, as the server enforces them (README, "Edits, deletions,
    reactions, replies"): the page offers only what the server will accept."""
    return {"edit_window_s": int(settings.CHAT["EDIT_WINDOW_S"]), "reactions": list(settings.CHAT["REACTIONS"])}


def chat_page(
    request: HttpRequest, *, embed: bool = False, frame_ancestors: str = "'none'", extra: dict | None = None
) -> HttpResponse:
    """The donor page, standalone (/chat/) or in the widget's iframe (/chat/embed): one template, one script."""
    context = {**attachment_context(), **message_change_context(), "embed": embed, **(extra or {})}
    response = render(request, "chat.html", context)
    response["Content-Security-Policy"] = content_security_policy(frame_ancestors)
    # The page never puts the token in its URL, and must not leak even its path elsewhere.
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def donor_chat(request: HttpRequest) -> HttpResponse:
    return chat_page(request)
