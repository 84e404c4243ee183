"""manage.py audit_verify [--anchor SEQ:HASH ...]"""

from __future__ import annotations

import argparse
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.selectors import chain_verify
from conversations.management.base import add_batch_size

ANCHOR = re.compile(r"^(\d{1,19}):([0-9a-f]{64})$")


def anchor(text: str) -> tuple[int, str]:
    match = ANCHOR.match(text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"expected SEQ:HASH (a record number and 64 hex digits), got {text!r}")
    return int(match.group(1)), match.group(2)


class Command(BaseCommand):
    help = (
        "Check the audit log's hash chain from the first record to the head. Exits 0 when it holds and prints "
        "the head (number and hash: note it outside the database and pass it as --anchor later, which also "
        "catches a chain rewritten and hashed again). Exits 1 naming the first broken record: changed, "
        "removed, inserted or moved records, records missing from the end, or records past the head."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--anchor",
            type=anchor,
            action="append",
            default=[],
            metavar="SEQ:HASH",
            help="a record's number and hash noted earlier (a previous run's head); repeatable",
        )
        add_batch_size(parser, 1000)

    def handle(self, *args: Any, anchor: list[tuple[int, str]], batch_size: int, **options: Any) -> None:
        report = chain_verify(anchors=dict(anchor), batch_size=batch_size)
        if not report.intact:
            raise CommandError(f"audit chain broken at {report.broken} ({report.checked} record(s) intact before it)")
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain intact: {report.checked} record(s) checked; head #{report.head_seq} {report.head_hash}."
            )
        )
