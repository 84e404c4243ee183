"""manage.py archive_closed_conversations --days N [--dry-run]"""

from __future__ import annotations

from conversations.management.base import IdleTransitionCommand
from conversations.models import ConversationStatus
from conversations.services import TRANSITION_BATCH_SIZE, conversations_archive_closed


class Command(IdleTransitionCommand):
    help = (
        "Archive CLOSED conversations untouched for --days days (counted from the close or any later "
        "change). Each is archived like a status update by the system actor (user id 'system', role ADMIN): "
        "a SYSTEM message is recorded and connected clients receive it. Safe to re-run (e.g. from cron)."
    )
    from_status = ConversationStatus.CLOSED
    verb, past = "archive", "archived"
    default_batch_size = TRANSITION_BATCH_SIZE
    service = staticmethod(conversations_archive_closed)
