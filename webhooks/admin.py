"""Webhook endpoints (URL, secret, event types, active) and their delivery log in admin."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from jobs.admin import JobAdmin
from webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from webhooks.services import DELIVER_KIND
from webhooks.ssrf import UnsafeURL, check_url


class EndpointForm(forms.ModelForm):
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
