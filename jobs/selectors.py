"""Reads of the job system."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from jobs.models import Job, JobStatus

# Jobs the sweep hands out per pass: bounded work per tick; the rest go on the next one.
SWEEP_BATCH = 500


def _due(now: datetime) -> Q:
    return Q(status=JobStatus.PENDING, run_at__lte=now) | Q(status=JobStatus.RUNNING, lease_until__lt=now)


def jobs_due(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> list[str]:
    """Ids of jobs that should be running and are not: due ones never picked up and lapsed leases."""
    now = now or timezone.now()
    return list(Job.objects.filter(_due(now)).order_by("run_at", "id").values_list("id", flat=True)[:limit])


def queue_lateness_s(*, now: datetime | None = None) -> float:
    """How late the oldest due job is, in seconds (0 when nothing is due): the health of the runner."""
    now = now or timezone.now()
    pending = (
        Job.objects.filter(status=JobStatus.PENDING, run_at__lte=now)
        .order_by("run_at")
        .values_list("run_at", flat=True)
    )
    lapsed = (
        Job.objects.filter(status=JobStatus.RUNNING, lease_until__lt=now)
        .order_by("lease_until")
        .values_list("lease_until", flat=True)
    )
    oldest = [moment for moment in (pending.first(), lapsed.first()) if moment is not None]
    return max(0.0, (now - min(oldest)).total_seconds()) if oldest else 0.0
