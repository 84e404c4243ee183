"""One search interface, one native implementation per database (chosen by the connection's vendor).

Every backend answers the same question the same way: the messages of `scope` that contain every word
of the query, in one order that depends on nothing but the message and the query (never on the rest of
the corpus, as BM25 or tf-idf would: a score that moves when other messages arrive would make cursors skip
or repeat results). The order is:

1. the tier: 1 when the words appear together, in the query's order, as a phrase; else 0 (a one-word
   query is all tier 1);
2. recency, newest first: on SQLite the order the index received the messages (search.backends.sqlite),
   elsewhere createdAt;
3. the message id, descending (ties of createdAt).

A `Position` is a place in that order; a page is the hits strictly after a position, and the cursor of the
next page is the position of the last hit shown. Because a message's place never depends on other messages,
following cursors returns every message that matched when the first page was read exactly once, whatever
is written meanwhile (a message written since lands before the first page's start, or is simply a new hit
if it sorts after the cursor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from messaging.models import Message

PHRASE_TIER = 1
WORDS_TIER = 0
# The largest key a cursor may carry: SQLite's integers and microseconds since 1970 both fit.
MAX_KEY = 2**63 - 1


@dataclass(frozen=True, order=True)
class Position:
    """A place in the result order (see the module's docstring); larger sorts first."""

    tier: int
    key: int  # SQLite: the message's document number in the index; elsewhere createdAt in µs since 1970
    message_id: str


@dataclass(frozen=True)
class Scope:
    """Which messages a search may return, decided by the selector from the viewer's rights."""

    conversation_ids: tuple[str, ...] | None  # None: every conversation (staff)
    include_notes: bool  # internal notes: staff only (messaging.visibility)


@dataclass(frozen=True)
class Hit:
    position: Position
    message_id: str


class Backend(Protocol):
    """What each database's search does. Writes take part in the caller's transaction."""

    # True when the database keeps its index itself (an expression or text index on the message table):
    # the write hooks below are then no-ops, and the reads filter out what is not searchable.
    maintained_by_database: bool

    def search(self, terms: list[str], scope: Scope, *, after: Position | None, limit: int) -> list[Hit]:
        """At most `limit` hits strictly after `after` (from the top without it), in order."""
        ...

    def index(self, messages: list[Message]) -> None:
        """Add or replace these messages (all searchable: search.services decides)."""
        ...

    def unindex(self, message_ids: list[str]) -> None: ...

    def unindex_conversations(self, conversation_ids: list[str]) -> None: ...

    def rebuild(self, *, batch_size: int) -> int:
        """Build the index again from the messages; returns the number of messages indexed (or, where
        the database indexes every row itself, of messages in the table)."""
        ...


def backend() -> Backend:
    vendor = connection.vendor
    if vendor == "sqlite":
        from search.backends.sqlite import SqliteBackend

        return SqliteBackend()
    if vendor == "postgresql":
        from search.backends.postgres import PostgresBackend

        return PostgresBackend()
    if vendor == "mongodb":
        from search.backends.mongodb import MongoBackend

        return MongoBackend()
    raise ImproperlyConfigured(f"message search has no backend for {vendor!r} (SQLite, PostgreSQL, MongoDB)")
