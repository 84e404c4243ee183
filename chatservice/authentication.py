"""Who is calling: JWT verification shared by REST and WebSocket, and staff sessions for the admin UI.

`principal_from_token` is the single place a token is checked; the WebSocket consumer calls it too.
Neither the token nor its claims are ever logged.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from conversations.models import Role
from notifications.contacts import remember_email
from notifications.models import EMAIL_MAX_LENGTH

# Roles in the Auth Service's tokens that make a caller support staff; everything else is a donor.
ADMIN_ROLE_CLAIMS = frozenset({"ADMIN", "SUPER_ADMIN"})
USER_ID_MAX_LENGTH = 128
# Console staff act as `staff:<username>` unless linked to their Auth Service subject (identity.models);
# no token subject may start with it, so the two namespaces never meet.
STAFF_ID_PREFIX = "staff:"
# Tolerated clock skew between the Auth Service and this service when checking exp/nbf/iat.
JWT_LEEWAY_S = 30
_validate_email = EmailValidator()
# RFC 7519 NumericDate claims: a JSON number each, when present (strings, booleans and null are refused).
TIME_CLAIMS = ("exp", "nbf", "iat")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller as the chat sees it."""

    user_id: str
    role: str
    via: str = "jwt"
    # The token's `email` claim when it is a usable address (notifications); not part of who they are.
    email: str | None = field(default=None, compare=False, repr=False)

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def __str__(self) -> str:
        return f"{self.user_id} ({self.role})"


class TokenError(Exception):
    """A token was refused; `code` is stable (REST error code, WebSocket close reason)."""

    def __init__(self, detail: str, code: str = "token_invalid") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


@functools.lru_cache(maxsize=4)
def _public_key(pem: str) -> Any:
    return load_pem_public_key(pem.encode())


def _is_numeric_date(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)  # NaN and Infinity (Python's JSON extensions) are no dates


class _StrictTimeClaimsJWT(jwt.PyJWT):
    """PyJWT, with exp, nbf and iat held to JSON numbers.

    PyJWT compares them after int(), so `"exp": "9999999999"` (a string) would pass and a signed token
    could carry any text there. `_decode_payload` is PyJWT's documented extension point: it runs after the
    signature is verified and before any claim is checked, so a wrongly typed time claim is token_invalid
    whatever its value, never token_expired.
    """

    def _decode_payload(self, decoded: dict[str, Any]) -> dict[str, Any]:
        payload = super()._decode_payload(decoded)
        for claim in TIME_CLAIMS:
            if claim in payload and not _is_numeric_date(payload[claim]):
                raise jwt.DecodeError(f"The {claim} claim must be a number.")
        return payload


_jwt = _StrictTimeClaimsJWT()


def _check_token_size(token: str, max_bytes: int) -> None:
    """Refuse a token over `max_bytes` before anything decodes it. A JWT is ASCII (base64url and dots), so
    its length in characters is its length in bytes; anything else is refused outright."""
    if len(token) > max_bytes:
        raise TokenError(f"Token is longer than {max_bytes} bytes.")
    if not token.isascii():
        raise TokenError("Token is invalid.")


def principal_from_token(token: str) -> Principal:
    conf = settings.CHAT
    _check_token_size(token, conf["JWT_MAX_TOKEN_BYTES"])
    options = {"require": ["exp"], "verify_aud": conf["JWT_AUDIENCE"] is not None}
    try:
        claims = _jwt.decode(
            token,
            key=_public_key(conf["JWT_PUBLIC_KEY"]),
            # Only the configured asymmetric algorithms: `none` and HS256-with-the-public-key are refused.
            algorithms=conf["JWT_ALGORITHMS"],
            issuer=conf["JWT_ISSUER"],
            audience=conf["JWT_AUDIENCE"],
            options=options,
            leeway=JWT_LEEWAY_S,
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("Token has expired.", "token_expired") from None
    except jwt.InvalidTokenError:
        raise TokenError("Token is invalid.") from None
    user_id = claims.get("sub") or claims.get("userId")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > USER_ID_MAX_LENGTH:
        raise TokenError("Token has no usable subject (sub or userId).")
    if user_id.strip().startswith(STAFF_ID_PREFIX):
        raise TokenError(f"Token subjects may not start with {STAFF_ID_PREFIX!r} (console staff ids).")
    role_claim = claims.get("role")
    role = Role.ADMIN if isinstance(role_claim, str) and role_claim in ADMIN_ROLE_CLAIMS else Role.USER
    return Principal(user_id=user_id.strip(), role=role, email=_usable_email(claims.get("email")))


def _usable_email(claim: Any) -> str | None:
    """The `email` claim if it is a valid address; anything else is ignored (the token stays valid)."""
    if not isinstance(claim, str) or len(claim) > EMAIL_MAX_LENGTH:
        return None
    try:
        _validate_email(claim)
    except DjangoValidationError:
        return None
    return claim


class JWTAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Principal, None] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != self.keyword.lower():
            raise exceptions.AuthenticationFailed(
                "Authorization header must be 'Bearer <token>'.", code="token_invalid"
            )
        try:
            principal = principal_from_token(parts[1])
        except TokenError as exc:
            raise exceptions.AuthenticationFailed(exc.detail, code=exc.code) from None
        remember_email(principal)
        return principal, None

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (with WWW-Authenticate) rather than 403 when credentials are missing.
        return f'{self.keyword} realm="chat"'


class StaffSessionAuthentication(authentication.SessionAuthentication):
    """Staff logged into Django admin act as ADMIN; their chat user id is their username."""

    def authenticate(self, request: Request) -> tuple[Principal, None] | None:
        result = super().authenticate(request)  # enforces CSRF on unsafe methods
        if result is None:
            return None
        user = result[0]
        if not (user.is_active and user.is_staff):
            return None
        return principal_for_staff(user), None


def principal_for_staff(user: Any) -> Principal:
    """A console staff account's principal: its linked Auth Service subject, else `staff:<username>`
    (identity.selectors). One query."""
    from identity.selectors import staff_principal  # identity's models need the app registry

    return staff_principal(user)
