"""manage.py erase_user --user ID --role USER|ADMIN [--dry-run] [--missing-ok]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import operator_command
from chatservice.authentication import USER_ID_MAX_LENGTH
from chatservice.errors import ServiceError
from conversations.management.base import add_batch_size
from conversations.models import Role
from conversations.services import ERASE_BATCH_SIZE, ERASED_CONTENT, ERASED_USER_ID, Erasure, user_erase


class Command(BaseCommand):
    help = (
        "Erase a user's personal data (GDPR). Messages they wrote are kept as placeholders so message "
        f"numbering stays gap-free: content becomes {ERASED_CONTENT!r}, the sender {ERASED_USER_ID!r}, "
        "metadata and clientMessageId are cleared; SYSTEM notices keep their text with the id replaced. Their "
        "participations (and read state) are removed; conversations they created keep their history but "
        f"get created_by {ERASED_USER_ID!r} and no subject or metadata. Nothing is broadcast. Fails when no "
        "data references the user (a typo, or already erased) unless --missing-ok. Re-running completes an "
        "interrupted erasure."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="the user id to erase (the token's sub)")
        parser.add_argument(
            "--role",
            required=True,
            choices=[Role.USER, Role.ADMIN],
            help="USER for a donor, ADMIN for staff: a person is an id and a role",
        )
        parser.add_argument("--dry-run", action="store_true", help="only count what would be erased; change nothing")
        parser.add_argument(
            "--missing-ok",
            action="store_true",
            help="succeed when nothing references the user (for automated retries of completed erasures)",
        )
        add_batch_size(parser, ERASE_BATCH_SIZE)

    def handle(
        self,
        *args: Any,
        user: str,
        role: str,
        dry_run: bool,
        missing_ok: bool,
        batch_size: int,
        verbosity: int,
        **options: Any,
    ) -> None:
        if not user.strip() or len(user) > USER_ID_MAX_LENGTH:
            raise CommandError(f"--user must be 1..{USER_ID_MAX_LENGTH} characters, not blank")

        def progress(step: str, done: int, total: int) -> None:
            if verbosity >= 1 and not dry_run:
                self.stdout.write(f"{step} {done}/{total}")

        try:
            with operator_command("erase_user"):  # the audit record of the erasure names this command
                erasure = user_erase(
                    user_id=user, role=role, dry_run=dry_run, batch_size=batch_size, on_progress=progress
                )
        except ServiceError as exc:
            raise CommandError(exc.detail) from exc
        if not erasure.found:
            message = f"no messages, participations or conversations reference user {user!r}"
            if not missing_ok:
                raise CommandError(f"{message}: unknown user id, or already erased (--missing-ok accepts this)")
            self.stdout.write(f"Nothing to erase: {message}.")
            return
        if dry_run:
            self.stdout.write(f"Dry run: would erase user {user!r}: {counts(erasure)}. Nothing was changed.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Erased user {user!r}: {counts(erasure)}."))


def counts(erasure: Erasure) -> str:
    return (
        f"{erasure.messages_anonymized} message(s) anonymized, "
        f"{erasure.notices_rewritten} SYSTEM notice(s) naming them rewritten, "
        f"{erasure.participations_removed} participation(s) removed, "
        f"{erasure.conversations_pseudonymized} conversation(s) they created pseudonymized, "
        f"{erasure.attachments_deleted} attachment(s) deleted; "
        f"{erasure.conversations_touched} conversation(s) touched"
    )
