"""Moving everything a person did in the chat from one id to another, keeping their role.

Used when console staff identities were namespaced (`maria` became `staff:maria`, identity migration
0002) and when an operator links a console account to its Auth Service subject (`staff:maria` becomes
`agent-maria`, identity.services). Takes the model classes as arguments, so a migration can pass its
historical models.

What moves, for (old id, role) to (new id, role):
- participations (if the new id already takes part in the conversation with that role, the two merge:
  the furthest read watermark wins and a staff row stops counting twice in admin_count; if the new id
  takes part with the *other* role, the old row stays, as one id has one row per conversation);
- messages they sent (an idempotency key that the new id already used in that conversation is cleared);
- SYSTEM notices the services generated that name them ("maria joined the conversation");
- conversations they created, when the creator's participation is theirs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F

# The events of SYSTEM notices that name people as whole words (conversations.services).
# STATUS_CHANGED_EVENT and ASSIGNED_EVENT of conversations.services, spelled out here because a migration
# imports this module and must not change with the services.
NAMING_EVENTS = frozenset({"status_changed", "assigned", "unassigned"})
# Rows per query while scanning notices: bounded memory on a large conversation.
SCAN_BATCH = 500


@dataclass
class Renamed:
    participations: int = 0
    merged: int = 0  # participations folded into the new id's existing one
    messages: int = 0
    notices: int = 0
    conversations_created: int = 0
    attachments: int = 0
    conversation_ids: set[str] = field(default_factory=set)


def replace_whole_word(value: Any, old: str, new: str) -> Any:
    """`value` with every string equal to `old` (and, in text, every whitespace-delimited occurrence of
    it) replaced by `new`; other text is left as it is."""
    if isinstance(value, dict):
        return {key: replace_whole_word(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_whole_word(item, old, new) for item in value]
    if isinstance(value, str):
        return re.sub(rf"(?<!\S){re.escape(old)}(?!\S)", new, value)
    return value


def rename_person(
    *,
    old: str,
    new: str,
    role: str,
    conversation_model: Any,
    participant_model: Any,
    message_model: Any,
    attachment_model: Any = None,
) -> Renamed:
    """Move (old, role) to (new, role) everywhere, their uploads included (`attachment_model`: None for the
    migration that ran before attachments existed). Run inside a transaction."""
    done = Renamed()
    if old == new:
        return done
    for participant in list(participant_model.objects.filter(user_id=old, role=role)):
        existing = participant_model.objects.filter(conversation_id=participant.conversation_id, user_id=new).first()
        done.conversation_ids.add(participant.conversation_id)
        if existing is None:
            participant_model.objects.filter(pk=participant.pk).update(user_id=new)
            done.participations += 1
        elif existing.role == role:
            if participant.last_read_seq > existing.last_read_seq:
                participant_model.objects.filter(pk=existing.pk).update(
                    last_read_seq=participant.last_read_seq, last_read_at=participant.last_read_at
                )
            participant_model.objects.filter(pk=participant.pk).delete()
            if role == "ADMIN":
                conversation_model.objects.filter(pk=participant.conversation_id, admin_count__gt=0).update(
                    admin_count=F("admin_count") - 1
                )
            done.merged += 1

    sent = message_model.objects.filter(sender_id=old, sender_role=role)
    taken = set(
        message_model.objects.filter(sender_id=new, sender_role=role, client_message_id__gt="").values_list(
            "conversation_id", "client_message_id"
        )
    )
    for message in list(sent.only("pk", "conversation_id", "client_message_id")):
        changes: dict[str, Any] = {"sender_id": new}
        if message.client_message_id and (message.conversation_id, message.client_message_id) in taken:
            changes["client_message_id"] = None
        message_model.objects.filter(pk=message.pk).update(**changes)
        done.conversation_ids.add(message.conversation_id)
        done.messages += 1

    # Notices naming them are in conversations they took part in or wrote to (assignments make the
    # assignee a participant; status changes are written by their actor): no JSON query needed.
    for conversation_id in sorted(done.conversation_ids):
        notices = message_model.objects.filter(conversation_id=conversation_id, message_type="SYSTEM")
        last = ""
        while True:
            batch = list(notices.filter(pk__gt=last).order_by("pk")[:SCAN_BATCH])
            for notice in batch:
                metadata = notice.metadata if isinstance(notice.metadata, dict) else {}
                if metadata.get("event") not in NAMING_EVENTS:
                    continue
                content = replace_whole_word(notice.content, old, new)
                renamed_metadata = replace_whole_word(metadata, old, new)
                if (content, renamed_metadata) != (notice.content, metadata):
                    message_model.objects.filter(pk=notice.pk).update(content=content, metadata=renamed_metadata)
                    done.notices += 1
            if len(batch) < SCAN_BATCH:
                break
            last = batch[-1].pk

    created = conversation_model.objects.filter(created_by=old, pk__in=done.conversation_ids)
    for conversation in list(created.only("pk")):
        if participant_model.objects.filter(conversation_id=conversation.pk, user_id=new, role=role).exists():
            conversation_model.objects.filter(pk=conversation.pk).update(created_by=new)
            done.conversations_created += 1
    if attachment_model is not None:
        done.attachments = attachment_model.objects.filter(uploader_id=old, uploader_role=role).update(uploader_id=new)
    return done
