"""The one way services open a transaction, so the MongoDB backend can swap in its own later."""

from __future__ import annotations

from django.db import transaction


def atomic() -> transaction.Atomic:
    return transaction.atomic()
