"""Files donors and staff attach to a conversation. Portable to django-mongodb-backend (string primary
key, plain fields). The bytes live in the "attachments" storage (settings.STORAGES), under keys derived
from the id alone: a user's file name never becomes a path."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from chatservice.ids import ID_MAX_LENGTH, new_id
from conversations.models import USER_ID_MAX_LENGTH, Conversation, Role

ATTACHMENT_PREFIX = "att_"
NAME_MAX_LENGTH = 200


def new_attachment_id() -> str:
    return new_id(ATTACHMENT_PREFIX)


class Attachment(models.Model):
    id = models.CharField(
        primary_key=True, max_length=ID_MAX_LENGTH, db_column="_id", default=new_attachment_id, editable=False
    )
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    # Who uploaded it: (id, role), never the id alone.
    uploader_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    uploader_role = models.CharField(max_length=8, choices=Role.choices)
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    content_type = models.CharField(max_length=64)  # from the bytes, never from the client
    size = models.PositiveBigIntegerField()  # of the stored file (an image's re-encoded size)
    storage_key = models.CharField(max_length=128)
    thumbnail_key = models.CharField(max_length=128, blank=True, default="")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Set when a FILE message first references it: until then only the uploader may fetch it (an upload
    # is a draft; staff see what was sent, not what a donor picked and then removed).
    shared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["uploader_id", "uploader_role"], name="attachment_uploader_idx"),
            models.Index(fields=["conversation"], name="attachment_conversation_idx"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")
