"""What every benchmark report shares: a description of the machine it ran on, and percentiles."""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import shlex
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import django


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
