"""Transports of notifications: the person's preferences (REST) and the unsubscribe page of the emails."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatservice.schema import ALWAYS_ERRORS, BODY_ERRORS, UNSAFE_ERRORS, error_responses
from chatservice.validation import StrictBooleanField
from chatservice.webclient import CONTENT_SECURITY_POLICY
from notifications import selectors, services


class PreferencesSerializer(serializers.Serializer):
    email = serializers.BooleanField(help_text="Email me when support replies while I am away.")
    emailAddressKnown = serializers.BooleanField(
        help_text="Whether the service has an address for you (your token's email claim)."
    )


class PreferencesInput(serializers.Serializer):
    email = StrictBooleanField()


class NotificationPreferencesView(APIView):
    """The caller's own notification preferences."""

    @extend_schema(responses={200: PreferencesSerializer, **error_responses(ALWAYS_ERRORS)})
    def get(self, request: Request) -> Response:
        return Response(selectors.preferences_get(request.user))

    @extend_schema(
        request=PreferencesInput,
        responses={
            200: PreferencesSerializer,
            **error_responses(ALWAYS_ERRORS, BODY_ERRORS, UNSAFE_ERRORS, ("required",)),
        },
    )
    def put(self, request: Request) -> Response:
        data = PreferencesInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.preferences_set(person=request.user, email=data.validated_data["email"])
        return Response(selectors.preferences_get(request.user))


@csrf_exempt  # the signed link is the authority; mail clients POST it without a session (RFC 8058)
@require_http_methods(["GET", "POST"])
def unsubscribe_page(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks (link scanners in mail systems open links; they must not unsubscribe anyone); POST does,
    from the page's button or a mail client's one-click List-Unsubscribe-Post."""
    try:
        if request.method == "POST":
            services.unsubscribe(token=token)
            state, status = "done", 200
        else:
            services.person_of_unsubscribe_token(token)
            state, status = "ask", 200
    except services.InvalidUnsubscribeLink:
        state, status = "invalid", 400
    response = render(request, "notifications/unsubscribe.html", {"state": state}, status=status)
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["Referrer-Policy"] = "no-referrer"  # the path holds the signed token
    response["Cache-Control"] = "no-store"
    return response
