"""Real-browser test kit: a real Daphne worker and Debian's headless Chromium driven by Playwright.

Use it from a test module by binding the fixtures there (a `pytest_plugins` entry works too, but makes
pytest warn when the module also imports helpers from here):

    from tests import browser as kit
    browser, chat_server, new_page = kit.browser, kit.chat_server, kit.new_page

Fixtures (module-scoped where they start processes, so each module pays the start-up once):

* `chat_server` -> LiveServer: a Daphne worker on its own SQLite file (migrated), trusting the suite's
  test key pair (`keypair` in conftest). `.url` is the base URL, `.mint(user, role)` a bearer token the
  worker accepts, `.api(method, path, user, role, json=…)` a REST call as that user (httpx.Response),
  `.stop()` / `.start()` / `.restart()` kill and start the worker again on the same port (same URL),
  `.env` the worker's environment (e.g. for `manage.py` subprocesses against the same database).
* `browser` -> playwright Browser (Chromium, headless, no network beyond this machine).
* `new_page(width=1280, height=800)` -> Page in a fresh context (no shared cookies or storage). Every
  page is closed after the test, and the test fails if one of its pages raised an uncaught script error.
* `expect(...)` waits up to EXPECT_TIMEOUT_MS (15 s) once this module is imported.
* `screenshot(page, name)` saves var/test-artifacts/<name>.png (var/ is gitignored) and returns the path.

Never run `playwright install`: the pinned Python package drives /usr/bin/chromium (apt package
`chromium`), and the machines have no route to the browser download servers anyway.

Playwright's sync API runs its own event loop; the fixtures are module-scoped so that loop is gone before
asyncio tests of other modules start. The server fixture is not called `live_server`: pytest-django owns
that name (an autouse helper of its own acts on any test that requests it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from chatservice.config import BASE_DIR
from tests.servers import free_port, migrate, mint, server_env, start_daphne, terminate, wait_until_serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in CI containers, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The network is closed: no background fetches that would only time out.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = BASE_DIR / "var" / "test-artifacts"
# How long Playwright's expect() waits for a condition (its default is 5 s): long enough for a loaded
# 2-core machine; a passing test never waits this long for one thing.
EXPECT_TIMEOUT_MS = 15_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)


class LiveServer:
    """One Daphne worker process on a fixed port; restartable, so a test can drop every socket for real."""

    def __init__(self, env: dict[str, str], private_pem: bytes, log_dir: Path) -> None:
        self.env = env
        self.port = free_port()
        self._private_pem = private_pem
        self._log_path = log_dir / "daphne.log"
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def mint(self, user: str, role: str = "USER", ttl: int = 900, **claims: object) -> str:
        return mint(self._private_pem, user, role, ttl, **claims)

    def api(self, method: str, path: str, user: str, role: str = "USER", **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.mint(user, role)}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def start(self) -> None:
        with self._log_path.open("ab") as log:
            # Twisted listens with SO_REUSEADDR, so a restart can take the port of a killed worker at once.
            self._process = start_daphne(self.env, self.port, log)
        wait_until_serving(self._process, self.url, self.log)

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """SIGKILL by default: a crash, so clients see their sockets drop with no close frame."""
        if self._process is None:
            return
        terminate(self._process, sig)
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def live_server(keypair: tuple[bytes, bytes], directory: Path, **env: str) -> Iterator[LiveServer]:
    """A started LiveServer on its own migrated SQLite file in `directory`, with `env` added."""
    environment = server_env(keypair[1].decode(), f"sqlite:///{directory / 'chat.sqlite3'}", **env)
    migrate(environment)
    server = LiveServer(environment, keypair[0], directory)
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def chat_server(keypair, tmp_path_factory) -> Iterator[LiveServer]:
    with live_server(keypair, tmp_path_factory.mktemp("live-server")) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (never `playwright install`)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser) -> Iterator[Callable[..., Page]]:
    contexts = []
    errors: list[str] = []

    def make(width: int = 1280, height: int = 800) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, "uncaught script errors:\n" + "\n".join(errors)


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


DOCS = BASE_DIR / "docs" / "screenshots"


def document(page: Page, name: str) -> Path:
    """A screenshot the README shows: saved as a test artifact and copied to docs/screenshots/."""
    DOCS.mkdir(parents=True, exist_ok=True)
    path = DOCS / f"{name}.png"
    shutil.copy(screenshot(page, name), path)
    return path
