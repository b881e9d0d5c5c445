"""Celery tasks for per-user digests. Thin: each runs one schedule through ``runs``.

Beat runs them from the database schedule (installed by ``digests.apps``); a run that finds
nothing due does nothing, so a short interval only costs a few queries.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from digests.runs import digest_run
from digests.windows import Period

log = logging.getLogger(__name__)


def _run(period: Period) -> dict:
    summary = digest_run(period=period, now=timezone.now())
    if summary.profiles:
        log.info(summary.line())
    return summary.as_dict()


@shared_task(ignore_result=True)
def run_hourly() -> dict:
    """Build and send the hourly digests that are due."""
    return _run(Period.HOURLY)


@shared_task(ignore_result=True)
def run_daily() -> dict:
    """Build and send the daily digests that are due (each user's chosen hour)."""
    return _run(Period.DAILY)


@shared_task(ignore_result=True)
def run_weekly() -> dict:
    """Build and send the weekly digests that are due (Mondays, each user's chosen hour)."""
    return _run(Period.WEEKLY)
