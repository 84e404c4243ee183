"""An export streams from a real Daphne worker: a 40 MB download leaves the worker's memory (RSS, read from
/proc while the body arrives) within a few MB, where Django's own handling of a synchronous body would have
held all of it before sending a byte."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from chatservice.devkeys import generate_rsa_keypair
from tests.servers import create_conversation, mint, one_worker
from tests.test_attachment_limits import rss

MESSAGES = 20_000
CONTENT = "x" * 2000  # 2 KB each: a 40 MB export
WARM_UP_MESSAGES = 2_000  # 4 pages of 500
RSS_SLACK_BYTES = 16 * 1024 * 1024  # allocator noise and a batch or two in flight; the body is 40 MB


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_rsa_keypair()


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("db") / "chat.sqlite3"


@pytest.fixture(scope="module")
def server(keys, database):
    with one_worker(keys[1].decode(), database) as running:
        yield running


def fill(database: Path, conversation_id: str, donor: str, count: int) -> None:
    """Messages written straight into the worker's database: the API would take minutes for 20,000."""
    now = datetime.now(UTC).isoformat(sep=" ")
    with sqlite3.connect(database) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(messaging_message)")]
        rows = []
        for seq in range(1, count + 1):
            values = {
                "_id": f"msg_EXPORT{conversation_id[-8:]}{seq:08d}",
                "conversation_id": conversation_id,
                "seq": seq,
                "sender_id": donor,
                "sender_role": "USER",
                "sender_name": donor,
                "content": CONTENT,
                "message_type": "TEXT",
                "metadata": "{}",
                "reactions": "[]",
                "created_at": now,
                "updated_at": now,
            }
            rows.append(tuple(values.get(name) for name in columns))
        placeholders = ",".join("?" * len(columns))
        db.executemany(f"INSERT INTO messaging_message ({','.join(columns)}) VALUES ({placeholders})", rows)  # noqa: S608 - column names from the table itself
        db.execute("UPDATE conversations_conversation SET last_seq = ? WHERE _id = ?", (count, conversation_id))


def download(server, token: str, pid: int) -> tuple[bytes, int]:
    """The export, read as it arrives; the worker's highest RSS meanwhile."""
    peak = 0
    body = bytearray()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{server.url}/api/me/export", headers=headers, timeout=120) as response:
        assert response.status_code == 200
        for part in response.iter_bytes(256 * 1024):
            body += part
            peak = max(peak, rss(pid))
    return bytes(body), peak


def test_a_large_export_streams_in_bounded_memory(server, keys, database):
    small = create_conversation(server, keys[0], "donor-small")
    fill(database, small, "donor-small", WARM_UP_MESSAGES)
    big = create_conversation(server, keys[0], "donor-big")
    fill(database, big, "donor-big", MESSAGES)
    pid = server.process.pid
    # A first export of a few pages: imports, caches, and the allocator's high-water mark for a page (a
    # one-off few MB); what is measured after is what grows with the export's length.
    download(server, mint(keys[0], "donor-small"), pid)
    before = rss(pid)
    body, peak = download(server, mint(keys[0], "donor-big"), pid)
    assert len(body) > MESSAGES * len(CONTENT)
    (conversation,) = json.loads(body)["conversations"]
    assert len(conversation["messages"]) == MESSAGES
    assert peak - before < RSS_SLACK_BYTES, (
        f"RSS grew {(peak - before) / 2**20:.1f} MiB for a {len(body) / 2**20:.0f} MiB export"
    )


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_until_idle(pid: int, *, quiet_s: float = 1.0, limit_s: float = 60.0) -> None:
    """Until the worker has used no CPU for `quiet_s`: it produced all it was going to. (A poll: nothing in
    the worker announces that it stopped producing.)"""
    import time

    deadline = time.monotonic() + limit_s
    last, since = cpu_ticks(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = cpu_ticks(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
    raise AssertionError("the worker kept working")


def test_a_client_that_stops_reading_stops_the_export(server, keys, database):
    """Daphne's send never waits; without flow control the whole body would pile up in the worker for a
    client that reads slowly or not at all."""
    donor = "donor-stalled"
    conversation = create_conversation(server, keys[0], donor)
    fill(database, conversation, donor, MESSAGES)
    pid = server.process.pid
    download(server, mint(keys[0], "donor-small"), pid)
    before = rss(pid)
    headers = {"Authorization": f"Bearer {mint(keys[0], donor)}"}
    with httpx.stream("GET", f"{server.url}/api/me/export", headers=headers, timeout=120) as response:
        stream = response.iter_bytes(64 * 1024)
        read = sum(len(next(stream)) for _ in range(16))  # 1 MiB, then the client stops reading
        wait_until_idle(pid)
        held = rss(pid) - before
        assert held < RSS_SLACK_BYTES, f"the worker holds {held / 2**20:.1f} MiB for a client that read {read} bytes"
        read += sum(len(part) for part in stream)  # and it all still arrives once the client reads again
    assert read > MESSAGES * len(CONTENT)
