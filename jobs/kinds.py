"""The job kinds and schedules of the service (imported by JobsConfig.ready in every process)."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from jobs.models import Job
from jobs.registry import job_kind, schedule

# A wake-up that keeps failing (the database away) is still worth a few tries; the sweep waits between.
WAKE_ATTEMPTS = 5
SNOOZE_WAKE_KIND = "conversation.wake"


@schedule("jobs.sweep", interval_s=lambda: settings.CHAT["JOB_SWEEP_S"])
def sweep() -> int:
    """Hand out every job that is due and not running: never notified (a crash between commit and the
    notice), due retries and delayed jobs, and jobs whose runner died holding them."""
    from jobs.runner import dispatch
    from jobs.selectors import jobs_due

    due = jobs_due()
    for job_id in due:
        dispatch(job_id)
    return len(due)


def _days(name: str) -> float:
    # A schedule turned off by its days setting (0) does not run at all.
    return settings.CHAT["TRANSITION_EVERY_S"] if settings.CHAT[name] > 0 else 0


@schedule("close_inactive_conversations", interval_s=lambda: _days("CLOSE_INACTIVE_DAYS"))
def close_inactive() -> object:
    from conversations.services import conversations_close_inactive

    return conversations_close_inactive(days=settings.CHAT["CLOSE_INACTIVE_DAYS"])


@schedule("archive_closed_conversations", interval_s=lambda: _days("ARCHIVE_CLOSED_DAYS"))
def archive_closed() -> object:
    from conversations.services import conversations_archive_closed

    return conversations_archive_closed(days=settings.CHAT["ARCHIVE_CLOSED_DAYS"])


@schedule("purge_archived_conversations", interval_s=lambda: _days("RETENTION_DAYS"))
def purge_archived() -> object:
    from retention.services import conversations_purge

    return conversations_purge(days=settings.CHAT["RETENTION_DAYS"])


@schedule("agents_away", interval_s=lambda: settings.CHAT["AGENT_AWAY_CHECK_S"])
def agents_away() -> int:
    from desk.assignment import mark_away

    return mark_away()


@job_kind(SNOOZE_WAKE_KIND, max_attempts=WAKE_ATTEMPTS)
def wake(job: Job) -> None:
    """A snoozed conversation's time came: recorded as a delayed job when it was snoozed."""
    from conversations.services import conversation_wake

    payload = job.payload
    until = parse_datetime(payload["until"])
    if until is None:
        raise ValueError(f"bad snooze time {payload['until']!r}")
    conversation_wake(conversation_id=payload["conversationId"], until=until, now=timezone.now())
