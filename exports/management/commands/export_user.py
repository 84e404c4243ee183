"""manage.py export_user --user ID --role USER|ADMIN [--output FILE]"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from audit.context import operator_command
from chatservice.authentication import Principal
from conversations.models import Role
from exports import selectors, services


class Command(BaseCommand):
    help = (
        "Write everything a person may see of their own conversations as JSON (the same document as GET "
        "/api/me/export), to --output or stdout. Recorded in the audit log. Attachment links are signed and "
        "last CHAT_ATTACHMENT_LINK_TTL_S."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="the person's user id (the token's sub)")
        parser.add_argument("--role", choices=[Role.USER, Role.ADMIN], default=Role.USER)
        parser.add_argument("--output", help="file to write (default: stdout)")

    def handle(self, *args: Any, user: str, role: str, output: str | None, **options: Any) -> None:
        person = Principal(user, role)
        with operator_command("export_user"):
            services.user_export_recorded(person=person, actor=None)
        chunks = selectors.user_export(person=person, base_url=settings.CHAT["PUBLIC_URL"])
        if output is None:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
            self.stdout.write("")
            return
        with open(output, "w", encoding="utf-8") as out:
            for chunk in chunks:
                out.write(chunk)
        self.stderr.write(f"Wrote the export of {role} {user} to {output}.")
