"""Virus scanning with clamd (ClamAV's daemon) over its INSTREAM command, on TCP or a Unix socket.

The protocol is small and stable (clamd(8)): `zINSTREAM\\0`, then chunks each prefixed by its length as a
4-byte big-endian number, then a zero length; clamd answers `stream: OK`, `stream: <name> FOUND` or
`<reason> ERROR`. Anything but a clear OK or FOUND is a scanner failure, and uploads then fail closed.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

# A scan of a 10 MiB file takes well under a second; a daemon slower than this is treated as down.
SCAN_TIMEOUT_S = 30.0
CHUNK_BYTES = 64 * 1024
MAX_REPLY_BYTES = 4096


class ScannerUnavailable(Exception):
    pass


@dataclass(frozen=True)
class Verdict:
    infected: bool
    signature: str | None = None


def _connect(url: str, timeout: float) -> socket.socket:
    parsed = urlsplit(url)
    try:
        if parsed.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(parsed.path)
            return sock
        return socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
    except OSError as exc:
        raise ScannerUnavailable(f"clamd at {parsed.scheme}://{parsed.netloc}{parsed.path}: {exc}") from exc


def scan(url: str, data: bytes, *, timeout: float = SCAN_TIMEOUT_S) -> Verdict:
    with _connect(url, timeout) as sock:
        try:
            sock.sendall(b"zINSTREAM\0")
            view = memoryview(data)
            for start in range(0, len(view), CHUNK_BYTES):
                chunk = view[start : start + CHUNK_BYTES]
                sock.sendall(struct.pack("!I", len(chunk)) + chunk)
            sock.sendall(struct.pack("!I", 0))
            reply = b""
            while not reply.endswith(b"\0") and len(reply) < MAX_REPLY_BYTES:
                more = sock.recv(MAX_REPLY_BYTES)
                if not more:
                    break
                reply += more
        except OSError as exc:
            raise ScannerUnavailable(f"clamd: {exc}") from exc
    text = reply.rstrip(b"\0\n").decode("utf-8", "replace")
    if text.endswith(" OK") and "ERROR" not in text:
        return Verdict(infected=False)
    if text.endswith(" FOUND"):
        return Verdict(infected=True, signature=text.removeprefix("stream: ").removesuffix(" FOUND"))
    raise ScannerUnavailable(f"clamd answered {text[:200]!r}")
