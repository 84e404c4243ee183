"""SQLite: an FTS5 index kept by the application, beside the messages.

Two tables, created by search's migration on SQLite only and written only through search.services, in the
transaction of the write that changes a message:

- `search_message_doc` gives each indexed message a document number (INTEGER PRIMARY KEY AUTOINCREMENT:
  an alias of the rowid, so VACUUM keeps it, and never reused, so numbers only grow) and says which
  conversation it belongs to (to unindex a conversation whose messages are already gone);
- `search_message_fts`, a regular FTS5 table keyed by that number, holds the words (`body`) and the scope
  tokens (`scope`: the conversation, and whether it is a note), so a donor's search is one intersection in
  the index, and an FTS5 table that stores its own copy of the text can delete and replace by rowid alone.

Not triggers, and not an external-content table over messaging_message: Django's SQLite schema editor
rebuilds messaging_message (copy, drop, rename) for many migrations, which drops its triggers silently, and
the implicit rowid an external-content table would key on is not stable across VACUUM.

Recency here is the document number: the order messages reached the index. New messages get numbers as
they are stored (in sequence order within a conversation, commit order across them), an edit keeps the
number, and a rebuild numbers messages by createdAt. So "newest first" never needs a sort: FTS5 walks its
posting lists by descending rowid and stops after one page, which is what keeps a query over common words
under a millisecond where ranking every match by bm25() took hundreds (bench/search_bench.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connection

from messaging.models import Message, MessageType
from search.backends import MAX_KEY, PHRASE_TIER, WORDS_TIER, Hit, Position, Scope

DOC_TABLE = "search_message_doc"
FTS_TABLE = "search_message_fts"
# unicode61 with combining marks as word characters (search.text: a Bengali word keeps its vowel signs),
# case folded, Latin accents removed.
TOKENIZER = "unicode61 remove_diacritics 2 categories 'L* N* Co M*'"
CREATE_SQL = (
    f"CREATE TABLE IF NOT EXISTS {DOC_TABLE} ("
    "doc INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, conversation_id TEXT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS search_message_doc_conversation ON {DOC_TABLE} (conversation_id)",
    f'CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(body, scope, tokenize="{TOKENIZER}")',
)
DROP_SQL = (f"DROP TABLE IF EXISTS {FTS_TABLE}", f"DROP TABLE IF EXISTS {DOC_TABLE}")
NOTE_TOKEN = "xnote"  # noqa: S105 - an index word, not a secret
# A donor in more conversations than this is searched without the scope tokens (the conversation filter on
# the documents still applies): an OR of thousands of tokens would cost more than it saves.
MAX_SCOPE_TOKENS = 200
# Bound parameters per statement, well under SQLite's limit.
CHUNK = 500


def conversation_token(conversation_id: str) -> str:
    # Ids are [A-Za-z0-9_-]: without _ and - the token is one unicode61 word (search's migration spells the
    # same with SQL's replace()). Two ids that differ only in _ or - share a token: the index then
    # over-selects, and the conversation filter on the documents decides. Any other character would split
    # the token in two, in the index and in the quoted query alike, which still match as a phrase.
    return "c" + re.sub(r"[_-]", "", conversation_id)


def scope_text(message: Message) -> str:
    tokens = [conversation_token(message.conversation_id)]
    if message.message_type == MessageType.NOTE:
        tokens.append(NOTE_TOKEN)
    return " ".join(tokens)


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def match_expressions(terms: list[str], scope: Scope) -> dict[int, str]:
    """The FTS5 query of each tier. Every word is a quoted string, so nothing a person types is read as
    FTS5 syntax (AND, NEAR, a column filter)."""
    phrase = "body : " + _quoted(" ".join(terms))
    distinct = list(dict.fromkeys(terms))
    tiers = {PHRASE_TIER: phrase}
    if len(terms) > 1:
        every = "body : (" + " AND ".join(_quoted(t) for t in distinct) + ")"
        tiers[WORDS_TIER] = f"({every}) NOT ({phrase})"
    restriction = ""
    ids = scope.conversation_ids
    if ids is not None and len(ids) <= MAX_SCOPE_TOKENS:
        restriction = "scope : (" + " OR ".join(_quoted(conversation_token(c)) for c in ids) + ") AND "
    suffix = "" if scope.include_notes else f" NOT (scope : {_quoted(NOTE_TOKEN)})"
    return {tier: f"{restriction}({expression}){suffix}" for tier, expression in tiers.items()}


class SqliteBackend:
    maintained_by_database = False

    def search(self, terms: list[str], scope: Scope, *, after: Position | None, limit: int) -> list[Hit]:
        if scope.conversation_ids is not None and not scope.conversation_ids:
            return []
        hits: list[Hit] = []
        for tier, expression in sorted(match_expressions(terms, scope).items(), reverse=True):
            if after is not None and tier > after.tier:
                continue  # the cursor is past this whole tier
            below = min(after.key, MAX_KEY) if after is not None and tier == after.tier else MAX_KEY
            hits += self._tier(tier, expression, scope, below, limit - len(hits))
            if len(hits) >= limit:
                break
        return hits

    def _tier(self, tier: int, expression: str, scope: Scope, below: int, limit: int) -> list[Hit]:
        # FTS5 takes both the MATCH and the rowid bound, and returns rows by descending rowid without a
        # sort: the query stops after `limit` matches however many there are.
        sql = (
            f"SELECT f.rowid, d.message_id FROM {FTS_TABLE} AS f JOIN {DOC_TABLE} AS d ON d.doc = f.rowid "  # noqa: S608
            f"WHERE {FTS_TABLE} MATCH %s AND f.rowid < %s"
        )
        params: list[Any] = [expression, below]
        if scope.conversation_ids is not None:
            sql += f" AND d.conversation_id IN ({', '.join(['%s'] * len(scope.conversation_ids))})"
            params += scope.conversation_ids
        sql += " ORDER BY f.rowid DESC LIMIT %s"
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, limit])
            return [Hit(Position(tier, doc, message_id), message_id) for doc, message_id in cursor.fetchall()]

    def index(self, messages: list[Message]) -> None:
        if not messages:
            return
        with connection.cursor() as cursor:
            # A message indexed before keeps its number (its place in "newest first"); its text is replaced.
            cursor.executemany(
                f"INSERT OR IGNORE INTO {DOC_TABLE} (message_id, conversation_id) VALUES (%s, %s)",  # noqa: S608
                [(m.pk, m.conversation_id) for m in messages],
            )
            cursor.executemany(
                f"INSERT OR REPLACE INTO {FTS_TABLE} (rowid, body, scope) "  # noqa: S608
                f"SELECT doc, %s, %s FROM {DOC_TABLE} WHERE message_id = %s",
                [(m.content, scope_text(m), m.pk) for m in messages],
            )

    def unindex(self, message_ids: list[str]) -> None:
        self._delete("message_id", message_ids)

    def unindex_conversations(self, conversation_ids: list[str]) -> None:
        self._delete("conversation_id", conversation_ids)

    def _delete(self, column: str, values: list[str]) -> None:
        with connection.cursor() as cursor:
            for chunk in _chunks(values):
                marks = ", ".join(["%s"] * len(chunk))
                where = f"{column} IN ({marks})"
                cursor.execute(
                    f"DELETE FROM {FTS_TABLE} WHERE rowid IN (SELECT doc FROM {DOC_TABLE} WHERE {where})",  # noqa: S608
                    chunk,
                )
                cursor.execute(f"DELETE FROM {DOC_TABLE} WHERE {where}", chunk)  # noqa: S608

    def rebuild(self, *, batch_size: int) -> int:
        """Drop and create both tables, then index every searchable message by (createdAt, id), one batch
        per transaction. Messages written meanwhile are indexed by their own transactions; a batch that
        meets one keeps it (INSERT OR IGNORE keeps its number, the text is the same)."""
        from chatservice.db import atomic
        from search import rules

        with atomic(), connection.cursor() as cursor:
            for statement in (*DROP_SQL, *CREATE_SQL):
                cursor.execute(statement)
        searchable = Message.objects.filter(rules.searchable()).order_by("created_at", "id")
        indexed = 0
        for batch in _keyset_batches(searchable, batch_size):
            with atomic():
                self.index([m for m in batch if rules.is_searchable(m)])
            indexed += len(batch)
        return indexed


def _keyset_batches(qs: Any, batch_size: int) -> Iterable[list[Message]]:
    """`qs` (ordered by created_at, id) in batches, each starting after the last row of the previous."""
    fields = ("id", "conversation_id", "content", "message_type", "sender_id", "created_at")
    last: tuple[Any, str] | None = None
    while True:
        page = qs.only(*fields)
        if last is not None:
            page = page.filter(created_at__gte=last[0]).exclude(created_at=last[0], id__lte=last[1])
        rows = list(page[:batch_size])
        if rows:
            yield rows
        if len(rows) < batch_size:
            return
        last = (rows[-1].created_at, rows[-1].pk)
