"""The console link `make demo` prints: single use, short lived, development only.

Made like Django's password-reset tokens: the account's id, signed (TimestampSigner) with a salt that holds
the account's password hash and last_login. Development's SECRET_KEY is public (chatservice.config), so the
password hash, random per account and only in the database, is what makes a link unforgeable. Logging in
moves last_login, so a link stops working once used; it also expires after LOGIN_LINK_MAX_AGE_S, and never
works with DEBUG off (demo.views answers 404 there).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core import signing

LOGIN_LINK_SALT = "demo.login-link"
LOGIN_LINK_MAX_AGE_S = 15 * 60


def _signer(user: Any) -> signing.TimestampSigner:
    last_login = user.last_login.isoformat() if user.last_login else ""
    return signing.TimestampSigner(salt=f"{LOGIN_LINK_SALT}:{user.pk}:{user.password}:{last_login}")


def login_token(user: Any) -> str:
    return _signer(user).sign(str(user.pk))


def user_for(token: str) -> Any | None:
    """The active staff account the token names, if it is genuine, not expired and not used yet."""
    user_pk = token.split(":", 1)[0]
    if not user_pk.isdigit():
        return None
    user = get_user_model().objects.filter(pk=int(user_pk), is_active=True, is_staff=True).first()
    if user is None:
        return None
    try:
        _signer(user).unsign(token, max_age=LOGIN_LINK_MAX_AGE_S)
    except signing.BadSignature:  # expired links too (SignatureExpired is a BadSignature)
        return None
    return user
