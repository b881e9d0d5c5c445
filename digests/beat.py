"""The digests' beat entries, installed into django-celery-beat's tables after ``migrate``
through ``notifications.schedule.install_periodic`` (editable in the admin afterwards).

The per-user schedules tick every minute: due times depend on each user's zone and hour (a
user in Asia/Kathmandu, +05:45, is due at a quarter past), and a tick with nothing due only
reads. The weekly organization digest brings its own entry (``digests.weekly.tasks``).
"""

from __future__ import annotations

from notifications.schedule import Periodic, install_periodic

PERIODIC = (
    Periodic("Build and send hourly digests", "digests.tasks.run_hourly", 60),
    Periodic("Build and send daily digests", "digests.tasks.run_daily", 60),
    Periodic("Build and send weekly digests", "digests.tasks.run_weekly", 60),
)


def install(**kwargs) -> None:
    from digests.weekly.tasks import PERIODIC as WEEKLY_ORG_DIGEST

    install_periodic((*PERIODIC, *WEEKLY_ORG_DIGEST))
