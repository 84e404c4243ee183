"""A simulated clock for seeding: the demo's history happens over the last four weeks, written by the real
services at the moments it would have happened.

Every timestamp the services write comes from django.utils.timezone.now() (or from a model field's
default, which is that same function). Replacing both for the duration of the seeding makes every clock
the services keep consistent by construction: a message's createdAt and seq order, the conversation's
last_message_at, updated_at, first_response_at, waiting_since and closed_at, read watermarks, CSAT
createdAt, the search rows, jobs and audit records. Nothing is shifted afterwards, so no invariant
between them can be broken by a forgotten field. Single-threaded use only (a management command).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

from django.apps import apps
from django.utils import timezone


class SimulatedClock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@contextmanager
def simulated_clock(start: datetime) -> Iterator[SimulatedClock]:
    clock = SimulatedClock(start)
    real_now = timezone.now
    # Field defaults hold the function itself (default=timezone.now), and Field caches it (_get_default).
    fields = [
        field
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if getattr(field, "default", None) is real_now
    ]

    def swap(default: object) -> None:
        for field in fields:
            field.default = default
            field.__dict__.pop("_get_default", None)

    swap(clock.now)
    try:
        with mock.patch.object(timezone, "now", clock.now):
            yield clock
    finally:
        swap(real_now)
