"""manage.py chat_stats [--json]"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from conversations.selectors import ChatStats, Durations, chat_stats
from csat.selectors import CsatStats
from realtime.events import iso


class Command(BaseCommand):
    help = (
        "Print conversations by status, the total number of messages, the unassigned queue (ACTIVE "
        "conversations nobody is assigned to) and its oldest conversation with its age, and the p50, p90 "
        "and p99 of first-response and resolution times. "
        "--json prints one JSON object (camelCase, like the API) for machines."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", dest="as_json", help="print one JSON object instead of text")

    def handle(self, *args: Any, as_json: bool, **options: Any) -> None:
        from csat.selectors import csat_stats

        stats, ratings = chat_stats(), csat_stats()
        self.stdout.write(render_json(stats, ratings) if as_json else render_text(stats, ratings))


def render_json(stats: ChatStats, ratings: CsatStats) -> str:
    oldest = stats.oldest_unassigned
    return json.dumps(
        {
            "conversations": {"total": stats.conversations, "byStatus": stats.by_status},
            "messages": stats.messages,
            "unassignedActive": stats.unassigned_active,
            "firstResponseSeconds": durations_json(stats.first_response),
            "resolutionSeconds": durations_json(stats.resolution),
            "oldestUnassigned": oldest
            and {
                "conversationId": oldest.conversation_id,
                "createdAt": iso(oldest.created_at),
                "ageSeconds": int(oldest.age.total_seconds()),
            },
            "csat": {
                "count": ratings.count,
                "average": ratings.average,
                "byAgent": {agent: {"count": n, "average": avg} for agent, (n, avg) in ratings.by_agent.items()},
            },
        }
    )


def ratings_text(count: int, average: float | None) -> str:
    return f"{count} rating{'' if count == 1 else 's'}" + (f", average {average:.2f}" if average is not None else "")


def render_text(stats: ChatStats, ratings: CsatStats) -> str:
    statuses = ", ".join(f"{status} {count}" for status, count in stats.by_status.items())
    oldest = stats.oldest_unassigned
    lines = [
        f"Conversations: {stats.conversations} ({statuses})",
        f"Messages: {stats.messages}",
        f"Unassigned ACTIVE conversations: {stats.unassigned_active}",
        "Oldest unassigned: "
        + (
            f"{oldest.conversation_id}, opened {format_age(oldest.age)} ago ({iso(oldest.created_at)})"
            if oldest
            else "none"
        ),
        "First response: " + durations_text(stats.first_response),
        "Resolution: " + durations_text(stats.resolution),
        "CSAT: " + ratings_text(ratings.count, ratings.average),
        *(
            f"  {agent or '(nobody assigned)'}: {ratings_text(n, average)}"
            for agent, (n, average) in sorted(ratings.by_agent.items())
        ),
    ]
    return "\n".join(lines)


def durations_json(found: Durations) -> dict[str, Any]:
    return {"count": found.count, **{f"p{p}": round(found.seconds[p]) for p in found.seconds}}


def durations_text(found: Durations) -> str:
    if not found.count:
        return "none yet"
    shown = ", ".join(f"p{p} {format_age(timedelta(seconds=s))}" for p, s in found.seconds.items())
    return f"{shown} (over {found.count} conversations)"


def format_age(delta: timedelta) -> str:
    """The two largest non-zero units, e.g. '3d 4h', '2h 5m', '42s': enough to judge a queue at a glance."""
    seconds = max(int(delta.total_seconds()), 0)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])
