"""The console link `make demo` prints: single use, short lived, development only.

The token is signed with SECRET_KEY (TimestampSigner, its own salt) and names the staff account and its
last_login when the link was made. Logging in moves last_login, so the link stops working once used; it
also expires after LOGIN_LINK_MAX_AGE_S, and never works with DEBUG off (demo.views answers 404 there).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core import signing

LOGIN_LINK_SALT = "demo.login-link"
LOGIN_LINK_MAX_AGE_S = 15 * 60


def _last_login(user: Any) -> str:
    return user.last_login.isoformat() if user.last_login else ""


def login_token(user: Any) -> str:
    return signing.TimestampSigner(salt=LOGIN_LINK_SALT).sign_object({"user": user.pk, "last": _last_login(user)})


def user_for(token: str) -> Any | None:
    """The active staff account the token names, if it is genuine, not expired and not used yet."""
    try:
        payload = signing.TimestampSigner(salt=LOGIN_LINK_SALT).unsign_object(token, max_age=LOGIN_LINK_MAX_AGE_S)
    except signing.BadSignature:  # expired links too (SignatureExpired is a BadSignature)
        return None
    if not isinstance(payload, dict):
        return None
    user = get_user_model().objects.filter(pk=payload.get("user"), is_active=True, is_staff=True).first()
    if user is None or _last_login(user) != payload.get("last"):
        return None
    return user
