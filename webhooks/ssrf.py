"""Where a webhook may be sent: public addresses only, checked when an endpoint is saved and again before
every delivery (a name can resolve elsewhere later)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeURL(ValueError):
    code = "webhook_url_refused"


def _port(scheme: str, port: int | None) -> int:
    return port or (443 if scheme == "https" else 80)


def check_url(url: str) -> None:
    """Raise UnsafeURL unless `url` is http(s) with a host whose every address is public (not loopback,
    private, link-local, the cloud metadata address, multicast or reserved). CHAT_WEBHOOK_ALLOW_PRIVATE
    lifts the address rule (tests, a receiver on the same network)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnsafeURL("A webhook URL must be http:// or https:// with a host.")
    if parts.username or parts.password:
        raise UnsafeURL("A webhook URL must not carry credentials; the signature authenticates the sender.")
    try:
        port = _port(parts.scheme, parts.port)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise UnsafeURL(f"The webhook URL's host does not resolve: {exc}") from None
    if settings.CHAT["WEBHOOK_ALLOW_PRIVATE"]:
        return
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise UnsafeURL(f"The webhook URL resolves to a non-public address ({address}).")
