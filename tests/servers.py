"""Real Daphne processes for tests that must cross a real server (and, later, several workers)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import jwt

from chatservice.config import BASE_DIR

# Start-up of a cold Daphne (Django import + app registry) takes ~1-3 s on the 2-core machines.
STARTUP_TIMEOUT_S = 30
DAPHNE = str(Path(sys.executable).with_name("daphne"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mint(private_pem: bytes, sub: str, role: str = "USER", ttl: int = 900, **claims: object) -> str:
    """An RS256 bearer token for `sub`, valid for `ttl` seconds, that the servers started here accept."""
    payload = {"sub": sub, "role": role, "exp": int(time.time()) + ttl, **claims}
    return jwt.encode(payload, private_pem, algorithm="RS256")


def server_env(public_pem: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_"))}
    defaults = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "test-secret",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "JWT_PUBLIC_KEY": public_pem,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "info",
    }
    env.update({**defaults, **extra})  # `extra` may override a default (tests/test_browser_demo.py: DEBUG on)
    return env


# For tests that send far faster than a person: the rate limiter has its own tests.
UNLIMITED_RATES = dict.fromkeys(
    ("CHAT_WS_MESSAGE_RATE", "CHAT_WS_MESSAGE_BURST", "CHAT_WS_USER_RATE", "CHAT_WS_USER_BURST"), "1000"
)


def create_conversation(server: Server, private_pem: bytes, donor: str, subject: str = "test") -> str:
    """A new conversation of `donor`, over REST; its id."""
    response = httpx.post(
        f"{server.url}/api/conversations",
        json={"subject": subject},
        headers={"Authorization": f"Bearer {mint(private_pem, donor)}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["conversationId"]


def migrate(env: Mapping[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=BASE_DIR,
        env=dict(env),
        check=True,
        timeout=120,
    )


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def daphne(env: Mapping[str, str], *, expect_healthy: bool = True, flags: tuple[str, ...] = ()) -> Iterator[Server]:
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="daphne-", suffix=".log", delete=False)  # noqa: SIM115
    process = start_daphne(env, port, log, flags)
    server = Server(process, port, Path(log.name))
    try:
        wait_until_serving(process, server.url, server.log, expect_healthy=expect_healthy)
        yield server
    finally:
        terminate(process)
        log.close()
        if not os.environ.get("KEEP_DAPHNE_LOGS"):
            os.unlink(log.name)


def start_daphne(env: Mapping[str, str], port: int, log: IO[bytes], flags: tuple[str, ...] = ()) -> subprocess.Popen:
    """Daphne serving the app on 127.0.0.1:`port`, its output into `log`; not yet ready (wait_until_serving)."""
    return subprocess.Popen(
        [DAPHNE, "-b", "127.0.0.1", "-p", str(port), *flags, "chatservice.asgi:application"],
        cwd=BASE_DIR,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_until_serving(
    process: subprocess.Popen, url: str, log: Callable[[], str], *, expect_healthy: bool = True
) -> None:
    """Until the Daphne `process` answers /health (with 200 when `expect_healthy`); its log on failure."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}:\n{log()}")
        try:
            status = httpx.get(f"{url}/health", timeout=5).status_code
            if status == 200 or not expect_healthy:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"daphne did not become ready:\n{log()}")
        time.sleep(0.05)  # bounded start-up poll: there is no event to await from another process


def terminate(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """`sig` (SIGTERM unless told), then SIGKILL if it has not exited within 10 s."""
    process.send_signal(sig)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


REDIS_SERVER = "/usr/bin/redis-server"


@dataclass
class Redis:
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart, on the same port) an empty, non-persistent redis-server."""
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)  # bounded start-up poll

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def redis_server() -> Iterator[Redis]:
    redis = Redis(free_port())
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@contextmanager
def one_worker(public_pem: str, database_path: Path, **extra: str) -> Iterator[Server]:
    """One Daphne worker on its own migrated SQLite database (no Redis)."""
    env = server_env(public_pem, f"sqlite:///{database_path}", **extra)
    migrate(env)
    with daphne(env) as server:
        yield server


@dataclass
class Cluster:
    redis: Redis
    worker_a: Server
    worker_b: Server
    env: dict[str, str]


@contextmanager
def two_workers(public_pem: str, database_path: Path, **extra: str) -> Iterator[Cluster]:
    """A redis-server and two Daphne workers sharing it and one migrated SQLite database."""
    with redis_server() as redis:
        env = server_env(public_pem, f"sqlite:///{database_path}", REDIS_URL=redis.url, **extra)
        migrate(env)
        with daphne(env) as worker_a, daphne(env) as worker_b:
            yield Cluster(redis, worker_a, worker_b, env)


def database_url(db: Mapping[str, object]) -> str:
    """DATABASE_URL of the test database Django uses (for a subprocess on the same data)."""
    if not str(db["ENGINE"]).endswith("sqlite3"):
        return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def celery_worker(redis_url: str, database: str, log: Path, **extra: str) -> subprocess.Popen:
    """A real Celery worker (one process, solo pool) on the given Redis and database."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))},
        "DJANGO_DEBUG": "true",
        "REDIS_URL": redis_url,
        "CHAT_JOBS_RUNNER": "celery",
        "DATABASE_URL": database,
        **extra,
    }
    command = [sys.executable, "-m", "celery", "-A", "chatservice", "worker", "--pool", "solo", "-l", "info"]
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=BASE_DIR)
