"""FILE messages that reference an upload (`metadata.attachmentId`): the server, not the client, says what
the file is. Resolved for every transport in messaging.services before anything is stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attachments.links import download_path
from attachments.models import Attachment
from attachments.selectors import AttachmentNotFound
from chatservice.authentication import Principal
from chatservice.errors import ServiceError

REFERENCE_KEY = "attachmentId"
FILE_TYPE = "FILE"  # messaging.models.MessageType.FILE (messaging imports this module)
# What the server fills in from the stored attachment; a client's values for these are replaced.
DESCRIBED_KEYS = ("url", "name", "contentType", "size", "thumbnailUrl", "width", "height")


UNKNOWN_REFERENCE = "metadata.attachmentId names no attachment you uploaded to this conversation."


def reference_of(message_type: str, metadata: Mapping[str, Any]) -> str | None:
    """The upload a message references: a FILE message's metadata.attachmentId (None for anything else)."""
    value = metadata.get(REFERENCE_KEY) if message_type == FILE_TYPE else None
    return value if isinstance(value, str) else None


def describe(attachment: Attachment, *, base_url: str = "") -> dict[str, Any]:
    """The attachment as FILE metadata and upload answers show it; urls are the authenticated download paths.
    Stored in messages they stay relative to the service (no host that could change or be guessed wrong: the
    public URL defaults to localhost); an upload's answer makes them absolute with the request's `base_url`."""
    base = base_url.rstrip("/")
    described: dict[str, Any] = {
        REFERENCE_KEY: attachment.id,
        "url": base + download_path(attachment.id),
        "name": attachment.name,
        "contentType": attachment.content_type,
        "size": attachment.size,
    }
    if attachment.thumbnail_key:
        described["thumbnailUrl"] = base + download_path(attachment.id, "thumbnail")
    if attachment.width is not None:
        described["width"], described["height"] = attachment.width, attachment.height
    return described


def resolve(items: Sequence[tuple[str, Principal, dict[str, Any]]]) -> list[dict[str, Any] | ServiceError | None]:
    """For each (conversation id, sender, metadata) of a FILE message: None when it references no upload,
    else the metadata with the upload described, or the error when the sender cannot reference it (one
    they did not upload, in another conversation, or none at all). One query for all."""
    wanted = {ref for _, _, metadata in items if (ref := reference_of(FILE_TYPE, metadata))}
    found = {a.pk: a for a in Attachment.objects.filter(pk__in=sorted(wanted))} if wanted else {}
    results: list[dict[str, Any] | ServiceError | None] = []
    for conversation_id, sender, metadata in items:
        ref = reference_of(FILE_TYPE, metadata)
        if ref is None:
            results.append(None)
            continue
        attachment = found.get(ref)
        if (
            attachment is None
            or attachment.conversation_id != conversation_id
            or (attachment.uploader_id, attachment.uploader_role) != (sender.user_id, sender.role)
        ):
            results.append(AttachmentNotFound(UNKNOWN_REFERENCE))
            continue
        kept = {k: v for k, v in metadata.items() if k not in DESCRIBED_KEYS}
        results.append({**kept, **describe(attachment)})
    return results
