"""The message search index of each database (search.backends). No model: SQLite gets two tables of its
own, PostgreSQL an expression index and MongoDB a text index on messaging_message. The statements are
spelled out here, as they were when this migration was written; `manage.py search_reindex` builds the
current ones."""

from django.conf import settings
from django.db import migrations

SQLITE_CREATE = (
    "CREATE TABLE IF NOT EXISTS search_message_doc ("
    "doc INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, conversation_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS search_message_doc_conversation ON search_message_doc (conversation_id)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_message_fts USING fts5(body, scope, "
    "tokenize=\"unicode61 remove_diacritics 2 categories 'L* N* Co M*'\")",
)
# Messages stored before this migration, indexed as search.services would (search.rules: no SYSTEM notice,
# no empty content, nothing erased; scope: the conversation's token and, for notes, "xnote"), numbered by
# createdAt. Plain SQL: a million messages take seconds, where model instances would take minutes.
SQLITE_BACKFILL = (
    "INSERT OR IGNORE INTO search_message_doc (message_id, conversation_id) "
    "SELECT _id, conversation_id FROM messaging_message "
    "WHERE message_type <> 'SYSTEM' AND content <> '' AND NOT (sender_id = 'erased-user' AND content = '[erased]') "
    "ORDER BY created_at, _id",
    "INSERT OR REPLACE INTO search_message_fts (rowid, body, scope) "
    "SELECT d.doc, m.content, 'c' || replace(replace(m.conversation_id, '_', ''), '-', '') "
    "|| CASE WHEN m.message_type = 'NOTE' THEN ' xnote' ELSE '' END "
    "FROM search_message_doc AS d JOIN messaging_message AS m ON m._id = d.message_id",
)
SQLITE_DROP = ("DROP TABLE IF EXISTS search_message_fts", "DROP TABLE IF EXISTS search_message_doc")
POSTGRES_INDEX = "search_message_content_tsv"
MONGODB_INDEX = "search_message_content_text"


def language():
    # CHAT_SEARCH_LANGUAGE, checked by chatservice.config (lower-case letters and underscores only).
    return settings.CHAT["SEARCH_LANGUAGE"]


def create(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "sqlite":
        for statement in (*SQLITE_CREATE, *SQLITE_BACKFILL):
            schema_editor.execute(statement)
    elif connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {POSTGRES_INDEX} ON messaging_message "
            f"USING gin (to_tsvector('{language()}'::regconfig, content))"
        )
    elif connection.vendor == "mongodb":
        from pymongo import TEXT
        from pymongo.operations import IndexModel

        index = IndexModel(
            [("content", TEXT)],
            name=MONGODB_INDEX,
            default_language="none" if language() == "simple" else language(),
            language_override="search_language",
        )
        connection.get_collection("messaging_message").create_indexes([index])


def drop(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)
    elif connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {POSTGRES_INDEX}")
    elif connection.vendor == "mongodb":
        connection.get_collection("messaging_message").drop_index(MONGODB_INDEX)


class Migration(migrations.Migration):
    dependencies = [("messaging", "0004_desk")]

    operations = [migrations.RunPython(create, drop)]
