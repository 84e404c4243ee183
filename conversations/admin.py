"""Django admin for support staff. Agents work in the workspace (desk.workspace, `/admin/desk/`); this
is the table of every conversation for bulk actions (assign, close, archive, reopen), each through the
services, so anything done here is recorded (SYSTEM message) and broadcast exactly as through the API.
Opening a conversation opens it in the workspace."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.text import Truncator
from django.utils.timesince import timesince
from django.utils.timezone import localtime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from chatservice.authentication import principal_for_staff
from chatservice.errors import ServiceError
from conversations import selectors, services
from conversations.models import Conversation, ConversationStatus, Role
from identity.selectors import staff_chat_id
from messaging.models import Message, MessageType

# The admin's left-hand app list takes 300 px of every page; the conversation table and the workspace
# need the width more (the table then fits 1280 px), and the header links to both.
admin.site.enable_nav_sidebar = False
# The activity column's format: one short line ("1 Dec, 20:19").
ACTIVITY_FORMAT = "j M, H:i"
# Characters of the latest message shown in the inbox.
PREVIEW_LENGTH = 80


class AssignedFilter(admin.SimpleListFilter):
    title = _("assignment")
    parameter_name = "assigned"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", _("Assigned")), ("no", _("Unassigned")), ("me", _("Assigned to me"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> QuerySet[Conversation]:
        if self.value() == "yes":
            return queryset.filter(admin_count__gt=0)
        if self.value() == "no":
            return queryset.filter(admin_count=0)
        if self.value() == "me":
            me = principal_for_staff(request.user)
            return queryset.filter(participants__role=me.role, participants__user_id=me.user_id)
        return queryset


class InboxActionForm(helpers.ActionForm):
    """The changelist's action bar plus the staff member "Assign to staff member" assigns to. Choices are
    the active staff users' usernames. The field itself accepts any value, so that
    a stale or forged choice reaches the action, which refuses it with a message: an invalid action form
    would only say "No action selected"."""

    assignee = forms.CharField(required=False, label=_("Assign to:"), widget=forms.Select)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        user_model = get_user_model()
        staff = user_model.objects.filter(is_staff=True, is_active=True).order_by(user_model.USERNAME_FIELD)
        usernames = [user.get_username() for user in staff]
        self.fields["assignee"].widget.choices = [("", "---------"), *((name, name) for name in usernames)]


class InboxChangeList(ChangeList):
    """After the page of conversations is read, one more query fetches the latest message worth a
    preview (not a SYSTEM notice) of every conversation on it, and the viewer's unread counts come from
    the prefetched participants: the query count of the page does not depend on its length."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        page = list(self.result_list)
        latest = selectors.latest_previewable_of(page, role=Role.ADMIN)
        viewer = principal_for_staff(request.user)
        for conversation in page:
            conversation.console_latest = latest.get(conversation.pk)
            conversation.console_unread = selectors.unread_for(conversation, viewer)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    # Six columns: the table fits 1280 px (the activity time says when; "Waiting" what is unanswered).
    list_display = ["title", "status", "assigned_admins", "unread", "last_message", "activity"]
    list_display_links = ["title"]
    list_filter = ["status", AssignedFilter]
    search_fields = ["=id", "subject", "=created_by", "=participants__user_id"]
    ordering = ["-updated_at", "-id"]  # newest activity first (conv_updated_idx)
    action_form = InboxActionForm
    actions = ["assign_to_me", "assign_to_staff", "close", "archive", "reopen"]
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        # Reverse-FK prefetch: one query per page, on every backend (the list's assigned and unread
        # columns read it).
        return super().get_queryset(request).prefetch_related("participants")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return InboxChangeList

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A conversation is worked in the workspace: its page is the workspace with it open."""
        # The admin escapes keys in its URLs ("_" is "_5F"): the id itself goes to the workspace.
        return redirect(f"{reverse('desk-workspace')}?{urlencode({'c': unquote(object_id)})}")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # conversations are opened by donors

    def has_delete_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False  # close or archive instead; history is kept

    @admin.display(description=_("Conversation"), ordering="subject")
    def title(self, obj: Conversation) -> str:
        return f"{obj.subject or obj.pk} · {obj.created_by}"

    @admin.display(description=_("Assigned"))
    def assigned_admins(self, obj: Conversation) -> str:
        names = [p.display_name or p.user_id for p in obj.participants.all() if p.role == Role.ADMIN and p.assigned]
        return ", ".join(names) or "—"

    @admin.display(description=_("Unread / waiting"))
    def unread(self, obj: Conversation) -> str:
        """For the viewing staff member: their unread count when they take part; otherwise (and for
        triage) how long the donor has waited for an answer, so an unassigned conversation with an
        unanswered message never shows as nothing to do."""
        count = getattr(obj, "console_unread", None)
        waiting = (
            gettext("waiting %(time)s") % {"time": timesince(obj.waiting_since, depth=1)}
            if obj.waiting_since and obj.status == ConversationStatus.ACTIVE
            else ""
        )
        if count:
            return format_html("<strong>{}</strong> {}", count, waiting)
        return waiting or ("0" if count == 0 else "—")

    @admin.display(description=_("Last message"))
    def last_message(self, obj: Conversation) -> str:
        # A plain str: the admin escapes it, so whatever a donor wrote is shown as text. SYSTEM notices
        # are not previews: the latest message people wrote is.
        message: Message | None = getattr(obj, "console_latest", None)
        if message is None:
            return "—"
        text = " ".join(message.content.split())  # one line in the list
        note = gettext("(note)") + " " if message.message_type == MessageType.NOTE else ""
        return f"{message.sender_name or message.sender_id}: {note}{Truncator(text).chars(PREVIEW_LENGTH)}"

    @admin.display(description=_("Last activity"), ordering="updated_at")
    def activity(self, obj: Conversation) -> str:
        return date_format(localtime(obj.updated_at), ACTIVITY_FORMAT)

    def _apply(self, request: HttpRequest, queryset: QuerySet[Conversation], change, done: str) -> None:
        actor = principal_for_staff(request.user)
        count = 0
        for conversation in queryset:
            try:
                change(conversation, actor)
                count += 1
            except ServiceError as exc:
                self.message_user(request, f"{conversation.pk}: {exc.detail}", messages.ERROR)
        if count:
            self.message_user(
                request,
                gettext("%(count)s conversation(s) %(done)s.") % {"count": count, "done": done},
                messages.SUCCESS,
            )

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Conversation], status: str, done: str) -> None:
        self._apply(
            request,
            queryset,
            lambda c, actor: services.conversation_update(conversation=c, actor=actor, status=status),
            done,
        )

    @admin.action(description=_("Assign to me"))
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._apply(
            request,
            queryset,
            lambda c, actor: services.conversation_assign(conversation=c, actor=actor, admin_id=actor.user_id),
            gettext("assigned to you"),
        )

    @admin.action(description=_("Assign to staff member (choose below)"))
    def assign_to_staff(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        """Assign to the staff member picked in the action bar. The target must be an active staff user
        (assigned under the chat id their console acts as); anything else changes nothing."""
        username = (request.POST.get("assignee") or "").strip()
        if not username:
            self.message_user(
                request, gettext("Choose the staff member to assign to; nothing was changed."), messages.ERROR
            )
            return
        user_model = get_user_model()
        target = user_model.objects.filter(
            **{user_model.USERNAME_FIELD: username}, is_staff=True, is_active=True
        ).first()
        if target is None:
            self.message_user(
                request,
                gettext("%(username)s is not an active staff member; nothing was changed.") % {"username": username},
                messages.ERROR,
            )
            return
        admin_id = staff_chat_id(target)  # the id the console acts as for that person
        self._apply(
            request,
            queryset,
            lambda c, actor: services.conversation_assign(conversation=c, actor=actor, admin_id=admin_id),
            gettext("assigned to %(admin)s") % {"admin": admin_id},
        )

    @admin.action(description=_("Close"))
    def close(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._set_status(request, queryset, ConversationStatus.CLOSED, gettext("closed"))

    @admin.action(description=_("Archive"))
    def archive(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._set_status(request, queryset, ConversationStatus.ARCHIVED, gettext("archived"))

    @admin.action(description=_("Reopen"))
    def reopen(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._set_status(request, queryset, ConversationStatus.ACTIVE, gettext("reopened"))
