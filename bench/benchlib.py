"""What every benchmark shares: its environment and child processes, tokens, a description of the machine
it ran on, and percentiles."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import shlex
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import django
import jwt

HOST = "127.0.0.1"  # loopback only: a benchmark must never talk to anything but its own children
# The repository's root: benchmarks run its manage.py.
REPO_ROOT = Path(__file__).resolve().parent.parent
TOKEN_LIFETIME_S = 3_600  # longer than any run
SHUTDOWN_TIMEOUT_S = 10.0  # grace period for a child after SIGTERM before SIGKILL


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def prepare_environment(database_url: str, extra: Mapping[str, str] | None = None) -> bytes:
    """Generate the key pair, set the service's environment (plus `extra`) for this process and its
    children, and return the private key PEM (used to mint tokens)."""
    from chatservice.devkeys import generate_rsa_keypair  # the caller has put the repo root on sys.path

    private_pem, public_pem = generate_rsa_keypair()
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "JWT_PUBLIC_KEY": public_pem.decode(),
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "bench",
            "ALLOWED_HOSTS": f"{HOST},localhost",
            "LOG_LEVEL": "warning",
            "DJANGO_SETTINGS_MODULE": "chatservice.settings",
            **(extra or {}),
        }
    )
    return private_pem


def mint(private_pem: bytes, user_id: str, role: str) -> str:
    claims = {"sub": user_id, "role": role, "exp": int(time.time()) + TOKEN_LIFETIME_S}
    return jwt.encode(claims, private_pem, algorithm="RS256")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within SHUTDOWN_TIMEOUT_S; nothing if it already exited."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least pct% of the samples at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def machine_lines(*, versions: str = "", extra: Sequence[str] = ()) -> list[str]:
    """Markdown bullet lines: date, cores, CPU, memory, software versions (plus `versions`), command."""
    cpu = ram = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"- nproc: {cpus}; CPU: {cpu}; RAM: {ram}",
        f"- Python {platform.python_version()}, Django {django.get_version()}, SQLite {sqlite3.sqlite_version}"
        + (f"; {versions}" if versions else ""),
        f"- Command: `{shlex.join([os.path.relpath(sys.executable), *sys.argv])}` (cwd: repo root)",
        *extra,
    ]


def migrate() -> None:
    """Bring the database named by the environment up to date (a kept database gets new migrations)."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        check=True,
    )


def reset_postgres(url: str) -> None:
    """Drop and create the benchmark's database (never a database this script did not name)."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
