"""manage.py close_inactive_conversations --days N [--dry-run]"""

from __future__ import annotations

from conversations.management.base import IdleTransitionCommand
from conversations.models import ConversationStatus
from conversations.services import TRANSITION_BATCH_SIZE, conversations_close_inactive


class Command(IdleTransitionCommand):
    help = (
        "Close ACTIVE conversations with no message or change for --days days. Each is closed like a "
        "status update by the system actor (user id 'system', role ADMIN): a SYSTEM message 'Conversation "
        "closed by system (no activity for N days)' is recorded and connected clients receive it. A "
        "conversation that gets a message while the command runs stays open. Safe to re-run (e.g. from cron)."
    )
    from_status = ConversationStatus.ACTIVE
    verb, past = "close", "closed"
    default_batch_size = TRANSITION_BATCH_SIZE
    service = staticmethod(conversations_close_inactive)
