"""One run of a digest schedule: build, send, and write its history. The orchestration the
Celery tasks and ``manage.py digests run`` share.

A run at ``now`` for a period builds the digests owed (``builder``), sends every queued
digest of that period that is due (``sender``), and for every profile it worked on writes
an execution record and stamps ``last_run`` (``history``). A profile counts as worked on
when the run created a digest for it or sent (or tried to send) one. Runs that find
nothing new write nothing, so beat can run them every minute.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from digests import history
from digests.builder import BuildReport, digest_build
from digests.history import ExecutionRecord, ExecutionStatus
from digests.models import DigestStatus
from digests.preview import Rendered, render_plans
from digests.sender import Prepared, SendReport, Sent, digest_send, due_queued
from digests.windows import Period
from notifications import metrics
from notifications.sending import SEND, SendCounts, SendPolicy

WallClock = Callable[[], datetime]


def _wall_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Progress:
    """Where a run is, handed to the caller after every chunk of users and batch of sends:
    the phase and the running totals the build and the send keep (nothing re-counted)."""

    period: str
    phase: str = "build"
    build: BuildReport = field(default_factory=BuildReport)
    send: SendCounts = field(default_factory=SendCounts)


@dataclass
class RunSummary:
    period: str
    as_of: datetime
    dry_run: bool
    build: BuildReport = field(default_factory=BuildReport)
    send: SendReport = field(default_factory=SendReport)
    seconds: float = 0.0
    profiles: int = 0
    rendered: list[Rendered] = field(default_factory=list)
    previews: list[tuple[Prepared, str]] = field(default_factory=list)

    @property
    def would_send(self) -> int:
        """In a dry run: digests the build would queue, plus queued ones already due."""
        return len(self.rendered) + len(self.previews)

    def line(self) -> str:
        b = self.build
        sent = f"{self.would_send:,} would be sent" if self.dry_run else self.send.text()
        parts = [f"{b.users:,} users", f"{b.created:,} digests built ({b.empty:,} empty)", sent]
        dry = " [dry run: nothing written]" if self.dry_run else ""
        return (
            f"digests run {self.period} as of {self.as_of.isoformat()}: "
            f"{', '.join(parts)} in {self.seconds:.2f}s{dry}"
        )

    def as_dict(self) -> dict:
        return {
            "period": self.period,
            "as_of": self.as_of.isoformat(),
            "users": self.build.users,
            "built": self.build.created,
            "empty": self.build.empty,
            "sent": self.send.sent,
            "skipped": self.send.skipped,
            "failed": self.send.failed,
            "retrying": self.send.retrying,
            "profiles": self.profiles,
            "seconds": round(self.seconds, 3),
        }


class _History:
    """The execution records of one run, one per profile, moved through their statuses."""

    def __init__(self, *, period: str, as_of: datetime, clock: WallClock) -> None:
        self.run_id = uuid.uuid4().hex
        self.period = period
        self.as_of = as_of
        self.clock = clock
        self.started = clock()
        self.records: dict[int, ExecutionRecord] = {}
        self.results: dict[int, list[Sent]] = defaultdict(list)
        self.finished_at: dict[int, datetime] = {}

    def start(self, profile_ids: set[int]) -> None:
        """Open a record per profile, written once as ``RUNNING``: the send starts right
        away, so a ``PENDING`` write would be overwritten before anyone could read it."""
        new = [
            ExecutionRecord.pending(
                run_id=self.run_id,
                profile_id=pid,
                schedule_type=self.period,
                started_at=self.started,
                as_of=self.as_of,
            ).running()
            for pid in sorted(profile_ids - self.records.keys())
        ]
        self.records.update({r.profile_id: r for r in new})
        history.executions_save(new)

    def sent(self, results: list[Sent]) -> None:
        at = self.clock()
        for result in results:
            self.results[result.user_id].append(result)
            self.finished_at[result.user_id] = at

    def finish(self) -> None:
        done = []
        for pid, record in self.records.items():
            results = self.results.get(pid, [])
            failed = [r for r in results if r.status in (DigestStatus.FAILED, DigestStatus.QUEUED)]
            skipped = [r for r in results if r.status == DigestStatus.SKIPPED]
            errors = [f"{r.status}: {r.error}" for r in failed + skipped if r.error]
            self.records[pid] = record.finished(
                ExecutionStatus.FAILED if failed else ExecutionStatus.SUCCESS,
                at=self.finished_at.get(pid, self.clock()),
                message_count=sum(1 for r in results if r.status == DigestStatus.SENT),
                digest_count=len(results),
                error="; ".join(errors)[:1000],
            )
            done.append(self.records[pid])
        history.executions_save(done)
        history.last_run_mark(self.records.keys(), self.period, self.as_of)

    def abort(self, exc: BaseException) -> None:
        """Close every record still open: CANCELLED for an interruption, FAILED for an error."""
        cancelled = not isinstance(exc, Exception) or type(exc).__name__ == "SoftTimeLimitExceeded"
        status = ExecutionStatus.CANCELLED if cancelled else ExecutionStatus.FAILED
        at = self.clock()
        closed = []
        for pid, record in self.records.items():
            if record.status in history.FINISHED:
                continue
            results = self.results.get(pid, [])
            self.records[pid] = record.finished(
                status,
                at=at,
                message_count=sum(1 for r in results if r.status == DigestStatus.SENT),
                digest_count=len(results),
                error=f"{type(exc).__name__}: {exc}"[:1000],
            )
            closed.append(self.records[pid])
        history.executions_save(closed)


def digest_run(
    *,
    period: Period | str,
    now: datetime,
    dry_run: bool = False,
    user_ids: Collection[int] | None = None,
    policy: SendPolicy = SEND,
    progress: Callable[[Progress], None] | None = None,
    clock: WallClock = _wall_now,
) -> RunSummary:
    """Build and send the ``period`` digests due at ``now``; record each profile's run.
    ``dry_run`` computes and renders everything and writes nothing (database or Redis);
    ``user_ids`` limits the run to those users (the admin's dry-run action)."""
    period = Period(period)
    started = time.monotonic()
    summary = RunSummary(period=period, as_of=now, dry_run=dry_run)
    state = Progress(period=period)

    def built(so_far: BuildReport) -> None:
        state.build = so_far
        if progress:
            progress(state)

    if dry_run:
        summary.build = digest_build(
            period=period, now=now, dry_run=True, user_ids=user_ids, on_chunk=built
        )
        summary.rendered = render_plans(summary.build.queued)
        planned = {r.key for r in summary.rendered}
        sends = digest_send(now=now, period=period, dry_run=True, user_ids=user_ids)
        summary.previews = [
            (prepared, text)
            for prepared, text in sends.previews
            if prepared.key not in planned and prepared.message is not None
        ]
        summary.seconds = time.monotonic() - started
        return summary

    record = _History(period=period, as_of=now, clock=clock)
    try:
        summary.build = digest_build(period=period, now=now, user_ids=user_ids, on_chunk=built)
        queued = due_queued(now=now, period=period, user_ids=user_ids).order_by()
        due = set(queued.values_list("user_id", flat=True).distinct())
        record.start(summary.build.touched | due)
        state.phase = "send"

        def batch(results: list[Sent], so_far: SendReport) -> None:
            record.sent(results)
            state.send = so_far
            if progress:
                progress(state)

        summary.send = digest_send(
            now=now, period=period, user_ids=user_ids, policy=policy, on_batch=batch
        )
    except BaseException as exc:
        record.abort(exc)
        raise
    record.finish()
    summary.profiles = len(record.records)
    summary.seconds = time.monotonic() - started
    metrics.count_digest_run(period, summary.seconds, summary.build.created, summary.send.results)
    return summary
