"""Orchestration: the Celery canvas, and the same steps run in-process.

The canvas (built by :func:`build_canvas`, started by :func:`run_weekly_digest`)::

    start (count teams and orgs, cut batches)
      └─ replaced by ─► chord( group(generate(kind, batch) for batch for kind),
                               aggregate(batches) )
                        | chord( group(send_batch(batch) for batch),
                                 finish(results) )

:func:`run_weekly_digest_inline` walks the same :data:`~digests.weekly.activities.GENERATORS`
and calls the same activity functions in order, for tests, previews and dry runs; the
tasks in :mod:`digests.weekly.tasks` are one-line wrappers around those functions.

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

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from celery import chain, chord, group
from django.utils import timezone

from digests.weekly import activities
from digests.weekly.activities import (
    DEFAULT_BATCH_SIZE,
    GENERATORS,
    EmailSender,
    Plan,
    SendResult,
)

if TYPE_CHECKING:
    from celery.canvas import Signature
    from celery.result import AsyncResult


@dataclass(frozen=True)
class WeeklySchedule:
    """When the scheduled run may start: from ``weekday`` (0 = Monday) at ``hour`` UTC of
    each ISO week; beat ticks hourly and the first due tick of the week claims the run."""

    weekday: int = 0
    hour: int = 9

    def is_due(self, now: datetime) -> bool:
        moment = now.astimezone(UTC)
        monday = (moment - timedelta(days=moment.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        return moment >= monday + timedelta(days=self.weekday, hours=self.hour)


SCHEDULE = WeeklySchedule()


@dataclass(frozen=True)
class RunSummary:
    digest_key: str
    orgs: int
    teams: int
    batches: int
    org_digests: int
    result: SendResult

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest_key": self.digest_key,
            "orgs": self.orgs,
            "teams": self.teams,
            "batches": self.batches,
            "org_digests": self.org_digests,
            **self.result.to_dict(),
        }


def build_canvas(plan: Plan) -> Signature:
    """The whole run after planning, as one signature (see the module docstring).

    Every signature is immutable (``si``) except ``finish``, which takes the send results:
    nothing but ``finish`` depends on a previous task's return value, only on Redis.
    """
    from digests.weekly import tasks

    digest = plan.digest.to_dict()
    batches = [batch.to_dict() for batch in plan.batches]
    generate = group(
        tasks.generate.si(digest, name, batch) for batch in batches for name in GENERATORS
    )
    send = group(tasks.send_batch.si(digest, batch) for batch in batches)
    return chain(
        chord(generate, tasks.aggregate.si(digest, batches)),
        chord(send, tasks.finish.s(digest=digest, orgs=plan.orgs, teams=plan.teams)),
    )


def run_weekly_digest(
    now: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> AsyncResult:
    """Start a run on the workers. The ``start`` task plans and replaces itself with the
    canvas, so ``.get()`` on the returned result waits for ``finish`` and gives its summary
    dict. Re-running in the same ISO week sends nothing to members already sent."""
    from digests.weekly import tasks

    moment = now or timezone.now()
    return tasks.start.delay(moment.isoformat(), batch_size)


def run_weekly_digest_inline(
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    sender: EmailSender | None = None,
    dry_run: bool = False,
) -> RunSummary:
    """The same steps in this process, in order: plan, every generator for every batch,
    aggregate, send. ``dry_run`` stages and aggregates (Redis scratch keys with TTLs) but
    sends nothing and claims nobody; the rendered emails are in ``result.previews``."""
    plan = activities.plan_weekly_digest(now=now or timezone.now(), batch_size=batch_size)
    for batch in plan.batches:
        for generate in GENERATORS.values():
            generate(digest=plan.digest, batch=batch)
    org_digests = sum(
        activities.aggregate_org_digests(digest=plan.digest, batch=batch) for batch in plan.batches
    )
    result = SendResult()
    for batch in plan.batches:
        result = result.add(
            activities.send_org_digests(
                digest=plan.digest, batch=batch, sender=sender, dry_run=dry_run
            )
        )
    if not dry_run:
        activities.finish_run(plan.digest)
    return RunSummary(
        digest_key=plan.digest.key,
        orgs=plan.orgs,
        teams=plan.teams,
        batches=len(plan.batches),
        org_digests=org_digests,
        result=result,
    )
