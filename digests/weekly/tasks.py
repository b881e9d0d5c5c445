"""Celery tasks of the weekly organization digest. Thin: each calls one activity.

Arguments travel as JSON: the week as ``Digest.to_dict()``, a batch as
``OrgBatch.to_dict()``. The canvas that links them is built in
:mod:`digests.weekly.workflows`; :data:`PERIODIC` is the beat entry to install.

Every task may run twice (``acks_late`` redelivery, an autoretry): generators and the
aggregation overwrite what they staged, and sending claims each member in the week's
``sent`` set before mailing them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import redis
from celery import shared_task
from celery.result import allow_join_result
from django.db import OperationalError
from django.utils import timezone

from digests.weekly import activities
from digests.weekly.activities import OrgBatch, SendResult
from digests.weekly.types import Digest
from notifications.schedule import Periodic

log = logging.getLogger(__name__)

TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OperationalError)
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "max_retries": 5,
}

PERIODIC = (
    Periodic(
        "Weekly organization digest (starts once per ISO week, Mondays from 09:00 UTC)",
        "digests.weekly.tasks.weekly_digest_tick",
        3600,
    ),
)
"""Install with ``notifications.schedule.install_periodic(PERIODIC)``. ``Periodic`` only
knows intervals, so beat ticks hourly and :func:`weekly_digest_tick` decides."""


@shared_task(ignore_result=True)
def weekly_digest_tick(now: str | None = None) -> None:
    """Beat's entry: start this week's run once it is due and nobody else has started it."""
    from digests.weekly import workflows

    moment = datetime.fromisoformat(now) if now else timezone.now()
    if not workflows.SCHEDULE.is_due(moment):
        return
    digest = Digest.for_week(moment)
    if not activities.claim_scheduled_run(digest):
        log.debug("weekly digest %s already started or done this week", digest.key)
        return
    workflows.run_weekly_digest(now=moment)


@shared_task(bind=True, ignore_result=False, **RETRY)
def start(self, now: str, batch_size: int) -> Any:
    """Count teams and orgs, cut batches, then become the canvas (``Task.replace``)."""
    from digests.weekly import workflows

    plan = activities.plan_weekly_digest(
        now=datetime.fromisoformat(now), batch_size=int(batch_size)
    )
    log.info(
        "weekly digest %s: %s orgs, %s teams, %s batches",
        plan.digest.key,
        plan.orgs,
        plan.teams,
        len(plan.batches),
    )
    if not plan.batches:
        activities.finish_run(plan.digest)
        return {"digest_key": plan.digest.key, "orgs": plan.orgs, "teams": plan.teams}
    # On a worker, replace() publishes the canvas and ends this task. Under
    # task_always_eager it runs the canvas here, and chord.apply() joins its header
    # in-process, which Celery's "never block inside a task" guard would refuse.
    with allow_join_result():
        return self.replace(workflows.build_canvas(plan))


@shared_task(ignore_result=False, **RETRY)
def generate(digest: dict[str, str], kind: str, batch: dict[str, Any]) -> int:
    """One kind for one batch; a chord header task, so its (small) result is stored."""
    return activities.GENERATORS[kind](
        digest=Digest.from_dict(digest), batch=OrgBatch.from_dict(batch)
    )


@shared_task(ignore_result=False, **RETRY)
def aggregate(digest: dict[str, str], batches: list[dict[str, Any]]) -> int:
    """The generators' chord callback: an OrganizationDigest per org, every batch."""
    week = Digest.from_dict(digest)
    return sum(
        activities.aggregate_org_digests(digest=week, batch=OrgBatch.from_dict(batch))
        for batch in batches
    )


@shared_task(ignore_result=False, **RETRY)
def send_batch(digest: dict[str, str], batch: dict[str, Any]) -> dict[str, int]:
    result = activities.send_org_digests(
        digest=Digest.from_dict(digest), batch=OrgBatch.from_dict(batch)
    )
    return result.to_dict()


@shared_task(ignore_result=False)
def finish(
    results: list[dict[str, int]], *, digest: dict[str, str], orgs: int, teams: int
) -> dict[str, Any]:
    """The send batches' chord callback: mark the week done and log one summary line."""
    week = Digest.from_dict(digest)
    total = SendResult()
    for result in results:
        total = total.add(SendResult.from_dict(result))
    activities.finish_run(week)
    summary = {
        "digest_key": week.key,
        "orgs": orgs,
        "teams": teams,
        "batches": len(results),
        **total.to_dict(),
    }
    log.info("weekly digest %s finished: %s", week.key, summary)
    return summary
