"""The upload limit at the HTTP layer of a real Daphne worker: an oversize upload is refused while it streams
in, not after the worker has taken it all, and the worker's memory (RSS, read from /proc) does not grow with it.
The 1 MiB rule still holds on every other path."""

from __future__ import annotations

import json
import select
import socket
from pathlib import Path

import httpx
import pytest

from chatservice.devkeys import generate_rsa_keypair
from tests.servers import create_conversation, mint, one_worker

LIMIT = 2 * 1024 * 1024  # CHAT_ATTACHMENT_MAX_BYTES for this worker
SENT_AT_MOST = 64 * 1024 * 1024  # what the client would send if nobody stopped it
# The answer reaches the client while it is still sending; until it notices, the kernel's socket buffers and
# the server's discarding reads (so the client reads the 413 rather than a reset) take a few MB more. The old
# code answered only after reading all SENT_AT_MOST.
IN_FLIGHT_SLACK = 14 * 1024 * 1024
CHUNK = 256 * 1024
# RSS may move by allocator noise and the first requests' imports; a body taken into memory would add its size.
RSS_SLACK_BYTES = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_rsa_keypair()


@pytest.fixture(scope="module")
def server(keys, tmp_path_factory):
    database = tmp_path_factory.mktemp("db") / "chat.sqlite3"
    with one_worker(keys[1].decode(), database, CHAT_ATTACHMENT_MAX_BYTES=str(LIMIT)) as running:
        yield running


@pytest.fixture(scope="module")
def conversation(server, keys) -> str:
    return create_conversation(server, keys[0], "donor-limits")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def warm_up(server, keys, conversation) -> None:
    """One real upload first, so that the comparison does not count the first upload's imports."""
    headers = {"Authorization": f"Bearer {mint(keys[0], 'donor-limits')}"}
    files = {"file": ("warm.txt", b"warm up\n" * 1000, "text/plain")}
    response = httpx.post(f"{server.url}/api/conversations/{conversation}/attachments", headers=headers, files=files)
    assert response.status_code == 201, response.text


def send_until_answered(port: int, head: bytes, chunk: bytes) -> tuple[int, bytes]:
    """Send `head`, then `chunk` repeatedly until the server answers (or SENT_AT_MOST); returns the body bytes
    sent before the answer, and the answer."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        answer = b""
        while sent < SENT_AT_MOST and b"\r\n\r\n" not in answer:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            assert readable or writable, "the server neither read nor answered for 30 s"
            if readable:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
            elif writable:
                try:
                    sent += sock.send(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
        sock.setblocking(True)
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) == 0:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except (ConnectionResetError, TimeoutError):
            pass
    return sent, answer


def upload_head(conversation: str, token: str, framing: str) -> bytes:
    return (
        f"POST /api/conversations/{conversation}/attachments HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=b\r\n{framing}\r\n"
    ).encode()


def assert_413(answer: bytes, code: str) -> None:
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:200]
    body = rest.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body)["code"] == code


def test_a_declared_oversize_upload_is_refused_before_its_body_is_read(server, keys, conversation):
    warm_up(server, keys, conversation)
    before = rss(server.process.pid)
    head = upload_head(conversation, mint(keys[0], "donor-limits"), f"Content-Length: {SENT_AT_MOST}\r\n")
    sent, answer = send_until_answered(server.port, head, b"x" * CHUNK)
    assert_413(answer, "attachment_too_large")
    assert sent < IN_FLIGHT_SLACK  # answered from the headers alone, long before the body ended
    assert rss(server.process.pid) - before < RSS_SLACK_BYTES


def test_a_chunked_oversize_upload_is_refused_as_it_goes_over(server, keys, conversation):
    warm_up(server, keys, conversation)
    before = rss(server.process.pid)
    chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
    head = upload_head(conversation, mint(keys[0], "donor-limits"), "Transfer-Encoding: chunked\r\n")
    sent, answer = send_until_answered(server.port, head, chunk)
    assert_413(answer, "attachment_too_large")
    # Refused once the limit was crossed: what was sent is the limit plus what the socket buffers held.
    assert LIMIT < sent < LIMIT + IN_FLIGHT_SLACK < SENT_AT_MOST
    assert rss(server.process.pid) - before < RSS_SLACK_BYTES
    log = server.log()
    assert f"/api/conversations/{conversation}/attachments" in log and " 413 " in log  # in the access log


def test_within_the_limit_an_upload_passes_and_other_paths_keep_1_mib(server, keys, conversation):
    headers = {"Authorization": f"Bearer {mint(keys[0], 'donor-limits')}"}
    text = b"line of a bank statement\n" * 60_000  # 1.5 MB: over 1 MiB, within the attachment limit
    stored = httpx.post(
        f"{server.url}/api/conversations/{conversation}/attachments",
        headers=headers,
        files={"file": ("statement.txt", text, "text/plain")},
    )
    assert stored.status_code == 201 and stored.json()["size"] == len(text)
    got = httpx.get(f"{server.url}/api/attachments/{stored.json()['attachmentId']}", headers=headers)
    assert got.content == text
    too_big = httpx.post(
        f"{server.url}/api/conversations/{conversation}/messages",
        headers={**headers, "Content-Type": "application/json"},
        content=json.dumps({"content": "x" * (LIMIT - 1000)}).encode(),
    )
    assert too_big.status_code == 413 and too_big.json()["code"] == "request_too_large"
