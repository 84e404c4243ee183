"""manage.py search_reindex [--batch-size N]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from conversations.management.base import add_batch_size
from search.services import REBUILD_BATCH_SIZE, index_rebuild


class Command(BaseCommand):
    help = (
        "Build the message search index again: after restoring a backup (SQLite keeps its index in tables of its "
        "own), or after changing CHAT_SEARCH_LANGUAGE (PostgreSQL and MongoDB index with it). On SQLite the index "
        "is emptied, then refilled one batch per transaction while the service runs (searches meanwhile find what "
        "is indexed so far); on PostgreSQL writes of messages wait while the index is built."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_batch_size(parser, REBUILD_BATCH_SIZE)

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        count = index_rebuild(batch_size=batch_size)
        self.stdout.write(self.style.SUCCESS(f"Search index rebuilt: {count} message(s)."))
