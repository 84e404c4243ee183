"""Reads of CSAT: averages for chat_stats and the console."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Avg, Count

from csat.models import CsatResponse


@dataclass(frozen=True)
class CsatStats:
    count: int
    average: float | None
    by_agent: dict[str, tuple[int, float]]  # agent id -> (ratings, average); "" for nobody assigned


def csat_stats() -> CsatStats:
    overall = CsatResponse.objects.aggregate(n=Count("id"), avg=Avg("rating"))
    by_agent = {
        row["agent_id"] or "": (row["n"], float(row["avg"]))
        for row in CsatResponse.objects.order_by().values("agent_id").annotate(n=Count("id"), avg=Avg("rating"))
    }
    average = float(overall["avg"]) if overall["avg"] is not None else None
    return CsatStats(overall["n"], average, by_agent)


def csat_by_agent(agent_ids: Iterable[str]) -> dict[str, tuple[int, float]]:
    """(ratings, average) of each agent that has any, in one grouped query (the console's team list)."""
    ids = list(agent_ids)
    if not ids:
        return {}
    rows = (
        CsatResponse.objects.filter(agent_id__in=ids)
        .order_by()
        .values("agent_id")
        .annotate(n=Count("id"), avg=Avg("rating"))
    )
    return {row["agent_id"]: (row["n"], float(row["avg"])) for row in rows}
