"""Writes of the job system: record a job with the change that needs it, run one, replay a dead one."""

from __future__ import annotations

import logging
import random
import traceback
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from jobs.models import Job, JobStatus
from jobs.registry import KINDS

logger = logging.getLogger(__name__)

# The longest wait between two attempts, whatever the attempt number.
MAX_BACKOFF_S = 6 * 3600
# Characters of an error kept on the row (the traceback's last lines).
ERROR_MAX_CHARS = 2000
# A job whose ordering key has an earlier job still pending or running is started by that one when it
# ends (_start_next); this later look is only the safety net (a runner lost meanwhile), so it is long:
# a short one had the sweep claim and put back every waiting job over and over.
ORDER_WAIT_S = 60.0
WAITING = "WAITING"  # job_run's answer for a job put back behind an earlier one of its key


def backoff_s(attempt: int, *, base_s: float | None = None) -> float:
    """The wait after failed attempt number `attempt` (1, 2, ...): exponential with full jitter in its upper
    half, so retries of many jobs that failed together spread out instead of returning together."""
    base = settings.CHAT["JOB_RETRY_BASE_S"] if base_s is None else base_s
    ceiling = min(base * 2 ** (attempt - 1), MAX_BACKOFF_S)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - spreading retries, not a secret


def job_enqueue(*, kind: str, payload: dict[str, Any], run_at: datetime | None = None, ordering_key: str = "") -> Job:
    """Record a job. Call it inside the transaction of the change that needs it: the row commits or rolls
    back with the change, and the runner is told once it committed (a sweep covers a lost notice)."""
    return jobs_enqueue([(kind, payload, ordering_key)], run_at=run_at)[0]


def jobs_enqueue(items: list[tuple[str, dict[str, Any], str]], *, run_at: datetime | None = None) -> list[Job]:
    """job_enqueue for several (kind, payload, ordering key) at once: one insert."""
    now = timezone.now()
    jobs = Job.objects.bulk_create(
        Job(
            kind=kind,
            payload=payload,
            ordering_key=key,
            max_attempts=KINDS[kind].max_attempts,  # an unknown kind is a programming error: fail here
            run_at=run_at or now,
            created_at=now,
            updated_at=now,
        )
        for kind, payload, key in items
    )
    if (run_at or now) <= now:
        from jobs.runner import dispatch

        for job in jobs:
            transaction.on_commit(partial(dispatch, job.pk))
    return jobs


def _behind_earlier(job: Job) -> bool:
    """Whether an earlier job of the same ordering key is still to be done (a dead one does not block)."""
    if not job.ordering_key:
        return False
    earlier = Q(created_at__lt=job.created_at) | Q(created_at=job.created_at, id__lt=job.pk)
    return (
        Job.objects.filter(earlier, ordering_key=job.ordering_key, status__in=[JobStatus.PENDING, JobStatus.RUNNING])
        .exclude(pk=job.pk)
        .exists()
    )


def _claim(job_id: str, now: datetime) -> bool:
    """Take the job if it is due, or if its runner's lease lapsed: one conditional write decides between
    runners (a duplicate notice, the sweep, a Celery redelivery)."""
    due = Q(status=JobStatus.PENDING, run_at__lte=now) | Q(status=JobStatus.RUNNING, lease_until__lt=now)
    return bool(
        Job.objects.filter(due, pk=job_id).update(
            status=JobStatus.RUNNING,
            lease_until=now + timedelta(seconds=settings.CHAT["JOB_LEASE_S"]),
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    )


def job_run(job_id: str) -> str:
    """Run the job if it is due and nobody else holds it; returns its status afterwards ("" when it was
    not taken). The handler runs outside any transaction: it may wait on the network."""
    now = timezone.now()
    if not _claim(job_id, now):
        return ""
    job = Job.objects.get(pk=job_id)
    if _behind_earlier(job):
        # Not an attempt: it goes back, due again shortly (and run at once when the earlier one is done).
        Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.PENDING,
            attempts=F("attempts") - 1,
            lease_until=None,
            run_at=now + timedelta(seconds=ORDER_WAIT_S),
            updated_at=now,
        )
        if not _behind_earlier(job):
            # The earlier one finished while this one was held, and found nothing pending to start.
            Job.objects.filter(pk=job.pk, status=JobStatus.PENDING).update(run_at=timezone.now())
            from jobs.runner import dispatch

            dispatch(job.pk)
        return WAITING
    kind = KINDS.get(job.kind)
    try:
        if kind is None:
            raise LookupError(f"no handler for job kind {job.kind!r}")
        kind.handler(job)
    except Exception as exc:
        return _failed(job, exc)
    Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        status=JobStatus.DONE, lease_until=None, last_error="", finished_at=timezone.now(), updated_at=timezone.now()
    )
    _start_next(job)
    return JobStatus.DONE


def _start_next(job: Job) -> None:
    """The next job of the same ordering key, if it never ran and only waited for this one: now."""
    if not job.ordering_key:
        return
    following = (
        Job.objects.filter(ordering_key=job.ordering_key, status=JobStatus.PENDING)
        .order_by("created_at", "id")
        .values_list("id", "attempts")
        .first()
    )
    if following is None or following[1] > 0:
        return  # a retry keeps its backoff
    if Job.objects.filter(pk=following[0], status=JobStatus.PENDING).update(run_at=timezone.now()):
        from jobs.runner import dispatch

        dispatch(following[0])


def _failed(job: Job, exc: Exception) -> str:
    error = "".join(traceback.format_exception_only(type(exc), exc)).strip()[-ERROR_MAX_CHARS:]
    now = timezone.now()
    if job.attempts >= job.max_attempts:
        logger.warning("job %s (%s) is dead after %d attempts: %s", job.pk, job.kind, job.attempts, error)
        fields: dict[str, Any] = {"status": JobStatus.DEAD, "finished_at": now}
    else:
        delay = backoff_s(job.attempts)
        logger.info("job %s (%s) failed, attempt %d, retry in %.0f s: %s", job.pk, job.kind, job.attempts, delay, error)
        fields = {"status": JobStatus.PENDING, "run_at": now + timedelta(seconds=delay)}
    Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        lease_until=None, last_error=error, updated_at=now, **fields
    )
    if fields["status"] == JobStatus.DEAD:
        _start_next(job)
    return fields["status"]


def job_replay(*, job: Job) -> bool:
    """A DEAD job runs again from its first attempt (staff in admin). Returns whether it was dead."""
    now = timezone.now()
    with transaction.atomic():
        replayed = Job.objects.filter(pk=job.pk, status=JobStatus.DEAD).update(
            status=JobStatus.PENDING, attempts=0, run_at=now, finished_at=None, updated_at=now
        )
        if replayed:
            from jobs.runner import dispatch

            transaction.on_commit(partial(dispatch, job.pk))
    return bool(replayed)
