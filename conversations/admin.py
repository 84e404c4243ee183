"""Django admin for support staff: triage conversations. Every action goes through the services, so an
action taken here is recorded (SYSTEM message) exactly as it would be through the API.

A staff member's chat user id is their username."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from rest_framework import serializers

from chatservice.authentication import principal_for_staff
from chatservice.errors import ServiceError
from chatservice.validation import clean_text, validate_metadata
from conversations import services
from conversations.models import Conversation, ConversationStatus, Participant, Role
from messaging.models import Message

# The conversation page shows this many latest messages; the full history is in the Message list.
RECENT_MESSAGES_SHOWN = 50


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
            return queryset.filter(participants__role=Role.ADMIN, participants__user_id=request.user.get_username())
        return queryset


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
    list_display = ["id", "subject", "status", "created_by", "assigned_admins", "updated_at"]
    list_filter = ["status", AssignedFilter]
    search_fields = ["=id", "subject", "=participants__user_id"]
    ordering = ["-updated_at", "-id"]
    readonly_fields = ["id", "created_by", "status", "created_at", "updated_at", "last_message_at", "recent_messages"]
    fields = [
        "id",
        "subject",
        "status",
        "created_by",
        "metadata",
        "created_at",
        "updated_at",
        "last_message_at",
        "recent_messages",
    ]
    form = ConversationForm
    inlines = [ParticipantInline]
    actions = ["assign_to_me", "close", "archive", "reopen"]
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).prefetch_related("participants")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # conversations are opened by donors

    def save_model(self, request: HttpRequest, obj: Conversation, form, change: bool) -> None:
        # Edits go through the service like API updates do (activity time, one code path).
        changed = {name: form.cleaned_data[name] for name in form.changed_data if name in {"subject", "metadata"}}
        if changed:
            services.conversation_update(conversation=obj, actor=principal_for_staff(request.user), **changed)

    def has_delete_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False  # close or archive instead; history is kept

    @admin.display(description="Assigned")
    def assigned_admins(self, obj: Conversation) -> str:
        return ", ".join(p.user_id for p in obj.participants.all() if p.role == Role.ADMIN) or "—"

    @admin.display(description="Latest messages")
    def recent_messages(self, obj: Conversation) -> str:
        latest = list(Message.objects.filter(conversation_id=obj.pk).order_by("-seq")[:RECENT_MESSAGES_SHOWN])
        latest.reverse()
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td style='white-space:pre-wrap'>{}</td></tr>",
            (
                (
                    m.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    f"{m.sender_id} ({m.sender_role})",
                    m.message_type,
                    m.content,
                )
                for m in latest
            ),
        )
        history = reverse("admin:messaging_message_changelist") + f"?conversation__id__exact={obj.pk}"
        return format_html('<table>{}</table><p><a href="{}">Full history</a></p>', rows, history)

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

    @admin.action(description="Close")
    def close(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._set_status(request, queryset, ConversationStatus.CLOSED, "closed")

    @admin.action(description="Archive")
    def archive(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._set_status(request, queryset, ConversationStatus.ARCHIVED, "archived")

    @admin.action(description="Reopen")
    def reopen(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._set_status(request, queryset, ConversationStatus.ACTIVE, "reopened")
