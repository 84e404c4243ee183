"""GET /admin/demo-login/<token>/: `make demo`'s link into the console, already logged in (demo.login)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from chatservice.views import not_found
from demo.login import user_for

# What django.core.signing produces (URL-safe base64 and ':'), bounded.
DEMO_LOGIN_TOKEN_PATTERN = r"[A-Za-z0-9_\-:]{1,512}"  # noqa: S105 - a pattern
# login() without authenticate(): name the backend that would have accepted this account.
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@never_cache
@require_GET
def demo_login(request: HttpRequest, token: str) -> HttpResponse:
    # With DEBUG off the link does not exist: 404, whatever the token.
    if not settings.DEBUG:
        return not_found(request)
    workspace = reverse("desk-workspace")
    user = user_for(token)
    if user is None:  # used, expired or forged: the ordinary login, which then leads to the workspace
        return HttpResponseRedirect(f"{reverse('admin:login')}?{urlencode({'next': workspace})}")
    login(request, user, backend=MODEL_BACKEND)  # moves last_login: this link is spent
    return HttpResponseRedirect(workspace)
