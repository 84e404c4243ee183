"""What the conversation commands share: argument types and the idle-conversation command."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.context import operator_command
from chatservice.errors import ServiceError
from conversations.models import Conversation
from conversations.services import Transitions

# A century: any longer and the cutoff predates every conversation (and datetime arithmetic overflows).
MAX_DAYS = 36500
# Rows per query (and per progress line) the --batch-size option accepts; beyond this one query's
# result set stops being small.
MAX_BATCH_SIZE = 10000


def bounded_int(name: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in low..high, with a message naming the unit."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number of {name}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high} {name}, got {value}")
        return value

    return parse


def add_batch_size(parser: CommandParser, default: int) -> None:
    parser.add_argument(
        "--batch-size",
        type=bounded_int("rows", 1, MAX_BATCH_SIZE),
        default=default,
        help=f"rows per query and per progress line (default {default})",
    )


class IdleTransitionCommand(BaseCommand):
    """Move conversations that stayed in one status for --days days to the next one, through a service
    that records a SYSTEM message and notifies the conversation's sockets for each."""

    from_status: str
    verb: str  # "close"
    past: str  # "closed"
    default_batch_size: int
    service: Callable[..., Transitions]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=bounded_int("days", 1, MAX_DAYS),
            required=True,
            help=f"{self.verb} {self.from_status} conversations with no message or change for this many days",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=f"only report what would be {self.past} (-v 2 lists each conversation); change nothing",
        )
        add_batch_size(parser, self.default_batch_size)

    def handle(self, *args: Any, days: int, dry_run: bool, batch_size: int, verbosity: int, **options: Any) -> None:
        since = (timezone.now() - timedelta(days=days)).isoformat(timespec="seconds")

        def each(conversation: Conversation, changed: bool) -> None:
            if verbosity < 2:
                return
            activity = max(filter(None, [conversation.updated_at, conversation.last_message_at]))
            what = f"would {self.verb}" if dry_run else (self.past if changed else "skipped (new activity)")
            self.stdout.write(f"{what} {conversation.pk} (last activity {activity.isoformat(timespec='seconds')})")

        def progress(done: int, total: int) -> None:
            if verbosity >= 1 and not dry_run:
                self.stdout.write(f"{self.past} {done}/{total}")

        try:
            with operator_command(self.__module__.rsplit(".", 1)[-1]):  # audit records name the command
                result = self.service(
                    days=days, dry_run=dry_run, batch_size=batch_size, on_progress=progress, on_conversation=each
                )
        except ServiceError as exc:
            raise CommandError(exc.detail) from exc
        which = f"{self.from_status} conversation(s) with no activity for {days} days (since {since})"
        if dry_run:
            self.stdout.write(f"Dry run: would {self.verb} {result.candidates} {which}. Nothing was changed.")
            return
        summary = f"{self.past.capitalize()} {result.changed} of {result.candidates} {which}."
        skipped = result.candidates - result.changed
        if skipped:
            summary += f" {skipped} had new activity meanwhile and were left as they are."
        self.stdout.write(self.style.SUCCESS(summary))
