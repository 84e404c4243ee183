"""The audit log: an append-only, hash-chained record of what support staff and operators did.

Invariants:
- Records are numbered 1, 2, 3, … (`seq`) in commit order, with no gaps: every append first updates
  the one AuditHead row, whose write lock orders appends (audit.services).
- A record's `hash` covers its contents and `prev_hash`, the hash of record seq - 1 (GENESIS_HASH for
  record 1; audit.chain). A record changed, removed, inserted or moved breaks the chain there, which
  `manage.py audit_verify` reports (audit.selectors.chain_verify).
- Nothing in the service changes or deletes a record: the model and its QuerySet refuse with
  ImmutableRecord, and the admin is read-only. Only direct database access can, and the chain shows it.

Portable to MongoDB like the chat models: string keys in `_id`, plain fields and JSONField.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models
from django.utils.translation import gettext_lazy as _

from audit.chain import GENESIS_HASH
from chatservice.ids import ID_MAX_LENGTH, new_id
from conversations.models import USER_ID_MAX_LENGTH

AUDIT_PREFIX = "aud_"
HASH_LENGTH = 64
TARGET_ID_MAX_LENGTH = 200
# The primary key of the one AuditHead row.
HEAD_ID = "chain"


def new_audit_id() -> str:
    return new_id(AUDIT_PREFIX)


class AuditAction(models.TextChoices):
    """What was done. Other parts of the service record with these names (audit.services.audit_record);
    a new kind of action gets a name here first."""

    CONVERSATION_ASSIGN = "conversation.assign", _("Conversation assigned")
    CONVERSATION_UNASSIGN = "conversation.unassign", _("Conversation unassigned")
    CONVERSATION_TRANSFER = "conversation.transfer", _("Conversation transferred")
    CONVERSATION_STATUS = "conversation.status", _("Conversation status changed")
    CONVERSATION_SNOOZE = "conversation.snooze", _("Conversation snoozed or woken")
    # The first time a staff member opens a conversation on a (UTC) day.
    CONVERSATION_READ = "conversation.read", _("Conversation opened")
    NOTE_CREATE = "note.create", _("Internal note written")
    MESSAGE_DELETE = "message.delete", _("Message deleted by staff")
    CONVERSATION_EXPORT = "conversation.export", _("Conversation exported")
    USER_EXPORT = "user.export", _("User data exported")
    USER_ERASE = "user.erase", _("User erased")
    RETENTION_PURGE = "retention.purge", _("Retention purge")
    WEBHOOK_CREATE = "webhook.create", _("Webhook endpoint created")
    WEBHOOK_UPDATE = "webhook.update", _("Webhook endpoint changed")
    WEBHOOK_DELETE = "webhook.delete", _("Webhook endpoint deleted")
    AUDIT_EXPORT = "audit.export", _("Audit log exported")


class AuditTarget(models.TextChoices):
    """What an action was done to; the record's target_id names which one."""

    CONVERSATION = "conversation", _("Conversation")
    MESSAGE = "message", _("Message")
    USER = "user", _("User")
    WEBHOOK_ENDPOINT = "webhook_endpoint", _("Webhook endpoint")
    RETENTION = "retention", _("Retention policy")
    AUDIT_LOG = "audit_log", _("Audit log")


class ActorRole(models.TextChoices):
    """Who acted: a person is an id and a role (chatservice.authentication.Principal); OPERATOR is a
    management command or a schedule, with no person's id (its details name the command)."""

    USER = "USER", _("Donor")
    ADMIN = "ADMIN", _("Staff")
    OPERATOR = "OPERATOR", _("Operator")


class ImmutableRecord(Exception):
    """An attempt to change or delete an audit record through the ORM."""

    def __init__(self, what: str = "changed or deleted") -> None:
        super().__init__(f"Audit records are append-only: they cannot be {what}.")


class AuditRecordQuerySet(models.QuerySet["AuditRecord"]):
    """Reads only: every bulk write but insertion refuses."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise ImmutableRecord("updated")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> NoReturn:
        raise ImmutableRecord("updated")

    def delete(self) -> NoReturn:
        raise ImmutableRecord("deleted")

    delete.queryset_only = True  # type: ignore[attr-defined] # as QuerySet.delete: not on the manager

    def update_or_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImmutableRecord("updated")


class AuditRecord(models.Model):
    id = models.CharField(
        _("record id"),
        primary_key=True,
        max_length=ID_MAX_LENGTH,
        db_column="_id",
        default=new_audit_id,
        editable=False,
    )
    seq = models.PositiveBigIntegerField(_("number"), unique=True, editable=False)
    created_at = models.DateTimeField(_("time"), editable=False)
    actor_id = models.CharField(_("actor"), max_length=USER_ID_MAX_LENGTH, blank=True, editable=False)
    actor_role = models.CharField(_("actor role"), max_length=8, choices=ActorRole.choices, editable=False)
    action = models.CharField(_("action"), max_length=40, choices=AuditAction.choices, editable=False)
    target_type = models.CharField(_("target type"), max_length=32, choices=AuditTarget.choices, editable=False)
    target_id = models.CharField(_("target"), max_length=TARGET_ID_MAX_LENGTH, blank=True, editable=False)
    details = models.JSONField(_("details"), default=dict, blank=True, editable=False)
    prev_hash = models.CharField(_("previous hash"), max_length=HASH_LENGTH, editable=False)
    hash = models.CharField(_("hash"), max_length=HASH_LENGTH, editable=False)

    objects = AuditRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]  # newest first, on the unique index
        verbose_name = _("audit record")
        verbose_name_plural = _("audit records")
        indexes = [
            # A target's history (admin search), and the daily check for a staff member's first read.
            models.Index(fields=["target_id", "action", "created_at"], name="audit_target_idx"),
            models.Index(fields=["action", "created_at"], name="audit_action_idx"),
            models.Index(fields=["actor_id", "created_at"], name="audit_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.get_action_display()}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ImmutableRecord("changed")
        kwargs["force_insert"] = True  # never an UPDATE, even with an existing id
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImmutableRecord("deleted")


class AuditHead(models.Model):
    """The chain's one head row: the number and hash of the latest record. Appends update it first,
    which orders them (the row lock on PostgreSQL, the database lock on SQLite, a write conflict that
    retries on MongoDB); `audit_verify` checks the newest record against it, so removing records from
    the end of the chain shows too."""

    id = models.CharField(primary_key=True, max_length=16, db_column="_id", default=HEAD_ID)
    seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=HASH_LENGTH, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"#{self.seq} {self.last_hash[:12]}"
