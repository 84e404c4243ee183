"""The conversation JSON is built by conversations.rendering (fast) and described by
ConversationSerializer (the schema): the two must never drift apart."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chatservice.authentication import Principal
from conversations import services
from conversations.models import Conversation, Role
from conversations.rendering import render_conversations
from conversations.selectors import _with_participants, latest_previewable_of
from conversations.serializers import ConversationSerializer
from tests.helpers import ADMIN, USER, send

pytestmark = pytest.mark.django_db


def via_serializer(conversations, viewer, role):
    context = {"principal": viewer, "role": role, "last_messages": latest_previewable_of(conversations, role=role)}
    return [dict(item) for item in ConversationSerializer(conversations, many=True, context=context).data]


@pytest.mark.parametrize("viewer", [USER, ADMIN, Principal("agent9", "ADMIN"), None])
def test_the_fast_rendering_equals_the_serializer(conversation, viewer):
    services.conversation_assign(conversation=conversation, actor=ADMIN, admin_id="agent1")
    send(conversation, "question")
    send(conversation, "internal", sender=ADMIN, message_type="NOTE")
    services.conversation_update(
        conversation=conversation,
        actor=ADMIN,
        labels=["vip"],
        priority="HIGH",
        snoozed_until=timezone.now() + timedelta(hours=1),
    )
    empty = services.conversation_create(creator=Principal("u2", "USER"))
    rows = list(_with_participants(Conversation.objects.filter(pk__in=[conversation.pk, empty.pk])))
    role = viewer.role if viewer else Role.USER
    assert render_conversations(rows, viewer=viewer, role=role) == via_serializer(rows, viewer, role)
