"""The agent workspace: a three-pane page inside Django admin (`/admin/desk/`).

Left, the live conversation list; middle, the thread with the reply box; right, the donor's context.
The page is a shell: workspace.js reads and writes through the same REST API and WebSockets as any
client (the admin session authenticates them on this origin; writes carry the CSRF token), so every
rule, limit and record applies to it as it does to the API.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse

from chatservice.authentication import principal_for_staff
from conversations.models import MAX_LABELS, Priority
from desk import services
from desk.models import Availability


@staff_member_required
def workspace(request: HttpRequest) -> HttpResponse:
    me = principal_for_staff(request.user)
    profile = services.agent_ensure(me.user_id)
    config = {
        "userId": me.user_id,
        "csrfToken": get_token(request),
        "availability": profile.availability,
        "availabilities": list(Availability.values),
        "priorities": list(Priority.values),
        "maxLabels": MAX_LABELS,
        "inboxPath": "/ws/inbox",
        "conversationPath": "/ws/conversations/",
        "api": "/api/",
        "historyUrl": reverse("admin:messaging_message_changelist"),
        # What the server accepts (README, "Edits, deletions, reactions, replies"): the page offers no more.
        "editWindowS": int(settings.CHAT["EDIT_WINDOW_S"]),
        "reactions": list(settings.CHAT["REACTIONS"]),
        "initial": request.GET.get("c") or None,
    }
    context = {
        **admin.site.each_context(request),
        "title": "Workspace",
        "is_nav_sidebar_enabled": False,  # the three panes need the width
        "config": config,
    }
    return render(request, "admin/desk/workspace.html", context)
