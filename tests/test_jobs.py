"""Background jobs (jobs/): the durable outbox, the embedded runner, retries and dead jobs, the sweep,
the snooze wake-up job, the health report, and a real Celery worker against a real redis-server."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from chatservice.config import ConfigError, load_config
from conversations import services as conversation_services
from conversations.models import Conversation
from jobs import runner
from jobs.kinds import SNOOZE_WAKE_KIND, sweep
from jobs.models import Job, JobStatus
from jobs.registry import job_kind
from jobs.selectors import jobs_due, queue_lateness_s
from jobs.services import MAX_BACKOFF_S, backoff_s, job_enqueue, job_replay, job_run
from tests.helpers import ADMIN, USER, use_celery
from tests.servers import celery_worker, database_url, redis_server, terminate

WAIT_S = 20  # a job handed to a runner runs within this, or the test fails

ran: list[dict] = []
ran_event = threading.Event()
failures_left = {"count": 0}


@job_kind("test.record", max_attempts=3)
def record(job: Job) -> None:
    payload = job.payload
    if failures_left["count"] > 0:
        failures_left["count"] -= 1
        raise ConnectionError("receiver down")
    ran.append(payload)
    ran_event.set()


@pytest.fixture(autouse=True)
def fresh_records():
    ran.clear()
    ran_event.clear()
    failures_left["count"] = 0
    yield
    runner.stop_embedded()  # its threads finish before the database is flushed


def wait_for_status(job_id: str, status: str) -> Job:
    deadline = time.monotonic() + WAIT_S
    while True:
        job = Job.objects.get(pk=job_id)
        if job.status == status or time.monotonic() > deadline:
            return job
        time.sleep(0.05)  # bounded poll of another process's (or thread's) write


@pytest.mark.django_db(transaction=True)
def test_a_job_recorded_with_a_change_runs_after_commit_in_this_process():
    with transaction.atomic():
        job = job_enqueue(kind="test.record", payload={"n": 1})
        assert not ran_event.is_set()  # not before commit
    assert ran_event.wait(WAIT_S)
    assert ran == [{"n": 1}]
    assert wait_for_status(job.pk, JobStatus.DONE).attempts == 1


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_leaves_no_job_and_runs_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        job_enqueue(kind="test.record", payload={"n": 1})
        raise RuntimeError("the change failed")
    runner.stop_embedded()  # anything submitted has run by now
    assert Job.objects.count() == 0 and ran == []


@pytest.mark.django_db
def test_failures_back_off_then_the_job_dies_and_a_replay_runs_it(settings):
    settings.CHAT = {**settings.CHAT, "JOB_RETRY_BASE_S": 10.0}
    failures_left["count"] = 99
    job = Job.objects.create(kind="test.record", payload={"n": 2}, max_attempts=3)
    for attempt in (1, 2):
        before = timezone.now()
        assert job_run(job.pk) == JobStatus.PENDING
        job.refresh_from_db()
        wait = (job.run_at - before).total_seconds()
        ceiling = 10.0 * 2 ** (attempt - 1)
        assert ceiling / 2 - 0.5 <= wait <= ceiling + 0.5, (attempt, wait)
        assert job.attempts == attempt and "receiver down" in job.last_error
        assert job_run(job.pk) == ""  # not due yet: nobody takes it
        Job.objects.filter(pk=job.pk).update(run_at=timezone.now())  # its time comes
    assert job_run(job.pk) == JobStatus.DEAD
    job.refresh_from_db()
    assert (job.status, job.attempts, job.finished_at is not None) == (JobStatus.DEAD, 3, True)
    assert ran == []
    failures_left["count"] = 0
    assert job_replay(job=job) is True
    assert job_replay(job=job) is False  # only a dead job is replayed
    assert job_run(job.pk) == JobStatus.DONE
    assert ran == [{"n": 2}]


def test_backoff_doubles_with_jitter_and_is_capped():
    for attempt in range(1, 8):
        ceiling = 30 * 2 ** (attempt - 1)
        for _ in range(50):
            assert ceiling / 2 <= backoff_s(attempt, base_s=30) <= ceiling
    assert backoff_s(40, base_s=30) <= MAX_BACKOFF_S


@pytest.mark.django_db(transaction=True)
def test_the_sweep_hands_out_jobs_never_notified_and_lapsed_leases():
    now = timezone.now()
    never_notified = Job.objects.create(kind="test.record", payload={"n": "lost"}, max_attempts=3)
    lapsed = Job.objects.create(
        kind="test.record",
        payload={"n": "lapsed"},
        max_attempts=3,
        status=JobStatus.RUNNING,
        attempts=1,
        lease_until=now - timedelta(seconds=1),
    )
    held = Job.objects.create(
        kind="test.record",
        payload={"n": "held"},
        max_attempts=3,
        status=JobStatus.RUNNING,
        lease_until=now + timedelta(minutes=5),
    )
    later = Job.objects.create(
        kind="test.record", payload={"n": "later"}, max_attempts=3, run_at=now + timedelta(hours=1)
    )
    assert set(jobs_due()) == {never_notified.pk, lapsed.pk}
    assert sweep() == 2
    assert wait_for_status(never_notified.pk, JobStatus.DONE).status == JobStatus.DONE
    assert wait_for_status(lapsed.pk, JobStatus.DONE).attempts == 2
    runner.stop_embedded()
    assert sorted(p["n"] for p in ran) == ["lapsed", "lost"]
    assert Job.objects.get(pk=held.pk).status == JobStatus.RUNNING
    assert Job.objects.get(pk=later.pk).status == JobStatus.PENDING


@pytest.mark.django_db(transaction=True)
def test_health_reports_a_late_queue_without_taking_the_worker_out(client):
    assert queue_lateness_s() == 0.0
    assert client.get("/health").json()["checks"]["jobs"] == "ok"
    Job.objects.create(kind="test.record", max_attempts=3, run_at=timezone.now() - timedelta(minutes=10))
    assert queue_lateness_s() >= 600
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["checks"]["jobs"] == "late" and response.json()["late"] == ["jobs"]


@pytest.mark.django_db(transaction=True)
def test_a_snooze_records_its_wake_up_and_the_job_wakes_the_conversation(agent):
    conversation = conversation_services.conversation_create(creator=USER, subject="later")
    until = timezone.now() + timedelta(seconds=0.3)
    response = agent.put(f"/api/conversations/{conversation.pk}", {"snoozedUntil": until.isoformat()}, format="json")
    assert response.status_code == 200
    (job,) = Job.objects.filter(kind=SNOOZE_WAKE_KIND)
    assert job.payload["conversationId"] == conversation.pk and abs((job.run_at - until).total_seconds()) < 0.001
    time.sleep(0.35)  # the snooze's own time has to come; nothing to await before it does
    assert job_run(job.pk) == JobStatus.DONE
    conversation.refresh_from_db()
    assert conversation.snoozed_until is None
    # a refused update records no wake-up
    refused = agent.put(f"/api/conversations/{conversation.pk}", {"snoozedUntil": "soon"}, format="json")
    assert refused.status_code == 400
    assert Job.objects.filter(kind=SNOOZE_WAKE_KIND).count() == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "embedded"), ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "celery")],
)
def test_the_runner_follows_redis_unless_told(env, expected):
    base = {"DJANGO_DEBUG": "true"}
    assert load_config({**base, **env}).jobs_runner == expected
    assert load_config({**base, **env, "CHAT_JOBS_RUNNER": "embedded"}).jobs_runner == "embedded"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHAT_JOBS_RUNNER": "cron"}, "CHAT_JOBS_RUNNER"),
        ({"CHAT_JOBS_RUNNER": "celery"}, "needs REDIS_URL"),
        ({"CHAT_JOB_RETRY_BASE_S": "0"}, "CHAT_JOB_RETRY_BASE_S"),
        ({"CHAT_CLOSE_INACTIVE_DAYS": "-1"}, "CHAT_CLOSE_INACTIVE_DAYS"),
    ],
)
def test_bad_job_settings_are_refused(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"DJANGO_DEBUG": "true", **env})


# ---- a real Celery worker and a real redis-server ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_runs_a_job_recorded_while_it_was_down(settings, tmp_path):
    database = database_url(settings.DATABASES["default"])
    conversation = conversation_services.conversation_create(creator=USER, subject="later")
    with redis_server() as redis:
        use_celery(settings, redis.url)
        # Snoozed a moment ago: its wake-up is due, recorded and sent while no worker runs.
        until = timezone.now() + timedelta(milliseconds=200)
        conversation_services.conversation_update(conversation=conversation, actor=ADMIN, snoozed_until=until)
        (job,) = Job.objects.filter(kind=SNOOZE_WAKE_KIND)
        time.sleep(0.25)  # the snooze's time has to come
        assert sweep() == 1  # beat's sweep: handed to Celery through Redis, no worker yet
        worker = celery_worker(redis.url, database, tmp_path / "worker.log")
        try:
            done = wait_for_status(job.pk, JobStatus.DONE)
        finally:
            terminate(worker)
    assert done.status == JobStatus.DONE, (tmp_path / "worker.log").read_text()[-3000:]
    assert Conversation.objects.get(pk=conversation.pk).snoozed_until is None
