"""Exports as actions: what staff and operators export is recorded in the audit log before it streams."""

from __future__ import annotations

from audit.models import AuditAction, AuditTarget
from audit.services import audit_record
from chatservice.authentication import Principal
from conversations.models import Conversation


def user_export_recorded(*, person: Principal, actor: Principal | None) -> None:
    """An export of `person`'s data: by staff for themselves, or by an operator (actor None). A donor's
    export of their own data is not a staff action and is not recorded."""
    if actor is not None and not actor.is_admin:
        return
    audit_record(
        actor=actor,
        action=AuditAction.USER_EXPORT,
        target_type=AuditTarget.USER,
        target_id=f"{person.role}:{person.user_id}",
        details={"userId": person.user_id, "role": person.role},
    )


def transcript_recorded(*, conversation: Conversation, actor: Principal, format: str, notes: bool) -> None:
    audit_record(
        actor=actor,
        action=AuditAction.CONVERSATION_EXPORT,
        target_type=AuditTarget.CONVERSATION,
        target_id=conversation.pk,
        details={"format": format, "notes": notes},
    )
