"""The link of a staff account to its Auth Service subject: a field on the user's admin page.

Saving it goes through identity.services (as `manage.py link_staff_subject` does), so the history the
account made as `staff:<username>` moves to the subject; a plain model save would skip that.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from chatservice.authentication import STAFF_ID_PREFIX
from chatservice.errors import ServiceError
from identity.models import StaffSubject
from identity.services import staff_link, staff_unlink


class StaffSubjectForm(forms.ModelForm):
    class Meta:
        model = StaffSubject
        fields = ["subject"]
        help_texts = {
            "subject": "The `sub` of this person's Auth Service tokens. Linked, the console acts as that "
            f"subject (one identity with their ADMIN token); unlinked, as {STAFF_ID_PREFIX}<username>."
        }

    def clean_subject(self) -> str:
        subject = (self.cleaned_data.get("subject") or "").strip()
        if subject.startswith(STAFF_ID_PREFIX):
            raise forms.ValidationError(f"Subjects never start with {STAFF_ID_PREFIX!r}.")
        return subject


class StaffSubjectInline(admin.StackedInline):
    model = StaffSubject
    form = StaffSubjectForm
    fields = ["subject", "linked_at"]
    readonly_fields = ["linked_at"]
    extra = 0
    max_num = 1
    verbose_name = "Auth Service subject"


user_model = get_user_model()
BaseUserAdmin: Any = type(admin.site._registry[user_model]) if admin.site.is_registered(user_model) else UserAdmin
if admin.site.is_registered(user_model):
    admin.site.unregister(user_model)


@admin.register(user_model)
class StaffUserAdmin(BaseUserAdmin):
    inlines = [*getattr(BaseUserAdmin, "inlines", ()), StaffSubjectInline]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not StaffSubject:
            return super().save_formset(request, form, formset, change)
        user = form.instance
        # What the admin's change message reads; the link is reported by the message below instead.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            if not inline_form.has_changed() and not inline_form.cleaned_data.get("DELETE"):
                continue
            subject = inline_form.cleaned_data.get("subject")
            try:
                if inline_form.cleaned_data.get("DELETE") or not subject:
                    staff_unlink(user=user)
                    self.message_user(request, f"{user} acts as {STAFF_ID_PREFIX}{user.get_username()} again.")
                else:
                    moved = staff_link(user=user, subject=subject)
                    self.message_user(
                        request,
                        f"{user} now acts as {subject}; moved {moved.participations + moved.merged} "
                        f"participations and {moved.messages} messages.",
                    )
            except ServiceError as exc:
                self.message_user(request, exc.detail, messages.ERROR)
        return None
