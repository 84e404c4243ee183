"""PostgreSQL: full-text search on an expression GIN index of messaging_message, kept by PostgreSQL.

The index is `to_tsvector('<language>'::regconfig, content)`, created by search's migration (and again by
`manage.py search_reindex`) with the text search configuration CHAT_SEARCH_LANGUAGE names ('simple' by
default: no stemming, no stop words, every language alike; 'english' stems English words). Queries spell
the same expression, so the planner can use the index; after changing the setting, search_reindex builds
the index for the new configuration (until then queries still answer correctly, without the index).

Nothing is written by the application: every change of a row is in the index when the row's transaction
commits. What is not searchable (search.rules) is filtered out by the query instead.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import connection

from messaging.models import Message, MessageType
from search.backends import PHRASE_TIER, WORDS_TIER, Hit, Position, Scope

INDEX_NAME = "search_message_content_tsv"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_CREATED_AT = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


def language() -> str:
    # Checked by chatservice.config (lower-case letters and underscores): safe to spell as a literal, which
    # the index's expression must match.
    return settings.CHAT["SEARCH_LANGUAGE"]


def tsvector_sql(alias: str = "") -> str:
    return f"to_tsvector('{language()}'::regconfig, {alias}content)"


def create_index_sql() -> str:
    return f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON messaging_message USING gin ({tsvector_sql()})"


DROP_INDEX_SQL = f"DROP INDEX IF EXISTS {INDEX_NAME}"


def micros(value: dt.datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> dt.datetime:
    try:
        return min(EPOCH + dt.timedelta(microseconds=value), MAX_CREATED_AT)
    except OverflowError:
        return MAX_CREATED_AT


class PostgresBackend:
    maintained_by_database = True

    def search(self, terms: list[str], scope: Scope, *, after: Position | None, limit: int) -> list[Hit]:
        if scope.conversation_ids is not None and not scope.conversation_ids:
            return []
        from search import rules

        erased_user, erased_content = rules.erased_markers()
        config = f"'{language()}'::regconfig"
        vector = tsvector_sql("m.")
        single = len(terms) == 1
        # A one-word query is all phrase tier, as on every backend.
        tier = (
            str(PHRASE_TIER)
            if single
            else (f"CASE WHEN {vector} @@ phraseto_tsquery({config}, %s) THEN {PHRASE_TIER} ELSE {WORDS_TIER} END")
        )
        where = [
            f"{vector} @@ plainto_tsquery({config}, %s)",
            "m.message_type <> ALL(%s)",
            "m.content <> ''",
            "NOT (m.sender_id = %s AND m.content = %s)",
        ]
        where_params: list[Any] = [
            " ".join(dict.fromkeys(terms)),
            sorted(rules.UNSEARCHABLE_TYPES | (set() if scope.include_notes else {MessageType.NOTE})),
            erased_user,
            erased_content,
        ]
        if scope.conversation_ids is not None:
            where.append("m.conversation_id = ANY(%s)")
            where_params.append(list(scope.conversation_ids))
        sql = (
            f"SELECT tier, created_at, id FROM (SELECT {tier} AS tier, m.created_at, m._id AS id "  # noqa: S608
            f"FROM messaging_message AS m WHERE {' AND '.join(where)}) AS hits"
        )
        params: list[Any] = ([] if single else [" ".join(terms)]) + where_params
        if after is not None:
            sql += " WHERE (tier, created_at, id) < (%s, %s, %s)"
            params += [after.tier, from_micros(after.key), after.message_id]
        sql += " ORDER BY tier DESC, created_at DESC, id DESC LIMIT %s"
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, limit])
            rows = cursor.fetchall()
        return [Hit(Position(t, micros(created), message_id), message_id) for t, created, message_id in rows]

    # The database keeps its index: nothing to write.
    def index(self, messages: list[Message]) -> None:
        return None

    def unindex(self, message_ids: list[str]) -> None:
        return None

    def unindex_conversations(self, conversation_ids: list[str]) -> None:
        return None

    def rebuild(self, *, batch_size: int) -> int:
        """Build the index again for the configured language (writes to messages wait meanwhile)."""
        from chatservice.db import atomic

        with atomic(), connection.cursor() as cursor:
            # A transaction that already wrote messages holds their deferred foreign-key checks, and
            # PostgreSQL builds no index on a table with pending trigger events: check them now instead.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(DROP_INDEX_SQL)
            cursor.execute(create_index_sql())
        return Message.objects.count()
