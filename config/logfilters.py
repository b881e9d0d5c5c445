"""Logging filters named in ``settings.LOGGING``."""

from __future__ import annotations

import functools
import logging
import re


@functools.cache
def _periodic_task_names() -> re.Pattern[str]:
    """Every task beat runs on notiflow's schedule, as one pattern matching the name where
    Celery's lines put it (``name[id]``, ``(name)``). Read on first use: the schedules
    import models, so not while logging is configured."""
    from digests.beat import PERIODIC as DIGESTS
    from digests.weekly.tasks import PERIODIC as WEEKLY_ORG_DIGEST
    from notifications.schedule import PERIODIC as NOTIFICATIONS

    names = sorted({item.task for item in (*NOTIFICATIONS, *DIGESTS, *WEEKLY_ORG_DIGEST)})
    return re.compile(rf"(?<![\w.])(?:{'|'.join(map(re.escape, names))})(?![\w.])")


class QuietPeriodicTasks(logging.Filter):
    """Drops Celery's INFO lines about the periodic housekeeping tasks — beat's "Sending due
    task", the worker's "Task … received" and "Task … succeeded" — which would otherwise
    scroll several lines a second (``flush_rollups`` runs every second). Their warnings and
    errors pass, and so does whatever the tasks log themselves (a digest run, a delivery)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        return _periodic_task_names().search(record.getMessage()) is None
