"""The Celery application: `celery -A chatservice worker` runs jobs, `celery -A chatservice beat` the schedules.

Tasks and schedules come from jobs/ (the same code the embedded runner uses). Beat sends `jobs.tick` for
each schedule at its interval from settings; a schedule turned off (interval 0) is not sent at all.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatservice.settings")

app = Celery("chatservice")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["jobs"])


@app.on_after_finalize.connect
def _beat_schedule(sender: Celery, **kwargs: object) -> None:
    from jobs.registry import SCHEDULES

    for name, spec in SCHEDULES.items():
        interval = spec.interval_s()
        if interval > 0:
            sender.add_periodic_task(interval, sender.signature("jobs.tick", args=(name,)), name=name)
