"""manage.py webhook_add --url URL --events e1,e2 [--secret whsec_…] [--include-notes] [--description T]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import operator_command
from chatservice.errors import ServiceError
from webhooks.models import EventType
from webhooks.services import endpoint_create


class Command(BaseCommand):
    help = (
        "Add a webhook endpoint. Prints its id and signing secret (Standard Webhooks, whsec_…). Events: "
        + ", ".join(EventType.values)
        + ". URLs resolving to private, loopback or link-local addresses are refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True)
        parser.add_argument("--events", required=True, help="comma-separated event types")
        parser.add_argument("--secret", help="whsec_… (default: a new random one)")
        parser.add_argument("--include-notes", action="store_true", help="message.created for internal notes too")
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, url: str, events: str, secret: str | None, **options: Any) -> None:
        try:
            with operator_command("webhook_add"):  # the audit record of the new endpoint names this command
                endpoint = endpoint_create(
                    url=url,
                    events=[event.strip() for event in events.split(",") if event.strip()],
                    secret=secret,
                    include_notes=options["include_notes"],
                    description=options["description"],
                )
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"id: {endpoint.pk}")
        self.stdout.write(f"secret: {endpoint.secret}")
