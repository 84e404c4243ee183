"""Django admin for support staff: the support console. The conversation list is an inbox (latest
message, unread count for the viewing staff member), its actions and the live conversation page go
through the services or the WebSocket, so anything done here is recorded (SYSTEM message) and broadcast
exactly as it would be through the API.

A staff member's chat user id is their username."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from rest_framework import serializers

from chatservice.authentication import principal_for_staff
from chatservice.errors import ServiceError
from chatservice.validation import clean_text, validate_metadata
from conversations import selectors, services
from conversations.models import Conversation, ConversationStatus, Participant, Role
from identity.selectors import staff_chat_id
from messaging.models import Message

# The conversation page opens with this many latest messages (then live); the full history is in the
# Message list.
RECENT_MESSAGES_SHOWN = 50
# Characters of the latest message shown in the inbox.
PREVIEW_LENGTH = 80


class AssignedFilter(admin.SimpleListFilter):
    title = "assignment"
    parameter_name = "assigned"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Assigned"), ("no", "Unassigned"), ("me", "Assigned to me")]

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

    assignee = forms.CharField(required=False, label="Assign to:", widget=forms.Select)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        user_model = get_user_model()
        staff = user_model.objects.filter(is_staff=True, is_active=True).order_by(user_model.USERNAME_FIELD)
        usernames = [user.get_username() for user in staff]
        self.fields["assignee"].widget.choices = [("", "---------"), *((name, name) for name in usernames)]


class InboxChangeList(ChangeList):
    """After the page of conversations is read, one more query fetches the latest message of every
    conversation on it, and the viewer's unread counts come from the prefetched participants: the
    query count of the page does not depend on its length."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        page = list(self.result_list)
        latest = selectors.latest_messages_of(page)
        viewer = principal_for_staff(request.user)
        for conversation in page:
            conversation.console_latest = latest.get(conversation.pk)
            conversation.console_unread = selectors.unread_for(conversation, viewer)


class ConversationForm(forms.ModelForm):
    """The same rules as the API for what staff may edit here."""

    class Meta:
        model = Conversation
        fields = ["subject", "metadata"]

    def clean_subject(self) -> str | None:
        return clean_text(self.cleaned_data.get("subject") or "").strip() or None

    def clean_metadata(self) -> dict:
        try:
            return validate_metadata(self.cleaned_data.get("metadata"))
        except serializers.ValidationError as exc:
            raise forms.ValidationError(exc.detail[0]) from None


class ParticipantInline(admin.TabularInline):
    model = Participant
    extra = 0
    fields = ["user_id", "role", "joined_at", "last_read_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False  # participants join through the API or the assign action, never by hand


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "status",
        "donor",
        "assigned_admins",
        "unread",
        "last_message",
        "last_message_at",
        "updated_at",
    ]
    list_display_links = ["title"]
    list_filter = ["status", AssignedFilter]
    search_fields = ["=id", "subject", "=created_by", "=participants__user_id"]
    ordering = ["-updated_at", "-id"]  # newest activity first (conv_updated_idx)
    readonly_fields = ["id", "created_by", "status", "created_at", "updated_at", "last_message_at"]
    fields = ["id", "subject", "status", "created_by", "metadata", "created_at", "updated_at", "last_message_at"]
    form = ConversationForm
    inlines = [ParticipantInline]
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
        """The page carries the latest messages (rendered escaped, so it reads without JavaScript) and
        what console.js needs to go live: the socket path (the admin session authenticates it, same
        origin) and every participant's read watermark for the receipts."""
        conversation = selectors.conversation_with_participants(object_id)
        if conversation is not None:
            thread = selectors.thread_latest(conversation.pk, RECENT_MESSAGES_SHOWN)
            extra_context = {
                **(extra_context or {}),
                "console": {
                    "conversation_id": conversation.pk,
                    "status": conversation.status,
                    "thread": thread,
                    "older": bool(thread) and thread[0].seq > 1,
                    "history_url": reverse("admin:messaging_message_changelist")
                    + f"?conversation__id__exact={conversation.pk}",
                    "config": {
                        "conversationId": conversation.pk,
                        "userId": principal_for_staff(request.user).user_id,
                        "wsPath": f"/ws/conversations/{conversation.pk}",
                        "lastMessageId": thread[-1].pk if thread else None,
                        "readSeqs": {p.user_id: p.last_read_seq for p in conversation.participants.all()},
                    },
                },
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # conversations are opened by donors

    def save_model(self, request: HttpRequest, obj: Conversation, form, change: bool) -> None:
        # Edits go through the service like API updates do (activity time, one code path).
        changed = {name: form.cleaned_data[name] for name in form.changed_data if name in {"subject", "metadata"}}
        if changed:
            services.conversation_update(conversation=obj, actor=principal_for_staff(request.user), **changed)

    def has_delete_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False  # close or archive instead; history is kept

    @admin.display(description="Conversation", ordering="subject")
    def title(self, obj: Conversation) -> str:
        return obj.subject or obj.pk

    @admin.display(description="Donor", ordering="created_by")
    def donor(self, obj: Conversation) -> str:
        return obj.created_by

    @admin.display(description="Assigned")
    def assigned_admins(self, obj: Conversation) -> str:
        return ", ".join(p.user_id for p in obj.participants.all() if p.role == Role.ADMIN) or "—"

    @admin.display(description="Unread")
    def unread(self, obj: Conversation) -> str:
        """For the viewing staff member: their watermark against last_seq. "—" when they do not take
        part (no watermark, as the API's null unreadCount); opening the conversation makes them a
        participant with everything read."""
        count = getattr(obj, "console_unread", None)
        if count is None:
            return "—"
        return format_html("<strong>{}</strong>", count) if count else "0"

    @admin.display(description="Last message")
    def last_message(self, obj: Conversation) -> str:
        # A plain str: the admin escapes it, so whatever a donor wrote is shown as text.
        message: Message | None = getattr(obj, "console_latest", None)
        if message is None:
            return "—"
        text = " ".join(message.content.split())  # one line in the list
        return f"{message.sender_id}: {Truncator(text).chars(PREVIEW_LENGTH)}"

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
            self.message_user(request, f"{count} conversation(s) {done}.", messages.SUCCESS)

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Conversation], status: str, done: str) -> None:
        self._apply(
            request,
            queryset,
            lambda c, actor: services.conversation_update(conversation=c, actor=actor, status=status),
            done,
        )

    @admin.action(description="Assign to me")
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._apply(
            request,
            queryset,
            lambda c, actor: services.conversation_assign(conversation=c, actor=actor, admin_id=actor.user_id),
            "assigned to you",
        )

    @admin.action(description="Assign to staff member (choose below)")
    def assign_to_staff(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        """Assign to the staff member picked in the action bar. The target must be an active staff user
        (assigned under the chat id their console acts as); anything else changes nothing."""
        username = (request.POST.get("assignee") or "").strip()
        if not username:
            self.message_user(request, "Choose the staff member to assign to; nothing was changed.", messages.ERROR)
            return
        user_model = get_user_model()
        target = user_model.objects.filter(
            **{user_model.USERNAME_FIELD: username}, is_staff=True, is_active=True
        ).first()
        if target is None:
            self.message_user(
                request, f"{username} is not an active staff member; nothing was changed.", messages.ERROR
            )
            return
        admin_id = staff_chat_id(target)  # the id the console acts as for that person
        self._apply(
            request,
            queryset,
            lambda c, actor: services.conversation_assign(conversation=c, actor=actor, admin_id=admin_id),
            f"assigned to {admin_id}",
        )

    @admin.action(description="Close")
    def close(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._set_status(request, queryset, ConversationStatus.CLOSED, "closed")

    @admin.action(description="Archive")
    def archive(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._set_status(request, queryset, ConversationStatus.ARCHIVED, "archived")

    @admin.action(description="Reopen")
    def reopen(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._set_status(request, queryset, ConversationStatus.ACTIVE, "reopened")
