"""What the job system can run: job kinds (one handler each) and periodic schedules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.models import Job

Handler = Callable[["Job"], None]


@dataclass(frozen=True)
class Kind:
    name: str
    handler: Handler
    max_attempts: int  # before the job is DEAD


@dataclass(frozen=True)
class Schedule:
    name: str
    interval_s: Callable[[], float]  # read from settings each time; 0 turns the schedule off
    run: Callable[[], object]


KINDS: dict[str, Kind] = {}
SCHEDULES: dict[str, Schedule] = {}


def job_kind(name: str, *, max_attempts: int) -> Callable[[Handler], Handler]:
    """Register `handler(job)` as the job kind `name` (it reads job.payload; job.pk is stable across
    retries). A handler that raises is retried with backoff."""

    def register(handler: Handler) -> Handler:
        KINDS[name] = Kind(name, handler, max_attempts)
        return handler

    return register


def schedule(name: str, *, interval_s: Callable[[], float]) -> Callable[[Callable[[], object]], Callable[[], object]]:
    def register(fn: Callable[[], object]) -> Callable[[], object]:
        SCHEDULES[name] = Schedule(name, interval_s, fn)
        return fn

    return register
