"""Reactions: emoji from the configured set (CHAT_REACTIONS), at most one of each per person.

Stored on the message as a summary, `[{"emoji": e, "users": [[role, userId], ...]}]` in order of first use,
so a page of history renders its reactions without another query. A person is role *and* id: a donor and
a staff member with the same id are two reactions. Changes are read-modify-write under the conversation's
change lock (messaging.changes), so two people reacting at once both count.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from chatservice.errors import ServiceError

# "❤" and "❤️" (with the emoji variation selector) are the same reaction; clients send either.
VARIATION_SELECTOR = "\ufe0f"


class ReactionNotAllowed(ServiceError):
    code = "reaction_not_allowed"

    def __init__(self) -> None:
        super().__init__(f"Reactions must be one of: {' '.join(settings.CHAT['REACTIONS'])}.")


def allowed_reaction(emoji: str) -> str:
    """The configured form of `emoji`, or ReactionNotAllowed."""
    for allowed in settings.CHAT["REACTIONS"]:
        if emoji in (allowed, allowed.replace(VARIATION_SELECTOR, "")) or allowed == emoji + VARIATION_SELECTOR:
            return allowed
    raise ReactionNotAllowed()


def with_reaction(
    summary: list[dict[str, Any]], emoji: str, who: tuple[str, str], *, on: bool
) -> list[dict[str, Any]] | None:
    """The summary with `who`'s `emoji` added (on) or removed; None when that changes nothing."""
    person = list(who)
    out: list[dict[str, Any]] = []
    changed = False
    present = False
    for reaction in summary:
        users = reaction["users"]
        if reaction["emoji"] == emoji:
            present = True
            if on and person not in users:
                users, changed = [*users, person], True
            elif not on and person in users:
                users, changed = [u for u in users if u != person], True
        if users:
            out.append({"emoji": reaction["emoji"], "users": users})
    if on and not present:
        out.append({"emoji": emoji, "users": [person]})
        changed = True
    return out if changed else None
