"""The satisfaction survey: a donor rates a closed conversation once per closing."""

from __future__ import annotations

import pytest

from conversations import services as conversation_services
from conversations.models import Conversation
from csat.models import CsatResponse
from csat.selectors import csat_stats
from messaging.models import Message, MessageType
from tests.helpers import ADMIN, USER, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed(conversation) -> Conversation:
    conversation_services.conversation_assign(conversation=conversation, actor=ADMIN, admin_id=ADMIN.user_id)
    conversation_services.conversation_update(conversation=conversation, actor=ADMIN, status="CLOSED")
    return Conversation.objects.get(pk=conversation.pk)


def csat_url(conversation: Conversation) -> str:
    return f"/api/conversations/{conversation.pk}/csat"


def test_closing_asks_the_donor_through_the_close_notice(closed, donor):
    notice = Message.objects.filter(conversation=closed, message_type=MessageType.SYSTEM).order_by("-seq").first()
    assert notice.metadata["kind"] == "csat_request" and notice.metadata["status"] == "CLOSED"
    history = donor.get(f"/api/conversations/{closed.pk}/messages").json()["results"]
    assert history[-1]["metadata"]["kind"] == "csat_request"


def test_a_donor_rates_once_per_closing_and_the_conversation_shows_it(closed, donor, agent):
    response = donor.post(csat_url(closed), {"rating": 4, "comment": "Quick and kind"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["conversationId"], body["rating"], body["comment"]) == (closed.pk, 4, "Quick and kind")
    assert donor.get(f"/api/conversations/{closed.pk}").json()["csat"] == body
    assert agent.get(f"/api/conversations/{closed.pk}").json()["csat"] == body
    again = donor.post(csat_url(closed), {"rating": 5}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "csat_already_submitted")
    assert CsatResponse.objects.count() == 1
    # reopened and closed again: a new closing, a new rating
    conversation_services.conversation_update(conversation=closed, actor=ADMIN, status="ACTIVE")
    conversation_services.conversation_update(conversation=closed, actor=ADMIN, status="CLOSED")
    assert donor.post(csat_url(closed), {"rating": 2}, format="json").status_code == 201
    assert donor.get(f"/api/conversations/{closed.pk}").json()["csat"]["rating"] == 2
    stats = csat_stats()
    assert (stats.count, stats.average, stats.by_agent) == (2, 3.0, {ADMIN.user_id: (2, 3.0)})
    # The console's team list: each agent's average, null before their first rating.
    assert agent.get("/api/agents/me").json()["csat"] == {"count": 2, "average": 3.0}  # and known to the desk
    team = {a["agentId"]: a["csat"] for a in agent.get("/api/agents").json()}
    assert team[ADMIN.user_id] == {"count": 2, "average": 3.0}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"rating": 0}, "min_value"),
        ({"rating": 6}, "max_value"),
        ({"rating": "5"}, "invalid"),
        ({"rating": 4.5}, "invalid"),
        ({"rating": True}, "invalid"),
        ({}, "required"),
        ({"rating": 3, "comment": "x" * 1001}, "max_length"),
        ({"rating": 3, "comment": 7}, "not_a_string"),
    ],
)
def test_bad_ratings_are_refused_and_nothing_is_stored(closed, donor, body, code):
    before = snapshot(closed)
    response = donor.post(csat_url(closed), body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert CsatResponse.objects.count() == 0 and snapshot(closed) == before
    assert Conversation.objects.get(pk=closed.pk).csat is None


def test_staff_an_open_conversation_and_strangers_are_refused(conversation, closed, donor, agent, stranger):
    staff = agent.post(csat_url(closed), {"rating": 5}, format="json")
    assert (staff.status_code, staff.json()["code"]) == (403, "csat_donor_only")
    assert stranger.post(csat_url(closed), {"rating": 5}, format="json").status_code == 404
    other = conversation_services.conversation_create(creator=USER, subject="still open")
    open_one = donor.post(csat_url(other), {"rating": 5}, format="json")
    assert (open_one.status_code, open_one.json()["code"]) == (409, "conversation_not_closed")
    assert CsatResponse.objects.count() == 0


def test_chat_stats_reports_the_average_per_agent(closed, donor):
    from io import StringIO

    from django.core.management import call_command

    donor.post(csat_url(closed), {"rating": 5}, format="json")
    out = StringIO()
    call_command("chat_stats", stdout=out)
    text = out.getvalue()
    assert "CSAT: 1 rating, average 5.00" in text
    assert f"{ADMIN.user_id}: 1 rating, average 5.00" in text
