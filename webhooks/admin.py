"""Webhook endpoints (URL, secret, event types, active) and their delivery log in admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.models import AuditAction
from chatservice.authentication import principal_for_staff
from chatservice.db import atomic
from jobs.admin import JobAdmin
from webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from webhooks.services import DELIVER_KIND, endpoint_audit
from webhooks.ssrf import UnsafeURL, check_url


class EndpointForm(forms.ModelForm):
    # A URL typed without a scheme is taken as https (Django 6's default; stated, so 5.2 does not warn).
    url = forms.URLField(max_length=2000, assume_scheme="https")
    events = forms.MultipleChoiceField(choices=EventType.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "events", "include_notes", "active", "secret")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            check_url(url)
        except UnsafeURL as exc:
            raise ValidationError(str(exc)) from None
        return url

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"]
        if not secret.startswith("whsec_"):
            raise ValidationError("A secret is whsec_ followed by base64.")
        return secret


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("url", "description", "event_list", "include_notes", "active", "created_at")
    list_filter = ("active",)

    @admin.display(description="Events")
    def event_list(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events)

    # Every change is an audit record, committed with it (webhooks.services.endpoint_audit).
    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        actor = principal_for_staff(request.user)
        with atomic():
            super().save_model(request, obj, form, change)
            action = AuditAction.WEBHOOK_UPDATE if change else AuditAction.WEBHOOK_CREATE
            endpoint_audit(actor=actor, endpoint=obj, action=action, changed=form.changed_data if change else ())

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        self.delete_queryset(request, WebhookEndpoint.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        actor = principal_for_staff(request.user)
        with atomic():
            for endpoint in queryset:
                endpoint_audit(actor=actor, endpoint=endpoint, action=AuditAction.WEBHOOK_DELETE)
            super().delete_queryset(request, queryset)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(JobAdmin):
    """The delivery log: status, attempts, the last error, the next try (run_at), and replay."""

    list_display = ("event_type", "endpoint", "status", "attempts", "run_at", "last_error_short", "created_at")
    list_filter = ("status",)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(kind=DELIVER_KIND)

    @admin.display(description="Event")
    def event_type(self, job: WebhookDelivery) -> str:
        return job.payload.get("type", "")

    @admin.display(description="Endpoint")
    def endpoint(self, job: WebhookDelivery) -> str:
        return job.payload.get("endpointId", "")
