"""Jobs in admin: what ran, what waits, what died and why; a dead job is replayed by hand."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.models import Job, JobStatus
from jobs.services import job_replay


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("kind", "status", "attempts", "run_at", "last_error_short", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("id", "kind")
    actions = ["replay"]
    readonly_fields = [field.name for field in Job._meta.fields]

    @admin.display(description="Last error")
    def last_error_short(self, job: Job) -> str:
        return (job.last_error[:80] + "…") if len(job.last_error) > 80 else job.last_error

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are recorded by the changes that need them

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False  # read-only page; the replay action is the one way to act on a job

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.change_job")

    @admin.action(description="Replay (dead jobs only)", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        replayed = sum(job_replay(job=job) for job in queryset.filter(status=JobStatus.DEAD))
        self.message_user(request, f"{replayed} job(s) replayed.", messages.SUCCESS)
