"""The durable job outbox: work a committed change requires, recorded in the change's transaction.

A row is written with the change (same transaction, every backend, MongoDB included), so nothing is lost
between commit and enqueue: the runner is told after commit, and a sweep finds any row it never picked
up (a crash, a lost broker message). Portable: string key, plain fields, JSON payload.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from chatservice.ids import ID_MAX_LENGTH, new_id

JOB_PREFIX = "job_"


def new_job_id() -> str:
    return new_id(JOB_PREFIX)


class JobStatus(models.TextChoices):
    PENDING = "PENDING"  # due at run_at (first try or a retry)
    RUNNING = "RUNNING"  # taken by a runner until lease_until; a runner that died lets the lease lapse
    DONE = "DONE"
    DEAD = "DEAD"  # out of attempts: kept, visible in admin, replayable by hand


class Job(models.Model):
    id = models.CharField(primary_key=True, max_length=ID_MAX_LENGTH, db_column="_id", default=new_job_id)
    kind = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=JobStatus.choices, default=JobStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField()
    run_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # Jobs with the same key run in the order they were recorded: a later one waits while an earlier one is
    # pending or running (a webhook endpoint's events of one conversation). Empty: no order.
    ordering_key = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sweep and the health check: due PENDING rows and lapsed RUNNING ones, oldest first.
            models.Index(fields=["status", "run_at"], name="job_due_idx"),
            models.Index(fields=["status", "lease_until"], name="job_lease_idx"),
            models.Index(fields=["ordering_key", "created_at"], name="job_order_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"
