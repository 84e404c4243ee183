"""Message search (GET /api/search/messages): who finds what, in which order, page by page, with plain-text
snippets whose offsets a browser can slice; the index kept in the same transaction as every write; the
MongoDB path proven offline (tests.mongo_offline) as far as a server-less client allows."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from rest_framework.test import APIClient

from chatservice.authentication import Principal
from chatservice.config import BASE_DIR, ConfigError, load_config
from chatservice.devkeys import generate_rsa_keypair
from conversations import services as conversation_services
from conversations.models import Conversation, Role
from conversations.services import ERASED_CONTENT, user_erase
from messaging.models import Message, MessageType
from messaging.services import message_append
from search import services as search_index
from search import text
from search.backends import Position, Scope
from search.backends import mongodb as mongo_backend
from search.selectors import MAX_QUERY_LENGTH
from tests.helpers import ADMIN, USER, send

pytestmark = pytest.mark.django_db

URL = "/api/search/messages"
STRANGER = Principal("u2", Role.USER)


def search(client: APIClient, q: str, **params: Any) -> dict[str, Any]:
    response = client.get(URL, {"q": q, **params})
    assert response.status_code == 200, response.json()
    return response.json()


def found(client: APIClient, q: str, **params: Any) -> list[str]:
    return [result["messageId"] for result in search(client, q, **params)["results"]]


@pytest.fixture
def other_conversation(db) -> Conversation:
    return conversation_services.conversation_create(creator=STRANGER, subject="Receipt", metadata={})


def utf16_slice(value: str, start: int, end: int) -> str:
    """What JavaScript's value.slice(start, end) returns."""
    return value.encode("utf-16-le")[2 * start : 2 * end].decode("utf-16-le")


# ---- who finds what -----------------------------------------------------------------------------------


def test_authentication_is_required():
    response = APIClient().get(URL, {"q": "refund"})
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


def test_staff_find_every_donors_messages_and_donors_only_their_own(
    donor, stranger, agent, conversation, other_conversation
):
    mine = send(conversation, "my refund has not arrived")
    theirs = send(other_conversation, "refund please", sender=STRANGER)
    assert set(found(agent, "refund")) == {mine.pk, theirs.pk}
    assert found(donor, "refund") == [mine.pk]
    assert found(stranger, "refund") == [theirs.pk]


def test_a_donor_is_their_id_and_their_role(client_for, conversation):
    """A donor whose id equals a staff member's finds nothing of the conversations that staff member is in."""
    reply = send(conversation, "your refund is on its way", sender=ADMIN)  # agent1 takes part as ADMIN
    assert found(client_for("agent1", "ADMIN"), "refund") == [reply.pk]
    assert found(client_for("agent1", "USER"), "refund") == []


def test_internal_notes_are_found_by_staff_only(donor, agent, conversation):
    text_message = send(conversation, "refund requested")
    note = send(conversation, "refund: donor seems upset", sender=ADMIN, message_type=MessageType.NOTE)
    assert found(agent, "refund") == [note.pk, text_message.pk]
    assert [r["messageType"] for r in search(agent, "refund")["results"]] == ["NOTE", "TEXT"]
    assert found(donor, "refund") == [text_message.pk]
    assert found(donor, "refund", conversationId=conversation.pk) == [text_message.pk]


def test_system_notices_are_not_searchable(agent, conversation):
    with transaction.atomic():
        message_append(
            conversation=conversation,
            sender_id=ADMIN.user_id,
            sender_role=ADMIN.role,
            content="Refund approved",
            message_type=MessageType.SYSTEM,
        )
    assert found(agent, "refund") == []


def test_erased_messages_leave_the_index(donor, agent, conversation):
    send(conversation, "my card number is 4242")
    kept = send(conversation, "card details are with the bank", sender=ADMIN)
    user_erase(user_id=USER.user_id, role=USER.role)
    assert found(agent, "card") == [kept.pk]
    assert found(agent, "erased") == []  # the placeholder itself is not a word anyone can find
    assert Message.objects.filter(content=ERASED_CONTENT).count() == 1


def test_an_edit_and_a_tombstone_are_reindexed_in_their_transaction(agent, conversation):
    edited, deleted = send(conversation, "refund to old card"), send(conversation, "refund to my bank")
    with transaction.atomic():
        Message.objects.filter(pk=edited.pk).update(content="refund to new card")
        Message.objects.filter(pk=deleted.pk).update(content="")
        search_index.messages_reindexed(messages=list(Message.objects.filter(pk__in=[edited.pk, deleted.pk])))
    assert found(agent, "refund") == [edited.pk]
    assert found(agent, "new card") == [edited.pk]
    assert found(agent, "old") == []


def test_unindexed_messages_and_conversations_are_not_found(agent, conversation, other_conversation):
    first, second = send(conversation, "tax receipt"), send(conversation, "another tax receipt")
    theirs = send(other_conversation, "tax receipt again", sender=STRANGER)
    with transaction.atomic():
        search_index.messages_unindexed(message_ids=[first.pk])
        Message.objects.filter(pk=first.pk).delete()
    assert found(agent, "receipt") == [theirs.pk, second.pk]
    with transaction.atomic():
        Conversation.objects.filter(pk=other_conversation.pk).delete()  # messages go with it (cascade)
        search_index.conversations_unindexed(conversation_ids=[other_conversation.pk])
    assert found(agent, "receipt") == [second.pk]
    if connection.vendor == "sqlite":  # the application's own index holds nothing of them any more
        with connection.cursor() as cursor:
            cursor.execute("SELECT message_id FROM search_message_doc")
            assert [row[0] for row in cursor.fetchall()] == [second.pk]


def test_a_write_that_rolls_back_leaves_nothing_in_the_index(agent, conversation):
    with pytest.raises(RuntimeError), transaction.atomic():
        send(conversation, "zebra crossing")
        raise RuntimeError
    assert found(agent, "zebra") == []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM search_message_fts WHERE search_message_fts MATCH 'zebra'")
            assert cursor.fetchone()[0] == 0


# ---- order and pages ----------------------------------------------------------------------------------


def test_phrase_matches_first_then_the_other_matches_newest_first_within_each(agent, conversation):
    words_old = send(conversation, "receipt for the refund")
    phrase_old = send(conversation, "Refund receipt, please")
    words_new = send(conversation, "refund and receipt")
    phrase_new = send(conversation, "where is my refund receipt?")
    assert found(agent, "refund receipt") == [phrase_new.pk, phrase_old.pk, words_new.pk, words_old.pk]
    # The phrase is the query's words in its order: reversed, none of these is one, and recency decides.
    assert found(agent, "receipt refund") == [phrase_new.pk, words_new.pk, phrase_old.pk, words_old.pk]


def test_every_word_must_match_in_any_case_without_accents(agent, conversation):
    both = send(conversation, "Le CAFÉ est fermé")
    send(conversation, "café only")
    assert found(agent, "Café FERMÉ") == [both.pk]
    if connection.vendor != "postgresql":  # PostgreSQL's 'simple' configuration keeps accents (README)
        assert found(agent, "cafe ferme") == [both.pk]


def test_following_next_returns_every_match_once_even_while_messages_arrive(agent, conversation):
    sent = [send(conversation, f"donation {'receipt ' if i % 3 == 0 else ''}number {i} receipt") for i in range(23)]
    expected = found(agent, "donation receipt", limit=50)
    assert sorted(expected) == sorted(m.pk for m in sent)
    pages, seen, url = 0, [], f"{URL}?q=donation+receipt&limit=5"
    while url:
        body = agent.get(url).json()
        seen += [result["messageId"] for result in body["results"]]
        pages += 1
        if pages == 2:  # new matches, in both tiers, between two pages
            send(conversation, "donation receipt late")
            send(conversation, "late donation and receipt")
        url = body["next"]
        if url:
            assert "q=donation+receipt" in url and "limit=5" in url
    assert seen == expected  # the same order, nothing twice, nothing skipped
    assert pages == 5


def test_the_last_page_has_no_next(agent, conversation):
    send(conversation, "refund")
    body = search(agent, "refund", limit=1)
    assert len(body["results"]) == 1 and body["next"] is None


# ---- snippets -----------------------------------------------------------------------------------------


def test_snippet_offsets_are_utf16_units_through_emoji_and_bengali(agent, conversation):
    content = "😀👍🏽 আমি টাকা ফেরত চাই, refund ✅ Refund"
    send(conversation, content)
    (result,) = search(agent, "টাকা")["results"]
    snippet = result["snippet"]
    assert snippet["text"] == content
    ((start, end),) = snippet["matches"]
    assert (start, end) == (11, 15)  # 6 units of emoji, a space, আমি (3 code units), a space
    assert utf16_slice(snippet["text"], start, end) == "টাকা"
    (result,) = search(agent, "REFUND")["results"]
    spans = result["snippet"]["matches"]
    assert [utf16_slice(content, s, e) for s, e in spans] == ["refund", "Refund"]


def test_a_long_message_gives_an_excerpt_around_its_first_match():
    content = "🎉 " + "word " * 60 + "the refund was sent " + "tail " * 60
    snippet = text.snippet(content, text.query_terms("refund"))
    assert snippet.text.startswith(text.ELLIPSIS) and snippet.text.endswith(text.ELLIPSIS)
    assert len(snippet.text) <= text.SNIPPET_CHARS + 2
    ((start, end),) = snippet.matches
    assert utf16_slice(snippet.text, start, end) == "refund"
    assert " refund was sent " in snippet.text
    assert not snippet.text[1:-1].startswith(" ") and "wor " not in snippet.text  # cut at spaces


def test_the_word_pattern_is_the_word_rule_for_every_code_point():
    """words() splits with one regular expression (fast); it must say what is_word_char says, everywhere."""
    pattern = text._word_pattern()
    disagree = [
        code
        for code in range(sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF and bool(pattern.fullmatch(chr(code))) != text.is_word_char(chr(code))
    ]
    assert disagree == []


def test_words_are_letters_digits_and_marks():
    assert text.query_terms("Don't re-fund £20!! আমি 😀") == ["Don", "t", "re", "fund", "20", "আমি"]
    assert [text.fold(word) for word in text.query_terms("CAFÉ Naïve")] == ["cafe", "naive"]
    assert text.query_terms("?!… 😀 —") == []


# ---- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "required"),
        ({"q": ""}, "blank"),
        ({"q": "  \t "}, "blank"),
        ({"q": "x" * (MAX_QUERY_LENGTH + 1)}, "max_length"),
        ({"q": "refund", "before": "abc"}, "invalid_cursor"),
        ({"q": "refund", "before": ""}, "blank"),  # as for every other empty value
        ({"q": "refund", "before": "1.5"}, "invalid_cursor"),
        ({"q": "refund", "limit": "0"}, "min_value"),
        ({"q": "refund", "limit": "many"}, "invalid"),
        ({"q": "refund", "conversationId": "a b"}, "invalid"),
    ],
)
def test_bad_input_is_a_400_with_a_stable_code(donor, params, code):
    response = donor.get(URL, params)
    assert (response.status_code, response.json()["code"]) == (400, code)


def test_the_longest_query_is_accepted(donor, conversation):
    assert search(donor, "refund " * (MAX_QUERY_LENGTH // 7))["results"] == []


def test_a_conversation_the_caller_may_not_see_is_not_found(donor, agent, other_conversation):
    send(other_conversation, "refund", sender=STRANGER)
    response = donor.get(URL, {"q": "refund", "conversationId": other_conversation.pk})
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    response = agent.get(URL, {"q": "refund", "conversationId": "conv_missing"})
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert len(found(agent, "refund", conversationId=other_conversation.pk)) == 1


@pytest.mark.parametrize(
    "q", ['refund" OR "x', "NEAR(refund card)", "body: refund", "scope : refund", "refund*", "-refund", "(refund"]
)
def test_query_syntax_is_never_interpreted(donor, conversation, q):
    message = send(conversation, "refund to my card, x")
    results = found(donor, q)
    assert results in ([message.pk], [])


def test_a_query_of_no_words_matches_nothing(donor, conversation):
    send(conversation, "!!! ??? 😀")
    assert search(donor, "?!😀")["results"] == []


def test_a_well_formed_cursor_is_always_a_place_in_the_order(agent, conversation):
    older, newer = send(conversation, "refund one"), send(conversation, "refund two")
    assert found(agent, "refund") == [newer.pk, older.pk]
    assert found(agent, "refund", before="9.9999999999999999999.x") == [newer.pk, older.pk]
    assert found(agent, "refund", before="0.0.x") == []


# ---- rebuilding, configuration ------------------------------------------------------------------------


def test_search_reindex_builds_the_index_again(agent, conversation, capsys):
    kept = send(conversation, "refund kept")
    send(conversation, "[erased]")  # searchable: only the pseudonym's placeholder is not
    call_command("search_reindex", "--batch-size", "1")
    assert "Search index rebuilt" in capsys.readouterr().out
    assert found(agent, "refund") == [kept.pk]
    assert len(found(agent, "erased")) == 1


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="the application's own index: SQLite only")
def test_the_migration_indexes_the_messages_stored_before_it(donor, agent, conversation):
    """An existing database gets its index when search's migration runs, as the services would write it."""
    migration = importlib.import_module("search.migrations.0001_initial")
    text_message = send(conversation, "refund before search existed")
    note = send(conversation, "refund note", sender=ADMIN, message_type=MessageType.NOTE)
    with transaction.atomic():
        message_append(
            conversation=conversation, sender_id="agent1", sender_role="ADMIN", content="refund", message_type="SYSTEM"
        )
    written = index_rows()
    with connection.cursor() as cursor:
        for statement in migration.SQLITE_DROP:
            cursor.execute(statement)

    class Editor:  # what the migration uses of a schema editor (Django's cannot open inside a test's transaction)
        def __init__(self) -> None:
            self.connection = connection

        def execute(self, sql: str) -> None:
            with connection.cursor() as cursor:
                cursor.execute(sql)

    migration.create(None, Editor())
    assert index_rows() == written
    assert found(agent, "refund") == [note.pk, text_message.pk]
    assert found(donor, "refund") == [text_message.pk]


def index_rows() -> list[tuple[str, str, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.message_id, d.conversation_id, f.body, f.scope FROM search_message_doc AS d "
            "JOIN search_message_fts AS f ON f.rowid = d.doc ORDER BY d.doc"
        )
        return cursor.fetchall()


def test_the_search_language_is_checked_at_start_up():
    base = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "s3cret",
        "ALLOWED_HOSTS": "chat.example.org",
        "JWT_PUBLIC_KEY": generate_rsa_keypair()[1].decode(),
    }
    assert load_config(base).search_language == "simple"
    assert load_config({**base, "CHAT_SEARCH_LANGUAGE": " English "}).search_language == "english"
    with pytest.raises(ConfigError, match="CHAT_SEARCH_LANGUAGE"):
        load_config({**base, "CHAT_SEARCH_LANGUAGE": "english'; drop table x"})


def test_the_database_has_its_native_index():
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'search_message_fts'")
            assert "fts5" in cursor.fetchone()[0]
        elif connection.vendor == "postgresql":
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'search_message_content_tsv'")
            definition = cursor.fetchone()[0]
            assert "USING gin" in definition and "to_tsvector('simple'::regconfig, content)" in definition


# ---- MongoDB, offline ---------------------------------------------------------------------------------


def test_the_mongodb_query_is_one_text_search_pipeline():
    scope = Scope(("conv_a", "conv_b"), include_notes=False)
    after = Position(0, 1_700_000_000_000_000, "msg_x")
    stages = mongo_backend.pipeline(["refund", "receipt"], scope, after=after, limit=21)
    first = stages[0]["$match"]
    assert first["$text"] == {"$search": '"refund" "receipt"'}  # every word required
    assert first["conversation_id"] == {"$in": ["conv_a", "conv_b"]}
    assert first["message_type"] == {"$nin": ["NOTE", "SYSTEM"]}
    assert [next(iter(stage)) for stage in stages] == ["$match", "$project", "$match", "$sort", "$limit"]
    assert stages[-2] == {"$sort": {"tier": -1, "created_at": -1, "_id": -1}}
    phrase = stages[1]["$project"]["tier"]["$cond"][0]["$regexMatch"]
    assert phrase["options"] == "i" and "refund" in phrase["regex"] and "receipt" in phrase["regex"]
    # One word: every match is the phrase tier, a literal (a bare 1 in $project would include a field).
    one = mongo_backend.pipeline(["refund"], Scope(None, include_notes=True), after=None, limit=21)
    assert one[1]["$project"]["tier"] == {"$literal": 1}
    assert "conversation_id" not in one[0]["$match"] and one[0]["$match"]["message_type"] == {"$nin": ["SYSTEM"]}


MONGODB_RUN = """
import json
from django.core.management import call_command
from chatservice.authentication import Principal
from search.selectors import search_messages
from tests.mongo_offline import base
call_command("migrate", verbosity=0)
indexes = [op for op in base.operations if op["op"] == "create_indexes" and op["target"] == "messaging_message"]
del base.operations[:]
page = search_messages(viewer=Principal("agent1", "ADMIN"), query="Refund receipt")
searches = [op for op in base.operations if op["op"] == "aggregate" and op["target"] == "messaging_message"]
print(json.dumps({"indexes": indexes, "searches": searches, "results": len(page.results)}, default=repr))
"""


def test_mongodb_declares_a_text_index_and_searches_with_text():
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": "mongodb://offline.invalid:27017/chat?replicaSet=rs0",
        "DJANGO_SETTINGS_MODULE": "tests.mongo_offline.settings",
        "DJANGO_DEBUG": "true",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", MONGODB_RUN],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    ran = json.loads(result.stdout.splitlines()[-1])
    specs = [spec for op in ran["indexes"] for spec in op["args"][0]]
    (text_index,) = [spec for spec in specs if spec["name"] == "search_message_content_text"]
    assert text_index["key"] == {"content": "text"} and text_index["default_language"] == "none"
    (search_op,) = ran["searches"]
    pipeline = search_op["args"][0]
    assert pipeline[0]["$match"]["$text"] == {"$search": '"Refund" "receipt"'}  # MongoDB folds case
    assert "conversation_id" not in pipeline[0]["$match"]  # staff: every conversation
    assert ran["results"] == 0  # the offline client holds no documents
