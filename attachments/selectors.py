"""Who may fetch an attachment. Everyone else gets the same 404 as for an id that does not exist."""

from __future__ import annotations

from attachments.models import Attachment
from chatservice.authentication import Principal
from chatservice.errors import NotFound
from conversations.selectors import conversation_access


class AttachmentNotFound(NotFound):
    code = "attachment_not_found"
    default_detail = "Attachment not found."


def attachment_by_id(attachment_id: str) -> Attachment:
    """Any attachment: for a signed link, whose signature is the authority."""
    attachment = Attachment.objects.filter(pk=attachment_id).first()
    if attachment is None:
        raise AttachmentNotFound()
    return attachment


def attachment_get(*, viewer: Principal, attachment_id: str) -> Attachment:
    """The attachment if `viewer` may fetch it: its uploader (id and role) always; once a FILE message
    shared it, staff and the conversation's participants."""
    attachment = attachment_by_id(attachment_id)
    if (attachment.uploader_id, attachment.uploader_role) == (viewer.user_id, viewer.role):
        return attachment
    if (
        attachment.shared_at is not None
        and conversation_access(viewer=viewer, conversation_id=attachment.conversation_id).allowed
    ):
        return attachment
    raise AttachmentNotFound()
