"""manage.py link_staff_subject USERNAME SUBJECT | --unlink USERNAME"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatservice.errors import ServiceError
from identity.selectors import staff_chat_id
from identity.services import staff_link, staff_unlink


class Command(BaseCommand):
    help = (
        "Link a console staff account to its Auth Service subject: the console then acts as that subject "
        "(the same identity as the person's ADMIN token), and what the account did as staff:<username> moves "
        "to the subject. --unlink makes the account act as staff:<username> again (nothing moves back)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the Django admin username")
        parser.add_argument("subject", nargs="?", help="the Auth Service subject (the `sub` of their tokens)")
        parser.add_argument("--unlink", action="store_true", help="remove the link instead")

    def handle(self, *args: Any, username: str, subject: str | None, unlink: bool, **options: Any) -> None:
        user_model = get_user_model()
        user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"no account named {username!r}")
        if unlink:
            if subject:
                raise CommandError("--unlink takes the username only")
            removed = staff_unlink(user=user)
            self.stdout.write(
                f"{username} now acts as {staff_chat_id(user)}" + ("" if removed else " (was not linked)")
            )
            return
        if not subject:
            raise CommandError("give the subject to link to, or --unlink")
        try:
            moved = staff_link(user=user, subject=subject)
        except ServiceError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(
            f"{username} now acts as {subject}: moved {moved.participations} participations "
            f"({moved.merged} merged), {moved.messages} messages, {moved.notices} notices, "
            f"{moved.conversations_created} conversations created"
        )
