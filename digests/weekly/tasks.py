"""Celery tasks of the weekly organization digest, and the canvas that chains them. Thin:
each calls one activity.

Arguments travel as JSON: the week as ``Digest.to_dict()``, a batch as
``OrgBatch.to_dict()``. :data:`PERIODIC` is the beat entry to install; its tick starts
the week's run once :data:`~digests.weekly.types.SCHEDULE` says it is due. ``start`` plans
and becomes the canvas (built by :func:`build_canvas`)::

    start (count teams and orgs, cut batches)
      └─ replaced by ─► chord( group(generate(kind, batch) for batch for kind),
                               aggregate(batches) )
                        | chord( group(send_batch(batch) for batch),
                                 finish(results) )

Every task may run twice (``acks_late`` redelivery, an autoretry): generators and the
aggregation overwrite what they staged, and sending claims each member in the week's
``sent`` set before mailing them.

How chords behave on the Redis result backend (celery 5.7, read in
``celery/backends/redis.py`` and the canvas docs), and what that means here:

* Redis supports *native join*: there is no ``celery.chord_unlock`` task polling the
  header. Each header task, as it finishes, runs a Lua script that appends its result to
  the group's ``.j`` list/zset and compares the count with the chord size (``.s``); the
  task that completes the count takes a dispatch claim (``.c``, ``SET NX``) and publishes
  the callback. A header task redelivered after a worker crash (``acks_late``) is recorded
  once (``.d`` set), so it cannot fire the callback early or twice.
* Header tasks must store results: a chord on a backend without results never calls its
  body. Our header tasks return small ints (and send results small dicts) because every
  result travels through Redis into the callback's arguments; the real data is staged in
  our own keys. Celery's own keys (``celery-task-meta-*``, the chord's ``.j/.s/.t``)
  expire after ``result_expires`` (one day by default), so they also carry TTLs.
* A header task that raises (after its retries) fails the chord: the callback gets a
  ``ChordError`` and is not run, so a generator failure sends no half-built digest. The
  beat tick's lease expires and the next tick re-runs the week; members already sent are
  skipped by the ``sent`` sets.
* ``task_always_eager`` bypasses all of the above: ``chord.apply()`` runs the header
  tasks in the caller's process one after another, then calls the body with their
  results, without touching the result backend. Eager tests therefore prove the
  wiring of the canvas, not Redis's join; ``tests/digests/weekly/test_canvas_worker.py``
  runs a real ``celery -A config worker`` for that.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis
from celery import chain, chord, group, shared_task
from celery.result import allow_join_result
from django.db import OperationalError
from django.utils import timezone

from digests.weekly import activities
from digests.weekly.activities import DEFAULT_BATCH_SIZE, GENERATORS, OrgBatch, Plan, SendResult
from digests.weekly.types import SCHEDULE, Digest
from notifications.schedule import Periodic

if TYPE_CHECKING:
    from celery.canvas import Signature

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
    moment = datetime.fromisoformat(now) if now else timezone.now()
    if not SCHEDULE.is_due(moment):
        return
    digest = Digest.for_week(moment)
    if not activities.claim_scheduled_run(digest):
        log.debug("weekly digest %s already started or done this week", digest.key)
        return
    start.delay(moment.isoformat(), DEFAULT_BATCH_SIZE)


@shared_task(bind=True, ignore_result=False, **RETRY)
def start(self, now: str, batch_size: int) -> Any:
    """Count teams and orgs, cut batches, then become the canvas (``Task.replace``)."""
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
        return self.replace(build_canvas(plan))


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


def build_canvas(plan: Plan) -> Signature:
    """The whole run after planning, as one signature (see the module docstring).

    Every signature is immutable (``si``) except ``finish``, which takes the send results:
    nothing but ``finish`` depends on a previous task's return value, only on Redis.
    """
    digest = plan.digest.to_dict()
    batches = [batch.to_dict() for batch in plan.batches]
    generators = group(generate.si(digest, name, batch) for batch in batches for name in GENERATORS)
    sends = group(send_batch.si(digest, batch) for batch in batches)
    return chain(
        chord(generators, aggregate.si(digest, batches)),
        chord(sends, finish.s(digest=digest, orgs=plan.orgs, teams=plan.teams)),
    )
