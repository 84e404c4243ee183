"""Who "the operator" was: records appended with no actor inside these blocks name the management command
or the schedule that made them. No models here, so any module may import it at any time."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_operator: ContextVar[dict[str, str] | None] = ContextVar("audit_operator", default=None)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (a container's arbitrary user): the number says as much
        return str(os.getuid())


@contextmanager
def operator_command(name: str) -> Iterator[None]:
    """Inside, records with no actor are the management command `name`'s, run by the OS account that
    ran it (their details' `operator`). Commands that change data wrap their work in this."""
    token = _operator.set({"command": name, "osUser": _os_user()})
    try:
        yield
    finally:
        _operator.reset(token)


@contextmanager
def operator_schedule(name: str) -> Iterator[None]:
    """Inside, records with no actor are the schedule `name`'s (jobs.runner.run_schedule)."""
    token = _operator.set({"schedule": name})
    try:
        yield
    finally:
        _operator.reset(token)


def current_operator() -> dict[str, str] | None:
    return _operator.get()
