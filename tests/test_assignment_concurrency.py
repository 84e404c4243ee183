"""Auto-assignment under concurrency: many conversations arriving at once, assigned by concurrent
writers (threads with their own database connections, as two workers would be), never give an agent
more open conversations than their capacity, and never give one conversation to two agents."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from chatservice.authentication import Principal
from conversations import services as conversation_services
from conversations.models import Conversation, Participant
from desk import assignment
from desk.models import AgentProfile

pytestmark = pytest.mark.django_db(transaction=True)

WRITERS = 8


def run_concurrently(work, count: int) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_new_conversations_never_overfill_an_agent():
    now = timezone.now()
    AgentProfile.objects.create(agent_id="agent1", availability="ONLINE", capacity=2, last_seen_at=now)
    AgentProfile.objects.create(agent_id="agent2", availability="ONLINE", capacity=1, last_seen_at=now)
    errors = run_concurrently(
        lambda i: conversation_services.conversation_create(creator=Principal(f"donor{i}", "USER"), subject=str(i)),
        WRITERS,
    )
    assert errors == []
    assigned = list(Participant.objects.filter(role="ADMIN", assigned=True).values_list("user_id", "conversation_id"))
    per_agent = {agent: sum(1 for a, _ in assigned if a == agent) for agent in ("agent1", "agent2")}
    assert per_agent == {"agent1": 2, "agent2": 1}
    assert len({c for _, c in assigned}) == 3  # one agent per conversation
    assert Conversation.objects.filter(admin_count=0).count() == WRITERS - 3
    assert sorted(Conversation.objects.values_list("admin_count", flat=True)) == [0] * (WRITERS - 3) + [1] * 3


def test_concurrent_drains_assign_each_waiting_conversation_once():
    for i in range(WRITERS):
        conversation_services.conversation_create(creator=Principal(f"donor{i}", "USER"), subject=str(i))
    AgentProfile.objects.create(agent_id="agent1", availability="ONLINE", capacity=3, last_seen_at=timezone.now())
    errors = run_concurrently(lambda i: assignment.drain_queue(), 4)
    assert errors == []
    assert Participant.objects.filter(user_id="agent1", assigned=True).count() == 3
    assert Conversation.objects.filter(admin_count=1).count() == 3
