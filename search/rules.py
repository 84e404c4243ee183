"""What is searchable, in one place: every backend indexes, and every search returns, only this.

Searchable: TEXT, FILE and NOTE messages (notes only ever reach staff: search.selectors) whose content has
a visible character and has not been erased. Not searchable: SYSTEM notices (the service's own words, which
name people and are rewritten by erasure and renaming), tombstones (a deleted message keeps its place with
empty content), and erased messages (conversations.services.user_erase leaves the placeholder "[erased]"
by the pseudonym "erased-user").
"""

from __future__ import annotations

from functools import cache

from django.db.models import Q

from messaging.models import Message, MessageType

UNSEARCHABLE_TYPES = frozenset({MessageType.SYSTEM})


@cache
def erased_markers() -> tuple[str, str]:
    """(sender id, content) of an erased message."""
    # conversations.services imports messaging.services, which calls search.services: read lazily.
    from conversations.services import ERASED_CONTENT, ERASED_USER_ID

    return ERASED_USER_ID, ERASED_CONTENT


def is_searchable(message: Message) -> bool:
    erased_user, erased_content = erased_markers()
    return (
        message.message_type not in UNSEARCHABLE_TYPES
        and message.deleted_at is None
        and bool(message.content.strip())
        and not (message.sender_id == erased_user and message.content == erased_content)
    )


def searchable() -> Q:
    """The same rule as an ORM filter (blank content other than "" is rare and never matches a word)."""
    erased_user, erased_content = erased_markers()
    return (
        ~Q(message_type__in=sorted(UNSEARCHABLE_TYPES))
        & Q(deleted_at__isnull=True)
        & ~Q(content="")
        & ~Q(sender_id=erased_user, content=erased_content)
    )
