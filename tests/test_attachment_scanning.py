"""Virus scanning against a real clamd (Debian's clamav-daemon). Its signature database cannot be downloaded
here (no internet beyond package mirrors), so the daemon runs on a database of one signature written by this
test: the EICAR test file, as a body signature (.ndb). The protocol, the daemon and its verdicts are real."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from attachments.models import Attachment
from tests.servers import free_port
from tests.test_attachments import PDF_BYTES, empty_storage, stored_files, upload  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.django_db(transaction=True)

CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"
# The standard antivirus test file (eicar.org): harmless, and detected as a virus by every scanner.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLAMD_START_TIMEOUT_S = 60


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"zPING\0")
            return sock.recv(16) == b"PONG\0"
    except OSError:
        return False


@pytest.fixture(scope="module")
def clamd(tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("clamd")
    database = root / "db"
    database.mkdir()
    (database / "eicar.ndb").write_text(f"Eicar-Test-Signature:0:*:{EICAR.hex()}\n")
    port = free_port()
    config = root / "clamd.conf"
    config.write_text(
        f"DatabaseDirectory {database}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nForeground yes\n"
        f"LogFile {root / 'clamd.log'}\nPidFile {root / 'clamd.pid'}\n"
    )
    root.chmod(0o755)
    process = subprocess.Popen([CLAMD, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + CLAMD_START_TIMEOUT_S
        while not _pong(port):  # polled: clamd has no readiness signal but answering PING
            assert process.poll() is None, Path(root / "clamd.log").read_text(errors="replace")
            assert time.monotonic() < deadline, "clamd did not start"
            time.sleep(0.1)
        yield f"tcp://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def scanned(settings, clamd) -> None:
    settings.CHAT = {**settings.CHAT, "CLAMAV_URL": clamd}


def test_the_eicar_file_is_refused_and_nothing_is_stored(donor, conversation, scanned):
    response = upload(donor, conversation.pk, EICAR, "invoice.txt", "text/plain")
    assert response.status_code == 422 and response.json()["code"] == "attachment_infected"
    assert Attachment.objects.count() == 0 and stored_files() == []


def test_a_clean_file_passes_the_scanner(donor, conversation, scanned):
    assert upload(donor, conversation.pk, PDF_BYTES, "receipt.pdf").status_code == 201


def test_uploads_fail_closed_while_the_scanner_is_down(donor, conversation, settings):
    settings.CHAT = {**settings.CHAT, "CLAMAV_URL": f"tcp://127.0.0.1:{free_port()}"}  # nothing listens there
    response = upload(donor, conversation.pk, PDF_BYTES, "receipt.pdf")
    assert response.status_code == 503 and response.json()["code"] == "attachment_scanner_unavailable"
    assert Attachment.objects.count() == 0 and stored_files() == []
