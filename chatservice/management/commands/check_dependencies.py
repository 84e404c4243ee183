"""manage.py check_dependencies [--timeout S]: the /health probes for orchestration (exit 0 or 1)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatservice.health import HEALTH_CHECK_TIMEOUT_S, failing, late, run_checks

# Longest --timeout accepted: orchestrators kill probes long before this, so more is a typo.
MAX_TIMEOUT_S = 300.0


def timeout_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT_S:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds, got {text}")
    return value


# After the checks, how long the probes' leftovers (the channel probe's reader) may take to wind down.
# asyncio.run waits for them without a limit, and a reader cancelled inside channels-redis while Redis
# restarts once never finished: the command hung (CI, PostgreSQL lane).
CLEANUP_S = 2.0


def run_bounded(timeout: float) -> dict[str, str]:
    """run_checks on a loop of its own, whose leftover tasks get CLEANUP_S to end after cancellation."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run_checks(timeout))
    finally:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.wait(leftovers, timeout=CLEANUP_S))
        loop.close()


class Command(BaseCommand):
    help = (
        "Check every dependency with the same round trips as GET /health: the database (an ORM read) and "
        "the channel layer (a message sent to and received from a channel; Redis when REDIS_URL is set). "
        "Prints one line per dependency; exits 0 when all answer within --timeout, 1 naming those that do "
        "not. Meant for container health checks and start-up ordering."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout",
            type=timeout_seconds,
            default=HEALTH_CHECK_TIMEOUT_S,
            help=f"seconds each dependency may take (default {HEALTH_CHECK_TIMEOUT_S:g}, as for /health)",
        )
        parser.add_argument(
            "--fail-on-late-jobs",
            action="store_true",
            help="also exit 1 when the job queue is late (for monitoring; start-up checks leave it off)",
        )

    def handle(self, *args: Any, timeout: float, verbosity: int, fail_on_late_jobs: bool, **options: Any) -> None:
        results = run_bounded(timeout)
        if verbosity >= 1:
            for name, state in results.items():
                self.stdout.write(f"{name}: {state}")
        down = failing(results) + (late(results) if fail_on_late_jobs else [])
        if down:
            raise CommandError("unavailable: " + ", ".join(f"{name} ({results[name]})" for name in down))
