"""The beat schedule the READMEs state, as ``migrate`` installs it into django-celery-beat
(what the admin's *Periodic tasks* shows and beat runs): the outbox relay every 5 s,
roll-up flushes every 1 s, held pushes released every 30 s (notifications/README.md),
each digest period every 60 s (digests/README.md), the weekly organization digest's tick
hourly
(digests/weekly/README.md); every entry names a task a worker knows."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

pytestmark = pytest.mark.django_db

README = {
    "notifications.tasks.relay_outbox": 5,
    "notifications.tasks.flush_rollups": 1,
    "notifications.tasks.recover_deliveries": 60,
    "notifications.tasks.release_held": 30,
    "digests.tasks.run_hourly": 60,
    "digests.tasks.run_daily": 60,
    "digests.tasks.run_weekly": 60,
    "digests.weekly.tasks.weekly_digest_tick": 3600,
}


def test_migrate_installs_the_intervals_the_readmes_state():
    from config.celery import app

    app.loader.import_default_modules()
    installed = {
        task.task: (task.interval.every, task.interval.period, task.enabled)
        for task in PeriodicTask.objects.select_related("interval").exclude(interval=None)
    }
    for name, seconds in README.items():
        assert installed.get(name) == (seconds, "seconds", True), name
        assert name in app.tasks, name
