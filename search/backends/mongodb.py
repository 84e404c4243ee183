"""MongoDB: a text index on messaging_message's content, kept by MongoDB.

django-mongodb-backend has no ORM expression for `$text` (its search expressions are Atlas Search), so the
query is an aggregation pipeline on the collection, in the connection's session (inside a transaction when
there is one). `$text` must be the first stage and uses the collection's one text index, which search's
migration declares (and `manage.py search_reindex` declares again, for a changed CHAT_SEARCH_LANGUAGE):
`default_language` "none" for the default 'simple' (no stemming, no stop words), else the language named.

Every quoted word must be present (MongoDB ANDs quoted phrases), case- and diacritic-insensitively. The
phrase tier is a regular expression over the content (words in order, separated by anything but letters,
digits and marks): it is case-insensitive but, unlike the text index, does not ignore accents, so a phrase
typed without the accents of the message ranks in the lower tier. Atlas Search would do phrases natively,
but needs Atlas (or mongot); the text index works on every MongoDB the service supports.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.conf import settings
from django.db import connection
from pymongo import TEXT
from pymongo.operations import IndexModel

from messaging.models import Message, MessageType
from search.backends import PHRASE_TIER, WORDS_TIER, Hit, Position, Scope
from search.backends.postgres import from_micros, micros

COLLECTION = "messaging_message"
INDEX_NAME = "search_message_content_text"
_WORD = r"\p{L}\p{N}\p{M}"


def text_index_model() -> IndexModel:
    language = settings.CHAT["SEARCH_LANGUAGE"]
    return IndexModel(
        [("content", TEXT)],
        name=INDEX_NAME,
        default_language="none" if language == "simple" else language,
        # Documents' own "language" field would override the index's language: there is none, and no
        # message field is ever read as one.
        language_override="search_language",
    )


def text_search(terms: list[str]) -> str:
    return " ".join(f'"{term}"' for term in dict.fromkeys(terms))


def phrase_pattern(terms: list[str]) -> str:
    words = f"[^{_WORD}]+".join(re.escape(term) for term in terms)
    return f"(?<![{_WORD}]){words}(?![{_WORD}])"


def pipeline(terms: list[str], scope: Scope, *, after: Position | None, limit: int) -> list[dict[str, Any]]:
    from search import rules

    erased_user, erased_content = rules.erased_markers()
    hidden = sorted(rules.UNSEARCHABLE_TYPES | (set() if scope.include_notes else {MessageType.NOTE}))
    match: dict[str, Any] = {
        "$text": {"$search": text_search(terms)},
        "message_type": {"$nin": hidden},
        "content": {"$ne": ""},
        "$nor": [{"sender_id": erased_user, "content": erased_content}],
    }
    if scope.conversation_ids is not None:
        match["conversation_id"] = {"$in": list(scope.conversation_ids)}
    tier: Any = {"$literal": PHRASE_TIER}  # a bare 1 in $project would mean "include the field tier"
    if len(terms) > 1:
        regex = {"$regexMatch": {"input": "$content", "regex": phrase_pattern(terms), "options": "i"}}
        tier = {"$cond": [regex, PHRASE_TIER, WORDS_TIER]}
    stages: list[dict[str, Any]] = [{"$match": match}, {"$project": {"tier": tier, "created_at": 1}}]
    if after is not None:
        at = from_micros(after.key)
        stages.append(
            {
                "$match": {
                    "$or": [
                        {"tier": {"$lt": after.tier}},
                        {"tier": after.tier, "created_at": {"$lt": at}},
                        {"tier": after.tier, "created_at": at, "_id": {"$lt": after.message_id}},
                    ]
                }
            }
        )
    stages += [{"$sort": {"tier": -1, "created_at": -1, "_id": -1}}, {"$limit": limit}]
    return stages


class MongoBackend:
    maintained_by_database = True

    def search(self, terms: list[str], scope: Scope, *, after: Position | None, limit: int) -> list[Hit]:
        if scope.conversation_ids is not None and not scope.conversation_ids:
            return []
        collection = connection.get_collection(COLLECTION)
        rows = collection.aggregate(pipeline(terms, scope, after=after, limit=limit), session=connection.session)
        hits = []
        for row in rows:
            created = row["created_at"]
            if created.tzinfo is None:  # PyMongo returns naive UTC datetimes unless told otherwise
                created = created.replace(tzinfo=dt.UTC)
            hits.append(Hit(Position(int(row["tier"]), micros(created), row["_id"]), row["_id"]))
        return hits

    # The database keeps its index: nothing to write.
    def index(self, messages: list[Message]) -> None:
        return None

    def unindex(self, message_ids: list[str]) -> None:
        return None

    def unindex_conversations(self, conversation_ids: list[str]) -> None:
        return None

    def rebuild(self, *, batch_size: int) -> int:
        """Declare the text index again for the configured language (dropping one of another language)."""
        collection = connection.get_collection(COLLECTION)
        for name, spec in collection.index_information().items():
            if name == INDEX_NAME and spec.get("default_language") != text_index_model().document["default_language"]:
                collection.drop_index(INDEX_NAME)
        collection.create_indexes([text_index_model()])
        return Message.objects.count()
