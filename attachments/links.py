"""Short-lived signed download links: what a browser puts in <img src> or <a href>, which cannot carry
the bearer token. The link names the attachment and the variant and carries a timestamped signature
(django.core.signing, keyed by SECRET_KEY); it contains nothing of the JWT and expires after
CHAT_ATTACHMENT_LINK_TTL_S."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.utils import timezone

SALT = "attachments.link"
VARIANTS = ("original", "thumbnail")


class LinkExpired(Exception):
    pass


class LinkInvalid(Exception):
    pass


def _value(attachment_id: str, variant: str) -> str:
    return f"{attachment_id}.{variant}"


def download_path(attachment_id: str, variant: str = "original") -> str:
    """The authenticated download path (bearer token or staff session)."""
    query = "?variant=thumbnail" if variant == "thumbnail" else ""
    return f"/api/attachments/{attachment_id}{query}"


def signed_path(attachment_id: str, variant: str) -> tuple[str, datetime]:
    value = _value(attachment_id, variant)
    signed = signing.TimestampSigner(salt=SALT).sign(value)
    query = {"variant": variant} if variant != "original" else {}
    query["sig"] = signed[len(value) + 1 :]
    expires = timezone.now() + timedelta(seconds=settings.CHAT["ATTACHMENT_LINK_TTL_S"])
    return f"/api/attachments/{attachment_id}?{urlencode(query)}", expires


def check(attachment_id: str, variant: str, sig: str) -> None:
    """Raises LinkInvalid for a signature that was never ours for this attachment and variant, LinkExpired
    for one that was and is too old."""
    try:
        signing.TimestampSigner(salt=SALT).unsign(
            f"{_value(attachment_id, variant)}:{sig}", max_age=settings.CHAT["ATTACHMENT_LINK_TTL_S"]
        )
    except signing.SignatureExpired as exc:
        raise LinkExpired from exc
    except signing.BadSignature as exc:
        raise LinkInvalid from exc
