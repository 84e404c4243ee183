"""Reads of the search index: who may find what, in which order, page by page.

Scope, decided here and nowhere else: staff (ADMIN) search every conversation, internal notes included;
a donor searches the conversations they take part in (a participation with their id *and* role, as
conversations.selectors decides for every other read), never notes. `conversationId` narrows either to one
conversation the caller may see (404 otherwise, as for every other read of it). Only searchable messages
(search.rules) are ever returned.

The order and the cursors are the backends' (search.backends): words together as a phrase first, then the
other matches, newest first within each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chatservice.authentication import Principal
from chatservice.errors import ServiceError
from conversations.models import Participant
from conversations.selectors import conversation_get
from messaging.models import Message
from messaging.visibility import sees_notes, visible_messages
from search import rules, text
from search.backends import MAX_KEY, Position, Scope, backend

DEFAULT_LIMIT = 20
MAX_LIMIT = 50
MAX_QUERY_LENGTH = 200
# A cursor as the service writes it: tier.key.messageId. Opaque to clients; every string of this shape is a
# valid position in the order (so the schema's pattern is exactly what is accepted).
CURSOR_PATTERN = r"^[0-9]\.[0-9]{1,19}\.[A-Za-z0-9_\-]{1,64}$"
_CURSOR = re.compile(CURSOR_PATTERN)
RESULT_FIELDS = ("id", "conversation_id", "content", "message_type", "sender_id", "sender_name", "created_at")


class InvalidSearchCursor(ServiceError):
    code = "invalid_cursor"
    default_detail = "`before` is not a cursor this search returned."


@dataclass(frozen=True)
class SearchResult:
    message: Message
    snippet: text.Snippet


@dataclass(frozen=True)
class SearchPage:
    results: list[SearchResult]
    next_cursor: str | None  # None: this is the last page


def cursor_of(position: Position) -> str:
    return f"{position.tier}.{position.key}.{position.message_id}"


def parse_cursor(raw: str) -> Position:
    if not _CURSOR.match(raw):
        raise InvalidSearchCursor()
    tier, key, message_id = raw.split(".", 2)
    return Position(int(tier), min(int(key), MAX_KEY), message_id)


def search_scope(*, viewer: Principal, conversation_id: str | None = None) -> Scope:
    if conversation_id is not None:
        conversation = conversation_get(viewer=viewer, conversation_id=conversation_id)  # 404 if not theirs
        return Scope((conversation.pk,), include_notes=sees_notes(viewer.role))
    if viewer.is_admin:
        return Scope(None, include_notes=True)
    mine = Participant.objects.filter(user_id=viewer.user_id, role=viewer.role).values_list(
        "conversation_id", flat=True
    )
    return Scope(tuple(sorted(set(mine))), include_notes=False)


def search_messages(
    *,
    viewer: Principal,
    query: str,
    conversation_id: str | None = None,
    before: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> SearchPage:
    """One page of the messages `viewer` may see that contain every word of `query`."""
    limit = max(1, min(limit, MAX_LIMIT))
    after = parse_cursor(before) if before is not None else None
    scope = search_scope(viewer=viewer, conversation_id=conversation_id)
    terms = text.query_terms(query)
    if not terms:
        return SearchPage([], None)
    hits = backend().search(terms, scope, after=after, limit=limit + 1)
    shown = hits[:limit]
    # The rows themselves, checked again against every rule: the index decides the order, never who sees what.
    rows = Message.objects.filter(pk__in=[hit.message_id for hit in shown]).filter(rules.searchable())
    rows = visible_messages(rows, viewer)
    if scope.conversation_ids is not None:
        rows = rows.filter(conversation_id__in=scope.conversation_ids)
    found = {message.pk: message for message in rows.only(*RESULT_FIELDS)}
    results = [
        SearchResult(found[hit.message_id], text.snippet(found[hit.message_id].content, terms))
        for hit in shown
        if hit.message_id in found
    ]
    next_cursor = cursor_of(shown[-1].position) if len(hits) > limit else None
    return SearchPage(results, next_cursor)
