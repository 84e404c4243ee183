"""manage.py purge_archived_conversations [--days N] [--dry-run]"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import operator_command
from conversations.management.base import MAX_DAYS, add_batch_size, bounded_int
from conversations.models import Conversation
from retention.services import PURGE_BATCH_SIZE, conversations_purge


class Command(BaseCommand):
    help = (
        "Purge ARCHIVED conversations untouched for --days days (default CHAT_RETENTION_DAYS): their messages, "
        "files, search entries and participants are deleted and the conversation is kept as a tombstone with "
        "counts. Recorded in the audit log. Safe to re-run; --dry-run changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=bounded_int("days", 1, MAX_DAYS), help="default: CHAT_RETENTION_DAYS")
        parser.add_argument("--dry-run", action="store_true", help="report what would be purged; change nothing")
        add_batch_size(parser, PURGE_BATCH_SIZE)

    def handle(
        self, *args: Any, days: int | None, dry_run: bool, batch_size: int, verbosity: int, **options: Any
    ) -> None:
        days = days or settings.CHAT["RETENTION_DAYS"]
        if not days:
            raise CommandError("Give --days N, or set CHAT_RETENTION_DAYS: nothing is purged by default.")

        def each(conversation: Conversation, purged: bool) -> None:
            if verbosity >= 2:
                what = "would purge" if dry_run else ("purged" if purged else "skipped (changed meanwhile)")
                self.stdout.write(f"{what} {conversation.pk}")

        with operator_command("purge_archived_conversations"):
            result = conversations_purge(days=days, dry_run=dry_run, batch_size=batch_size, on_conversation=each)
        counts = f"{result.messages} message(s), {result.attachments} file(s), {result.participants} participant(s)"
        if dry_run:
            self.stdout.write(
                f"Dry run: would purge {result.candidates} ARCHIVED conversation(s) untouched for {days} days, "
                f"with {counts}. Nothing was changed."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(f"Purged {len(result.purged)} of {result.candidates} conversation(s): {counts}.")
        )
