"""Read-only message history for support staff: messages are changed only through the services."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from messaging.models import Message


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "conversation_link",
        "seq",
        "sender_id",
        "sender_role",
        "message_type",
        "short_content",
        "created_at",
    ]
    list_filter = ["message_type", "sender_role"]
    search_fields = ["=id", "=conversation__id", "=sender_id"]
    ordering = ["-id"]  # ids are ULIDs: newest first, on the primary key index

    @admin.display(description="Conversation", ordering="conversation_id")
    def conversation_link(self, obj: Message) -> str:
        # To the conversation's live page in the support console (no query: the id is on the row).
        url = reverse("admin:conversations_conversation_change", args=[obj.conversation_id])
        return format_html('<a href="{}">{}</a>', url, obj.conversation_id)

    @admin.display(description="Content")
    def short_content(self, obj: Message) -> str:
        return obj.content if len(obj.content) <= 80 else obj.content[:79] + "…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False
