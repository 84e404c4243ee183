"""The Celery tasks: thin wrappers over the same code the embedded runner calls."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="jobs.run", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> str:
    from jobs.services import job_run

    return job_run(job_id)


@shared_task(name="jobs.tick", ignore_result=True)
def tick(schedule_name: str) -> None:
    from jobs.runner import run_schedule

    run_schedule(schedule_name)
