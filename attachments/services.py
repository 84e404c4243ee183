"""Writes of attachments: accepting an upload, and deleting a person's files on erasure."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.utils import timezone

from attachments import content, images, scanning
from attachments.models import Attachment, new_attachment_id
from chatservice import metrics
from chatservice.authentication import Principal
from chatservice.db import atomic
from chatservice.errors import ConversationClosed, ServiceError
from conversations.models import Conversation, ConversationStatus

logger = logging.getLogger(__name__)


class UploadRefused(ServiceError):
    """An upload refused for what it is; `status_code` is set per case (413, 415, 422)."""

    def __init__(self, detail: str, *, code: str, status_code: int) -> None:
        super().__init__(detail, code=code)
        self.status_code = status_code


# Uploads not yet sent in a message ("drafts") a person may hold from the last DRAFT_WINDOW: a client cannot
# fill the storage with files nobody sees (20 x 10 MiB a day per person at most); an abandoned draft stops
# counting after the window. Sending a draft in a FILE message frees its place at once.
MAX_DRAFTS = 20
DRAFT_WINDOW = timedelta(hours=24)


class TooManyDrafts(ServiceError):
    status_code = 429
    code = "attachment_drafts_limit"
    default_detail = f"You have {MAX_DRAFTS} files uploaded and not sent; send or wait for them before uploading more."


class ScannerDown(ServiceError):
    status_code = 503
    code = "attachment_scanner_unavailable"
    default_detail = "Uploads are paused: the virus scanner cannot be reached. Try again later."


class ImagesBusy(ServiceError):
    status_code = 503
    code = "attachment_busy"
    default_detail = "Too many images are being processed; try again in a moment."


def attachment_storage() -> Storage:
    return storages["attachments"]


@dataclass(frozen=True)
class Upload:
    name: str  # as the client named it
    data: bytes


def max_bytes() -> int:
    return settings.CHAT["ATTACHMENT_MAX_BYTES"]


def too_large(size: int) -> UploadRefused:
    limit = max_bytes()
    return UploadRefused(
        f"The file is larger than {limit} bytes (got {size}).", code="attachment_too_large", status_code=413
    )


def attachment_upload(*, conversation: Conversation, uploader: Principal, upload: Upload) -> Attachment:
    """Check, scan, clean and store an upload to `conversation` by `uploader`, who may see it (the caller
    checked). Nothing is stored unless every check passed; a storage or database failure leaves no file."""
    if conversation.status == ConversationStatus.ARCHIVED:
        raise ConversationClosed("The conversation is archived; nothing can be added to it.")
    drafts = Attachment.objects.filter(
        uploader_id=uploader.user_id,
        uploader_role=uploader.role,
        shared_at__isnull=True,
        created_at__gte=timezone.now() - DRAFT_WINDOW,
    )
    if drafts.count() >= MAX_DRAFTS:
        raise TooManyDrafts()
    data = upload.data
    if len(data) > max_bytes():
        raise too_large(len(data))
    if not data:
        raise UploadRefused("The file is empty.", code="attachment_empty", status_code=400)
    content_type = content.detect(data)
    if content_type is None or content_type not in settings.CHAT["ATTACHMENT_TYPES"]:
        allowed = ", ".join(settings.CHAT["ATTACHMENT_TYPES"])
        raise UploadRefused(
            f"This kind of file is not accepted (its content is checked, not its name). Accepted: {allowed}.",
            code="attachment_type_unsupported",
            status_code=415,
        )
    _scan(data)
    thumbnail, width, height = b"", None, None
    if content_type in images.PILLOW_FORMATS:
        try:
            clean = images.reencode(data, content_type, max_pixels=settings.CHAT["ATTACHMENT_MAX_PIXELS"])
        except images.ImageRefused as exc:
            raise UploadRefused(exc.detail, code=exc.code, status_code=422) from exc
        except images.ImagesBusy as exc:
            raise ImagesBusy() from exc
        data, thumbnail, width, height = clean.data, clean.thumbnail, clean.width, clean.height
    attachment = Attachment(
        id=new_attachment_id(),
        conversation=conversation,
        uploader_id=uploader.user_id,
        uploader_role=uploader.role,
        name=content.clean_name(upload.name, content_type),
        content_type=content_type,
        size=len(data),
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    storage = attachment_storage()
    written: list[str] = []
    try:
        attachment.storage_key = storage.save(f"{attachment.id}/original", ContentFile(data))
        written.append(attachment.storage_key)
        if thumbnail:
            attachment.thumbnail_key = storage.save(f"{attachment.id}/thumbnail.webp", ContentFile(thumbnail))
            written.append(attachment.thumbnail_key)
        with atomic():
            attachment.save(force_insert=True)
    except BaseException:
        _delete_files(storage, written)
        raise
    metrics.attachment_stored(content_type)
    return attachment


def _scan(data: bytes) -> None:
    url = settings.CHAT["CLAMAV_URL"]
    if not url:
        return
    try:
        verdict = scanning.scan(url, data)
    except scanning.ScannerUnavailable as exc:
        logger.error("upload refused, virus scanner unavailable: %s", exc)
        raise ScannerDown() from exc
    if verdict.infected:
        logger.warning("upload refused, infected: %s", verdict.signature)
        raise UploadRefused(
            "The file contains a virus and was not accepted.", code="attachment_infected", status_code=422
        )


def _delete_files(storage: Storage, keys: list[str]) -> None:
    """Best effort, for a failed upload: its files must not outlive it, and nothing else knows of them."""
    for key in keys:
        try:
            storage.delete(key)
        except Exception:
            logger.exception("could not delete attachment file %s", key)


def attachments_erase(*, user_id: str, role: str, dry_run: bool = False) -> int:
    """Delete every attachment `user_id` with `role` uploaded. Each row goes only once its files are gone: a
    storage failure stops the erasure with the row (and so the way to its files) still there, and running it
    again completes it. Returns how many there were."""
    rows = list(Attachment.objects.filter(uploader_id=user_id, uploader_role=role))
    if not dry_run:
        _delete_each(rows)
    return len(rows)


def _delete_each(rows: list[Attachment]) -> None:
    """Each row goes once its files are gone (Storage.delete raises on failure; a missing file is not one)."""
    if not rows:
        return
    storage = attachment_storage()
    for attachment in rows:
        for key in (attachment.storage_key, attachment.thumbnail_key):
            if key:
                storage.delete(key)
        Attachment.objects.filter(pk=attachment.pk).delete()


def attachments_delete(*, attachment_ids: set[str]) -> None:
    """Delete these attachments, files first (a storage failure raises with the rows still there, so a retry
    completes it), for a message that became a tombstone."""
    _delete_each(list(Attachment.objects.filter(pk__in=sorted(attachment_ids))))


def mark_shared(attachment_ids: set[str]) -> None:
    """Messages referencing these were stored in the current transaction: participants may fetch them now."""
    if attachment_ids:
        Attachment.objects.filter(pk__in=sorted(attachment_ids), shared_at__isnull=True).update(
            shared_at=timezone.now()
        )
