"""Print where to go once the service runs (chatservice.guide): `make run` prints it before serving."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from demo.management.commands.seed_demo import DEFAULT_BASE_URL, base_url_argument


class Command(BaseCommand):
    help = "Print the service's pages and the commands that get a staff login and a donor token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", type=base_url_argument, default=DEFAULT_BASE_URL)

    def handle(self, *args: object, base_url: str, **options: object) -> None:
        from chatservice.guide import open_next_lines

        self.stdout.write("\n".join(open_next_lines(base_url)))
