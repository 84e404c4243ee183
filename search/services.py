"""Writes to the search index: what the services that write messages call, in their own transaction.

Every change of a message's searchable text reaches the index in the transaction that makes it, so a search
never returns a message that is gone or erased, nor misses one that committed:

- `messages_indexed`: new messages were stored (messaging.services._append, every transport's one path).
- `messages_reindexed`: messages' content or kind changed: an edit; a deletion that keeps a tombstone with
  empty content; erasure (conversations.services.user_erase). Whatever is no longer searchable
  (search.rules) leaves the index; the rest is replaced.
- `messages_unindexed`: messages were deleted outright.
- `conversations_unindexed`: whole conversations were deleted (retention); works whether or not their
  messages are still in the table.

Renaming a person (conversations.renaming) changes sender ids and the text of SYSTEM notices only, neither
of which is indexed, so it calls nothing (which matters: a migration runs it on historical models).

On PostgreSQL and MongoDB the database keeps its own index of messaging_message, and these calls do nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from messaging.models import Message
from search import rules
from search.backends import backend

REBUILD_BATCH_SIZE = 2_000


def messages_indexed(*, messages: Sequence[Message]) -> None:
    """Index new messages (those not searchable, such as SYSTEM notices, are skipped)."""
    search = backend()
    if search.maintained_by_database:
        return
    search.index([m for m in messages if rules.is_searchable(m)])


def messages_reindexed(*, messages: Sequence[Message]) -> None:
    """Index these messages as they are now: replaced if searchable, removed if not (empty, erased)."""
    search = backend()
    if search.maintained_by_database:
        return
    search.index([m for m in messages if rules.is_searchable(m)])
    search.unindex([m.pk for m in messages if not rules.is_searchable(m)])


def messages_unindexed(*, message_ids: Sequence[str]) -> None:
    search = backend()
    if not search.maintained_by_database and message_ids:
        search.unindex(list(message_ids))


def conversations_unindexed(*, conversation_ids: Sequence[str]) -> None:
    search = backend()
    if not search.maintained_by_database and conversation_ids:
        search.unindex_conversations(list(conversation_ids))


def index_rebuild(*, batch_size: int = REBUILD_BATCH_SIZE) -> int:
    """Build the index again from the messages (after a restore, or a change of CHAT_SEARCH_LANGUAGE).
    Returns how many messages it covers."""
    return backend().rebuild(batch_size=batch_size)
