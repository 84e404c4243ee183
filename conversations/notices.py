"""The text of the SYSTEM notices services record (assignments, status changes).

A notice's text is rendered from its metadata, which keeps both the ids (for staff tools, erasure and
renaming) and the display names it was written with; donors read the text, so it names staff by display
name only, never by username. Erasure re-renders it from the rewritten metadata.
"""

from __future__ import annotations

from typing import Any

STATUS_CHANGED_EVENT = "status_changed"
ASSIGNED_EVENT = "assigned"
UNASSIGNED_EVENT = "unassigned"
# The close notice asks the donor to rate the conversation (metadata.kind): donor pages show the rating
# form on it, live or from the history.
CSAT_REQUEST_KIND = "csat_request"

# How an assignment came about (metadata "how").
SELF, MANUAL, AUTO, TRANSFER = "self", "manual", "auto", "transfer"


def assigned_metadata(*, admin_id: str, admin_name: str, actor_name: str, how: str) -> dict[str, Any]:
    return {"event": ASSIGNED_EVENT, "adminId": admin_id, "adminName": admin_name, "actorName": actor_name, "how": how}


def unassigned_metadata(*, admin_id: str, admin_name: str, actor_name: str, by_self: bool) -> dict[str, Any]:
    return {
        "event": UNASSIGNED_EVENT,
        "adminId": admin_id,
        "adminName": admin_name,
        "actorName": actor_name,
        "how": SELF if by_self else MANUAL,
    }


def status_metadata(*, status: str, actor_name: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    csat = {"kind": CSAT_REQUEST_KIND} if status == "CLOSED" else {}
    return {"event": STATUS_CHANGED_EVENT, "status": status, "actorName": actor_name, **csat, **(details or {})}


def notice_text(metadata: dict[str, Any], *, reason: str = "") -> str | None:
    """The text of a notice with this metadata, or None for metadata written before names were kept."""
    event, actor = metadata.get("event"), metadata.get("actorName")
    if actor is None:
        return None
    if event == STATUS_CHANGED_EVENT:
        status = str(metadata.get("status", ""))
        text = f"Conversation {'reopened' if status == 'ACTIVE' else status.lower()} by {actor}"
        reason = reason or metadata.get("reasonText", "")
        return text + (f" ({reason})" if reason else "")
    admin = metadata.get("adminName")
    how = metadata.get("how")
    if event == ASSIGNED_EVENT:
        return {
            SELF: f"{admin} joined the conversation",
            AUTO: f"{admin} was assigned automatically",
            TRANSFER: f"{actor} transferred the conversation to {admin}",
        }.get(how, f"{admin} was assigned by {actor}")
    if event == UNASSIGNED_EVENT:
        return f"{admin} left the conversation" if how == SELF else f"{admin} was unassigned by {actor}"
    return None


def rename_in_notice(
    metadata: dict[str, Any], *, old_id: str, new_id: str, new_name: str, sender_was_old: bool
) -> dict[str, Any]:
    """The metadata of a notice once `old_id` became `new_id` called `new_name` (erasure)."""
    renamed = dict(metadata)
    if renamed.get("adminId") == old_id:
        renamed["adminId"], renamed["adminName"] = new_id, new_name
    if sender_was_old and "actorName" in renamed:
        renamed["actorName"] = new_name
    return renamed
