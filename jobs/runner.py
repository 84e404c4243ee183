"""Who runs jobs and schedules: Celery workers and beat (with REDIS_URL), or this process.

The same task code runs in both modes (`jobs.services.job_run`, the functions of `jobs.registry`).
Embedded (the default without REDIS_URL, `make run`): a small thread pool runs jobs, and a scheduler
thread runs every schedule at its interval, the job sweep included, so one Daphne process needs no
second one. Celery (`CHAT_JOBS_RUNNER=celery`): a job is sent to the worker as the task `jobs.run`;
beat sends `jobs.tick` for each schedule (chatservice/celery.py).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections

from audit.context import operator_schedule
from chatservice.dbthreads import DatabaseThreads
from jobs.registry import SCHEDULES

logger = logging.getLogger(__name__)

# Threads of the embedded runner: jobs wait on the network (webhooks, mail), so a few at once.
EMBEDDED_THREADS = 4
# How often the embedded scheduler wakes to see which schedules are due (more often if one is shorter).
SCHEDULER_TICK_S = 1.0


def mode() -> str:
    return settings.CHAT["JOBS_RUNNER"]


def dispatch(job_id: str) -> None:
    """Hand a committed job to the runner. Never raises: the row is durable, the sweep retries the notice."""
    try:
        if mode() == "celery":
            from jobs.tasks import run_job

            run_job.delay(job_id)
        else:
            embedded().submit(job_id)
    except Exception as exc:
        logger.warning("job %s not handed to the runner (the sweep will): %s", job_id, exc)


def run_schedule(name: str) -> None:
    """One run of a schedule; a failure is logged and the next interval tries again."""
    try:
        with operator_schedule(name):  # what it changes is audited as the operator's, naming the schedule
            SCHEDULES[name].run()
    except Exception as exc:
        logger.warning("schedule %s failed: %s", name, exc, exc_info=True)
    finally:
        connections.close_all()


class EmbeddedRunner:
    def __init__(self) -> None:
        # Each thread keeps its database connection between jobs (chatservice.dbthreads): a new one per
        # job cost more than the job (bench/webhook_bench.py).
        self._threads = DatabaseThreads("jobs", lambda: EMBEDDED_THREADS)
        self._scheduler: threading.Thread | None = None
        self._stop = threading.Event()

    def submit(self, job_id: str) -> None:
        self._threads.submit(self._run, job_id)

    @staticmethod
    def _run(job_id: str) -> None:
        from jobs.services import job_run

        try:
            job_run(job_id)
        except Exception as exc:
            logger.warning("job %s could not run: %s", job_id, exc, exc_info=True)
            if isinstance(exc, InterfaceError | OperationalError):
                connections.close_all()  # this thread's: the next job reconnects

    def start_scheduler(self) -> None:
        if self._scheduler is None:
            self._scheduler = threading.Thread(target=self._schedule_loop, name="jobs-scheduler", daemon=True)
            self._scheduler.start()

    def stop(self) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout=10)
            self._scheduler = None
        self._threads.close()  # waits for running jobs, closes each thread's connection

    def _schedule_loop(self) -> None:
        next_run: dict[str, float] = {}
        intervals = [spec.interval_s() for spec in SCHEDULES.values()]
        tick = min([SCHEDULER_TICK_S, *(interval for interval in intervals if interval > 0)])
        while not self._stop.wait(tick):
            now = time.monotonic()
            for name, spec in SCHEDULES.items():
                interval = spec.interval_s()
                if interval <= 0:
                    continue  # turned off
                if now >= next_run.setdefault(name, now + interval):
                    next_run[name] = now + interval
                    run_schedule(name)


_embedded: EmbeddedRunner | None = None
_lock = threading.Lock()


def embedded() -> EmbeddedRunner:
    global _embedded
    with _lock:
        if _embedded is None:
            _embedded = EmbeddedRunner()
        return _embedded


def start() -> None:
    """Start this process's scheduler when it is the runner (the ASGI entry point calls this)."""
    if mode() == "embedded":
        embedded().start_scheduler()


def stop_embedded() -> None:
    """Wait for the embedded runner's jobs and stop it (tests, before the database goes)."""
    global _embedded
    with _lock:
        runner, _embedded = _embedded, None
    if runner is not None:
        runner.stop()
