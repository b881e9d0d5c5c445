"""Running a week's digest: on the workers, or the same steps in this process.

:func:`run_weekly_digest` enqueues :func:`digests.weekly.tasks.start`, which plans and
replaces itself with the canvas (:func:`digests.weekly.tasks.build_canvas`; the diagram and
how chords behave on Redis are in that module). :func:`run_weekly_digest_inline` walks the
same :data:`~digests.weekly.activities.GENERATORS` and calls the same activity functions in
order, for tests, previews and dry runs; the tasks are one-line wrappers around those
functions. This module imports the tasks and they never import it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from digests.weekly import activities, tasks
from digests.weekly.activities import DEFAULT_BATCH_SIZE, GENERATORS, EmailSender, SendResult

if TYPE_CHECKING:
    from celery.result import AsyncResult


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


def run_weekly_digest(
    now: datetime | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> AsyncResult:
    """Start a run on the workers. The ``start`` task plans and replaces itself with the
    canvas, so ``.get()`` on the returned result waits for ``finish`` and gives its summary
    dict. Re-running in the same ISO week sends nothing to members already sent."""
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
