"""Message history pages: latest first page, `next` to older, `previous` to newer, every message exactly
once while new ones arrive, cursors validated, constant queries per page."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations.models import Conversation
from messaging.models import Message
from tests.helpers import ADMIN, USER, send

pytestmark = pytest.mark.django_db


def url(conversation, query: str = "") -> str:
    return f"/api/conversations/{conversation.pk}/messages{query}"


def contents(page: dict) -> list[str]:
    return [m["content"] for m in page["results"]]


def fill(conversation: Conversation, n: int, start: int = 0) -> list[str]:
    return [send(conversation, f"m{i}", sender=USER if i % 2 else ADMIN).content for i in range(start, start + n)]


def test_first_page_is_the_latest_messages_in_chronological_order(donor, conversation):
    fill(conversation, 7)
    page = donor.get(url(conversation, "?limit=3")).json()
    assert contents(page) == ["m4", "m5", "m6"]
    assert page["previous"] is None
    assert "before=" in page["next"] and "limit=3" in page["next"]


def test_default_limit_is_50_and_max_is_200(donor, conversation):
    Message.objects.bulk_create(
        Message(conversation=conversation, seq=i, sender_id="u1", sender_role="USER", content=f"m{i}")
        for i in range(1, 251)
    )
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=250)
    assert len(donor.get(url(conversation)).json()["results"]) == 50
    assert len(donor.get(url(conversation, "?limit=1000")).json()["results"]) == 200


@pytest.mark.parametrize("query", ["?limit=0", "?limit=-1", "?limit=abc"])
def test_bad_limit_is_400(donor, conversation, query):
    response = donor.get(url(conversation, query))
    assert (response.status_code, response.json()["code"]) in {(400, "min_value"), (400, "invalid")}


def test_following_next_returns_every_message_once_while_new_ones_arrive(donor, conversation):
    original = fill(conversation, 23)
    seen: list[str] = []
    page = donor.get(url(conversation, "?limit=5")).json()
    arrived = 0
    while True:
        seen = contents(page) + seen
        # New messages arrive between page requests; they must not shift or repeat older pages.
        fill(conversation, 3, start=100 + arrived)
        arrived += 3
        if not page["next"]:
            break
        page = donor.get(page["next"]).json()
    assert seen == original


def test_following_previous_from_the_oldest_page_reaches_the_newest_once(donor, conversation):
    fill(conversation, 12)
    # Walk to the oldest page first.
    page = donor.get(url(conversation, "?limit=4")).json()
    while page["next"]:
        page = donor.get(page["next"]).json()
    seen = contents(page)
    fill(conversation, 2, start=50)
    while page["previous"]:
        page = donor.get(page["previous"]).json()
        seen += contents(page)
    assert seen == [f"m{i}" for i in range(12)] + ["m50", "m51"]


def test_after_cursor_returns_exactly_what_was_missed(donor, conversation):
    fill(conversation, 5)
    last_seen = Message.objects.get(conversation=conversation, content="m2").pk
    page = donor.get(url(conversation, f"?after={last_seen}")).json()
    assert contents(page) == ["m3", "m4"]
    assert page["previous"] is None  # nothing newer yet
    assert "before=" in page["next"]


def test_random_interleaving_of_reads_and_writes_never_loses_or_repeats(donor, conversation):
    rng = random.Random(7)
    written = fill(conversation, 10)
    collected = contents(donor.get(url(conversation, "?limit=3")).json())
    newest = Message.objects.get(conversation=conversation, content=collected[-1]).pk
    for step in range(40):
        if rng.random() < 0.6:
            written += fill(conversation, rng.randint(1, 4), start=1000 + step * 10)
        page = donor.get(url(conversation, f"?after={newest}&limit={rng.randint(1, 5)}")).json()
        collected += contents(page)
        if page["results"]:
            newest = page["results"][-1]["messageId"]
    while True:
        page = donor.get(url(conversation, f"?after={newest}&limit=5")).json()
        if not page["results"]:
            break
        collected += contents(page)
        newest = page["results"][-1]["messageId"]
    assert collected == written[7:]  # the first page held m7..m9; everything after it exactly once


def test_cursors_must_be_messages_of_this_conversation(donor, conversation):
    fill(conversation, 3)
    other = Conversation.objects.get(pk=donor.post("/api/conversations", {}, format="json").json()["conversationId"])
    foreign = send(other, "elsewhere")
    for query in (f"?before={foreign.pk}", "?after=msg_unknown"):
        response = donor.get(url(conversation, query))
        # A well-formed id that names no message here is a missing message, as for PUT …/read (it was a 400,
        # which the schema could not describe: any id-shaped cursor is valid input).
        assert (response.status_code, response.json()["code"]) == (404, "message_not_found")
    first = Message.objects.get(conversation=conversation, content="m0").pk
    response = donor.get(url(conversation, f"?before={first}&after={first}"))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_cursor")


def test_empty_conversation_page(donor, conversation):
    assert donor.get(url(conversation)).json() == {"results": [], "next": None, "previous": None, "changeCursor": "0"}


def test_queries_per_page_do_not_grow_with_page_size_or_history(donor, agent, conversation):
    agent.post(f"/api/conversations/{conversation.pk}/assign", {}, format="json")
    fill(conversation, 120)
    anchor = Message.objects.get(conversation=conversation, content="m60").pk

    def queries(query: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert donor.get(url(conversation, query)).status_code == 200
        return len(ctx.captured_queries)

    assert queries("?limit=2") == queries("?limit=100") == 3  # conversation, participants, page
    assert queries(f"?before={anchor}&limit=2") == queries(f"?before={anchor}&limit=100") == 4  # + cursor
