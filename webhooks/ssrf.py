"""Where a webhook may be sent: public addresses only, checked when an endpoint is saved and again before
every delivery (a name can resolve elsewhere later); a delivery then connects to the address it checked."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings


class UnsafeURL(ValueError):
    code = "webhook_url_refused"


def _port(scheme: str, port: int | None) -> int:
    return port or (443 if scheme == "https" else 80)


@dataclass(frozen=True)
class Pinned:
    """A checked URL, to be sent to the address that was checked rather than resolved again (a name
    that resolves elsewhere between the check and the connection, DNS rebinding, gets nowhere)."""

    urls: tuple[str, ...]  # the host name replaced by each checked address, in the resolver's order
    host: str  # the Host header: the URL's own host[:port]
    sni_hostname: str  # TLS: the name sent and the certificate verified against


def check_url(url: str) -> Pinned:
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
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not settings.CHAT["WEBHOOK_ALLOW_PRIVATE"]:
        for address in addresses:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            if not address.is_global or address.is_multicast:
                raise UnsafeURL(f"The webhook URL resolves to a non-public address ({address}).")
    urls = []
    for address in dict.fromkeys(addresses):  # each once, in order
        shown = f"[{address}]" if address.version == 6 else str(address)
        netloc = f"{shown}:{parts.port}" if parts.port else shown
        urls.append(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))
    return Pinned(tuple(urls), parts.netloc, parts.hostname)
