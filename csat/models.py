"""Satisfaction ratings (CSAT): a donor rates a conversation once per closing."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from chatservice.ids import ID_MAX_LENGTH, new_id
from conversations.models import USER_ID_MAX_LENGTH, Conversation

CSAT_PREFIX = "csat_"
COMMENT_MAX_LENGTH = 1000
RATING_MIN, RATING_MAX = 1, 5


def new_csat_id() -> str:
    return new_id(CSAT_PREFIX)


class CsatResponse(models.Model):
    id = models.CharField(primary_key=True, max_length=ID_MAX_LENGTH, db_column="_id", default=new_csat_id)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="csat_responses")
    # The closing rated (the conversation's closed_at then): one rating per closing, by the unique index.
    closed_at = models.DateTimeField()
    rating = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True, default="")
    donor_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    # The agent the conversation was last assigned to (per-agent averages); None when nobody was.
    agent_id = models.CharField(max_length=USER_ID_MAX_LENGTH, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["conversation", "closed_at"], name="csat_once_per_closing")]

    def __str__(self) -> str:
        return f"{self.rating}/5 {self.conversation_id}"
