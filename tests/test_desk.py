"""The support desk over REST: availability, auto-assignment, unassign and transfer, internal notes,
canned responses, labels, priority, snooze, clocks and display names (issue 12). Every refusal leaves
nothing stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from chatservice.authentication import Principal
from conversations import services as conversation_services
from conversations.models import Conversation, ConversationLabel, Participant
from desk import assignment
from desk.models import AgentProfile, CannedResponse
from messaging.models import Message
from tests.helpers import ADMIN, send, snapshot

pytestmark = pytest.mark.django_db

AGENT2 = Principal("agent2", "ADMIN")


def online(client, capacity: int = 5, name: str = "") -> dict:
    body = {"availability": "ONLINE", "capacity": capacity}
    if name:
        body["displayName"] = name
    response = client.put("/api/agents/me", body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def assignees(conversation_id: str) -> list[str]:
    return sorted(
        Participant.objects.filter(conversation_id=conversation_id, role="ADMIN", assigned=True).values_list(
            "user_id", flat=True
        )
    )


def create(client, subject: str = "Help") -> dict:
    response = client.post("/api/conversations", {"subject": subject}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


# ---- availability and capacity -------------------------------------------------------------------


def test_agents_set_availability_and_capacity_and_are_listed(agent, client_for):
    me = online(agent, capacity=3, name="Maria")
    assert me == {
        "agentId": "agent1",
        "displayName": "Maria",
        "availability": "ONLINE",
        "openAssigned": 0,
        "capacity": 3,
        "csat": None,
    }
    client_for("agent2", "ADMIN").put("/api/agents/me", {"availability": "AWAY"}, format="json")
    listed = agent.get("/api/agents").json()
    assert [(a["agentId"], a["availability"]) for a in listed] == [("agent2", "AWAY"), ("agent1", "ONLINE")] or [
        (a["agentId"], a["availability"]) for a in listed
    ] == [("agent1", "ONLINE"), ("agent2", "AWAY")]
    assert {a["agentId"]: a["displayName"] for a in listed} == {"agent1": "Maria", "agent2": "Support"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"availability": "BUSY"}, "invalid_choice"),
        ({"capacity": -1}, "min_value"),
        ({"capacity": "3"}, "invalid"),
        ({"capacity": 1.5}, "invalid"),
        ({"capacity": True}, "invalid"),
        ({}, "empty_update"),
        ({"displayName": 5}, "not_a_string"),
    ],
)
def test_bad_agent_updates_are_refused_and_store_nothing(agent, body, code):
    response = agent.put("/api/agents/me", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not AgentProfile.objects.exists()


def test_agents_api_is_staff_only(donor):
    assert donor.get("/api/agents").status_code == 403
    assert donor.put("/api/agents/me", {"availability": "ONLINE"}, format="json").status_code == 403
    assert not AgentProfile.objects.exists()


def test_an_agent_without_a_staff_socket_becomes_away(agent):
    online(agent)
    AgentProfile.objects.filter(pk="agent1").update(last_seen_at=timezone.now() - timedelta(seconds=301))
    assert agent.get("/api/agents").json()[0]["availability"] == "AWAY"  # as of now
    assert assignment.mark_away() == 0  # already done
    assert agent.get("/api/agents/me").json()["availability"] == "AWAY"


# ---- auto-assignment ------------------------------------------------------------------------------


def test_balanced_assignment_respects_capacity_and_queues_the_rest(agent, client_for, donor):
    online(agent, capacity=1)
    online(client_for("agent2", "ADMIN"), capacity=1)
    first, second, third = create(donor), create(donor), create(donor)
    assert {assignees(first["conversationId"])[0], assignees(second["conversationId"])[0]} == {"agent1", "agent2"}
    assert assignees(third["conversationId"]) == []  # everyone is full: it waits
    notice = Message.objects.filter(conversation_id=first["conversationId"], message_type="SYSTEM").get()
    assert notice.content.endswith("was assigned automatically")
    assert "agent" not in notice.content  # display names, never ids
    # closing frees capacity: the queue's oldest goes to whoever closed
    owner = assignees(first["conversationId"])[0]
    client_for(owner, "ADMIN").put(f"/api/conversations/{first['conversationId']}", {"status": "CLOSED"}, format="json")
    assert assignees(third["conversationId"]) == [owner]


def test_balanced_prefers_the_least_loaded_agent(agent, client_for, donor):
    online(agent, capacity=5)
    for _ in range(2):
        create(donor)  # both to agent1, the only one online
    online(client_for("agent2", "ADMIN"), capacity=5)
    created = create(donor)
    assert assignees(created["conversationId"]) == ["agent2"]


def test_round_robin_rotates(settings, agent, client_for, donor):
    settings.CHAT = {**settings.CHAT, "AUTO_ASSIGN": "round_robin"}
    online(agent, capacity=5)
    online(client_for("agent2", "ADMIN"), capacity=5)
    owners = [assignees(create(donor)["conversationId"])[0] for _ in range(4)]
    assert owners[0] != owners[1] and owners[0] == owners[2] and owners[1] == owners[3]


def test_auto_assignment_off_leaves_everything_in_the_queue(settings, agent, donor):
    settings.CHAT = {**settings.CHAT, "AUTO_ASSIGN": "off"}
    online(agent)
    assert assignees(create(donor)["conversationId"]) == []


def test_nobody_available_then_an_agent_comes_online_and_takes_the_oldest_first(agent, donor):
    older, newer = create(donor, "older"), create(donor, "newer")
    online(agent, capacity=1)
    assert assignees(older["conversationId"]) == ["agent1"]
    assert assignees(newer["conversationId"]) == []


def test_a_donor_message_in_an_unassigned_conversation_is_assigned(agent, donor):
    created = create(donor)
    AgentProfile.objects.create(agent_id="agent1", availability="ONLINE", last_seen_at=timezone.now())
    donor.post(f"/api/conversations/{created['conversationId']}/messages", {"content": "anyone?"}, format="json")
    assert assignees(created["conversationId"]) == ["agent1"]


def test_a_donor_reopening_goes_back_to_the_agent_only_if_online_with_capacity(agent, client_for, donor):
    online(agent)
    created = create(donor)
    cid = created["conversationId"]
    assert assignees(cid) == ["agent1"]
    agent.put(f"/api/conversations/{cid}", {"status": "CLOSED"}, format="json")
    # agent1 still online: the donor's message reopens it, back to agent1
    response = donor.post(f"/api/conversations/{cid}/messages", {"content": "one more thing"}, format="json")
    assert response.status_code == 201
    assert Conversation.objects.get(pk=cid).status == "ACTIVE"
    assert assignees(cid) == ["agent1"]
    # now agent1 goes away; agent2 is online: the next reopen goes to agent2, not the absent agent1
    agent.put(f"/api/conversations/{cid}", {"status": "CLOSED"}, format="json")
    agent.put("/api/agents/me", {"availability": "AWAY"}, format="json")
    online(client_for("agent2", "ADMIN"))
    donor.post(f"/api/conversations/{cid}/messages", {"content": "and again"}, format="json")
    assert assignees(cid) == ["agent2"]
    texts = list(Message.objects.filter(conversation_id=cid, message_type="SYSTEM").values_list("content", flat=True))
    assert "Conversation reopened by u1" in texts


def test_a_reopened_conversation_with_nobody_available_waits_in_the_queue(agent, donor):
    online(agent)
    cid = create(donor)["conversationId"]
    agent.put(f"/api/conversations/{cid}", {"status": "CLOSED"}, format="json")
    agent.put("/api/agents/me", {"availability": "OFFLINE"}, format="json")
    donor.post(f"/api/conversations/{cid}/messages", {"content": "hello?"}, format="json")
    assert assignees(cid) == []
    assert Conversation.objects.get(pk=cid).admin_count == 0


def test_archived_conversations_stay_read_only_for_donors(agent, donor, conversation):
    conversation_services.conversation_update(conversation=conversation, actor=ADMIN, status="ARCHIVED")
    before = snapshot(conversation)
    response = donor.post(f"/api/conversations/{conversation.pk}/messages", {"content": "hi"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "conversation_closed"
    assert snapshot(conversation) == before


# ---- unassign and transfer ---------------------------------------------------------------------------


def test_unassign_and_transfer_are_recorded_and_keep_past_senders(agent, client_for, conversation):
    User.objects.create_user("john", password="pw-123456", is_staff=True, first_name="John")
    agent.post(f"/api/conversations/{conversation.pk}/assign", {}, format="json")
    reply = send(conversation, "hello from agent1", sender=ADMIN)
    response = agent.post(f"/api/conversations/{conversation.pk}/transfer", {"adminId": "staff:john"}, format="json")
    assert response.status_code == 200, response.json()
    assert assignees(conversation.pk) == ["staff:john"]
    assert Message.objects.get(pk=reply.pk).sender_id == "agent1"
    notices = list(
        Message.objects.filter(conversation=conversation, message_type="SYSTEM")
        .order_by("seq")
        .values_list("content", flat=True)
    )
    assert notices[-1] == "Support transferred the conversation to John"
    # john (a console account) leaves it: the caller is the default
    assignment.unassign(conversation=conversation, actor=Principal("staff:john", "ADMIN"), agent_id="staff:john")
    assert assignees(conversation.pk) == []
    assert Message.objects.filter(conversation=conversation, message_type="SYSTEM").order_by(
        "-seq"
    ).first().content == ("John left the conversation")


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("transfer", {"adminId": "u1"}, 404, "not_staff"),
        ("transfer", {"adminId": "nobody"}, 404, "not_staff"),
        ("transfer", {}, 400, "required"),
        ("transfer", {"adminId": 7}, 400, "not_a_string"),
        ("transfer", {"adminId": "agent1"}, 409, "transfer_to_self"),
        ("unassign", {"adminId": "agent9"}, 409, "not_assigned"),
    ],
)
def test_bad_transfers_and_unassigns_change_nothing(agent, conversation, path, body, status, code):
    before = (snapshot(conversation), list(Participant.objects.values_list("user_id", "assigned")))
    response = agent.post(f"/api/conversations/{conversation.pk}/{path}", body, format="json")
    assert response.status_code == status, response.json()
    assert response.json()["code"] == code
    assert (snapshot(conversation), list(Participant.objects.values_list("user_id", "assigned"))) == before


def test_donors_may_not_unassign_or_transfer(donor, conversation):
    before = snapshot(conversation)
    for path in ("unassign", "transfer"):
        response = donor.post(f"/api/conversations/{conversation.pk}/{path}", {"adminId": "agent1"}, format="json")
        assert response.status_code == 403
    assert snapshot(conversation) == before


# ---- labels, priority, snooze ---------------------------------------------------------------------


def test_staff_set_labels_priority_and_snooze_and_filter_by_them(agent, conversation):
    until = (timezone.now() + timedelta(hours=2)).isoformat()
    response = agent.put(
        f"/api/conversations/{conversation.pk}",
        {"labels": ["Refund", "vip ", "refund"], "priority": "URGENT", "snoozedUntil": until},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["labels"], body["priority"]) == (["refund", "vip"], "URGENT")
    assert body["snoozedUntil"] is not None
    assert agent.get("/api/conversations").json()["results"] == []  # snoozed: hidden by default
    assert [c["conversationId"] for c in agent.get("/api/conversations?snoozed=true").json()["results"]] == [
        conversation.pk
    ]
    assert agent.get("/api/conversations?snoozed=true&label=vip&priority=URGENT").json()["count"] == 1
    assert agent.get("/api/conversations?snoozed=true&label=other").json()["count"] == 0
    assert agent.get("/api/conversations?snoozed=true&priority=LOW").json()["count"] == 0
    # the donor writes: it wakes
    send(conversation, "still there?")
    assert Conversation.objects.get(pk=conversation.pk).snoozed_until is None
    assert agent.get("/api/conversations").json()["count"] == 1


def test_a_snooze_ends_when_its_time_comes(agent, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(snoozed_until=timezone.now() - timedelta(seconds=1))
    assert agent.get("/api/conversations").json()["count"] == 1


def test_donors_do_not_see_triage_fields(agent, donor, conversation):
    agent.put(f"/api/conversations/{conversation.pk}", {"labels": ["angry"], "priority": "HIGH"}, format="json")
    body = donor.get(f"/api/conversations/{conversation.pk}").json()
    assert not {"labels", "priority", "snoozedUntil"} & body.keys()
    assert {"firstResponseAt", "waitingSince"} <= body.keys()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"labels": "vip"}, "not_a_list"),
        ({"labels": [1]}, "not_a_string"),
        ({"labels": [""]}, "blank"),
        ({"labels": ["x" * 41]}, "max_length"),
        ({"labels": [f"l{i}" for i in range(21)]}, "max_length"),
        ({"priority": "CRITICAL"}, "invalid_choice"),
        ({"snoozedUntil": "tomorrow"}, "invalid"),
    ],
)
def test_bad_triage_input_is_refused_and_stores_nothing(agent, conversation, body, code):
    before = (snapshot(conversation), ConversationLabel.objects.count())
    response = agent.put(f"/api/conversations/{conversation.pk}", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code
    fresh = Conversation.objects.get(pk=conversation.pk)
    assert (fresh.labels, fresh.priority, fresh.snoozed_until) == ([], "NORMAL", None)
    assert (snapshot(conversation), ConversationLabel.objects.count()) == before


@pytest.mark.parametrize("body", [{"labels": ["x"]}, {"priority": "HIGH"}, {"snoozedUntil": None}])
def test_a_donor_setting_staff_only_fields_gets_403_and_nothing_changes(donor, conversation, body):
    before = snapshot(conversation)
    response = donor.put(f"/api/conversations/{conversation.pk}", body, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "staff_only_field"
    assert snapshot(conversation) == before
    assert not ConversationLabel.objects.exists()


# ---- clocks and names -----------------------------------------------------------------------------


def test_first_response_and_waiting_clocks(agent, conversation):
    assert (conversation.first_response_at, conversation.waiting_since) == (None, None)
    asked = send(conversation, "question")
    send(conversation, "more detail")
    fresh = Conversation.objects.get(pk=conversation.pk)
    assert fresh.waiting_since == asked.created_at  # the oldest unanswered, not the latest
    send(conversation, "a note", sender=ADMIN, message_type="NOTE")
    assert Conversation.objects.get(pk=conversation.pk).waiting_since == asked.created_at  # a note answers nobody
    answer = send(conversation, "answer", sender=ADMIN)
    fresh = Conversation.objects.get(pk=conversation.pk)
    assert (fresh.first_response_at, fresh.waiting_since) == (answer.created_at, None)
    again = send(conversation, "thanks, and…")
    send(conversation, "second answer", sender=ADMIN)
    body = agent.get(f"/api/conversations/{conversation.pk}").json()
    assert body["firstResponseAt"] is not None and body["waitingSince"] is None
    assert again.created_at > answer.created_at


def test_staff_display_names_replace_usernames_for_donors(donor, conversation):
    User.objects.create_user("maria", password="pw-123456", is_staff=True, first_name="Maria")
    maria = Principal("staff:maria", "ADMIN")
    conversation_services.conversation_assign(conversation=conversation, actor=maria, admin_id="staff:maria")
    send(conversation, "Hi, I can help", sender=maria)
    history = donor.get(f"/api/conversations/{conversation.pk}/messages").json()["results"]
    assert [(m["senderName"], m["content"]) for m in history] == [
        ("Maria", "Maria joined the conversation"),
        ("Maria", "Hi, I can help"),
    ]
    participants = donor.get(f"/api/conversations/{conversation.pk}").json()["participants"]
    assert {p["userId"]: p["displayName"] for p in participants}["staff:maria"] == "Maria"
    assert "maria" not in str([m["content"] for m in history]).replace("Maria", "")


# ---- canned responses -----------------------------------------------------------------------------


def test_canned_responses_personal_and_shared(agent, client_for):
    other = client_for("agent2", "ADMIN")
    mine = agent.post("/api/canned-responses", {"shortCode": "thanks", "content": "Thank you!"}, format="json")
    assert mine.status_code == 201, mine.json()
    shared = other.post(
        "/api/canned-responses",
        {"shortCode": "refund", "content": "Refunds take 5 days.", "shared": True},
        format="json",
    )
    assert shared.status_code == 201
    assert {c["shortCode"] for c in agent.get("/api/canned-responses").json()} == {"thanks", "refund"}
    assert {c["shortCode"] for c in other.get("/api/canned-responses").json()} == {"refund"}  # not agent1's own
    cid = mine.json()["id"]
    assert other.put(f"/api/canned-responses/{cid}", {"content": "x"}, format="json").status_code == 404
    updated = agent.put(f"/api/canned-responses/{cid}", {"content": "Thanks a lot!"}, format="json")
    assert updated.json()["content"] == "Thanks a lot!"
    assert agent.delete(f"/api/canned-responses/{cid}").status_code == 204
    assert CannedResponse.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"shortCode": "has space", "content": "x"}, "invalid"),
        ({"shortCode": "ok"}, "required"),
        ({"shortCode": "ok", "content": ""}, "blank"),
        ({"shortCode": "ok", "content": "x", "shared": "yes"}, "invalid"),
        ({"shortCode": "x" * 33, "content": "x"}, "max_length"),
    ],
)
def test_bad_canned_responses_are_refused(agent, body, code):
    response = agent.post("/api/canned-responses", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code
    assert not CannedResponse.objects.exists()


def test_canned_responses_are_staff_only_and_codes_unique_per_owner(agent, donor):
    assert donor.get("/api/canned-responses").status_code == 403
    assert donor.post("/api/canned-responses", {"shortCode": "a", "content": "b"}, format="json").status_code == 403
    agent.post("/api/canned-responses", {"shortCode": "a", "content": "b"}, format="json")
    again = agent.post("/api/canned-responses", {"shortCode": "a", "content": "c"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "short_code_taken"
    assert CannedResponse.objects.count() == 1
