"""The one send pipeline: how a row that carries a message — a ``Delivery``, a ``Digest`` —
is found due, claimed under a lease, given its next status from an outcome, recovered when
its sender died, and counted. Deliveries (:mod:`notifications.delivery`) and digests
(:mod:`digests.sender`) use it; what each sends and where is theirs.

A sendable table has ``status`` (``queued`` → ``sending`` → ``sent`` | ``queued`` again
with ``next_retry_at`` | ``failed`` …), ``attempts``, ``next_retry_at``, ``last_error``,
``updated_at``, and a column the lease is stamped in; :class:`Queue` names that column, and
the claim-token column where the table has one.

1. **Due** (:func:`due`): queued, with no retry pending or its retry time come at ``now``.
2. **Claim** (:meth:`Queue.claim`, one short transaction): ``SELECT … FOR UPDATE SKIP
   LOCKED`` over due rows, then ``queued`` → ``sending``, ``attempts + 1``, the lease
   stamped with :func:`lease_clock`. Two senders claim disjoint rows (on SQLite the
   ``IMMEDIATE`` transaction serializes the claims instead). The send happens after the
   claim has committed.
3. **Hold** (:class:`Claim`): a claim knows its rows by its token, or (a table without
   one) by each row's attempt count; only rows still ``sending`` under it are the
   sender's to send (:meth:`Claim.keep` renews the lease) and to record (:meth:`Claim.rows`).
4. **Next status** (:func:`next_status`): sent, queued again after the provider's
   ``retry_after`` or the :class:`RetryPolicy` back-off, or failed once the attempts run out
   or the provider says no.
5. **Recover** (:meth:`Queue.recover_stuck`): a row whose lease went unrenewed for
   :class:`ClaimLease` of real time goes back to ``queued``.
6. **Count** (:class:`SendCounts`): how many sends ended how.

Claims are leases in real time: the stamp and the judgement of it use the wall clock, never
the ``now`` a caller passes for scheduling (a backfill's ``--now``), so a run a week back, a
run a day ahead and beat agree on whose claim has run out. Every provider call ends by its
deadline (:mod:`notifications.channels.deadline`), well inside the lease, so a slow but live
send is never taken back; a sender that dies between send and record leaves its rows in
``sending`` until the lease runs out — the one window in which a message can go out twice.

Every statement here is plain ORM and runs on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import operator
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from typing import Any

from django.db import models, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from notifications.channels.base import Outcome, Result
from notifications.channels.deadline import MAX_DEADLINE_SECONDS

QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
"""The statuses the pipeline moves rows through; every sendable table's choices have them."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: base × factor^(attempt-1), capped, ± jitter."""

    base_seconds: float = 30
    factor: float = 2
    max_seconds: float = 3600
    jitter: float = 0.2
    max_attempts: int = 6

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        raw = min(self.base_seconds * self.factor ** max(attempt - 1, 0), self.max_seconds)
        spread = raw * self.jitter
        return max(0.0, raw + (rng or random).uniform(-spread, spread))

    def wait(self, attempt: int, asked: float | None) -> float:
        """Seconds until the next attempt: what the provider asked for (an
        :class:`Outcome`'s ``retry_after``, already within ``[0, RETRY_AFTER_CAP]``), else
        the back-off for ``attempt``."""
        return asked if asked is not None else self.delay(attempt)


@dataclass(frozen=True)
class ClaimLease:
    """How long a claim on a row holds, in real time. It must outlast the longest send —
    each provider call ends by its deadline, and no deadline exceeds
    ``MAX_DEADLINE_SECONDS`` — so only a claim whose sender died is ever taken back. A
    sender that holds rows longer renews the lease once a quarter of it has passed."""

    duration: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.duration.total_seconds() <= MAX_DEADLINE_SECONDS:
            raise ValueError(
                f"a claim lease must be longer than any call deadline "
                f"({MAX_DEADLINE_SECONDS:g}s), not {self.duration}"
            )

    def taken_before(self) -> datetime:
        """Claims stamped before this moment (real time) have run out."""
        return lease_clock() - self.duration

    def renew_after(self) -> timedelta:
        return self.duration / 4


@dataclass(frozen=True)
class SendPolicy:
    """``batch_size`` rows are claimed per transaction (digests: mailed per SMTP
    connection); ``retry`` decides the next attempt, ``lease`` how long a claim holds."""

    batch_size: int = 100
    retry: RetryPolicy = RetryPolicy()
    lease: ClaimLease = ClaimLease()


SEND = SendPolicy()
RETRY = SEND.retry
SENDING_LEASE = SEND.lease


def lease_clock() -> datetime:
    """The wall clock claims are stamped with and judged by — never a run's ``now``."""
    return timezone.now()


def due(now: datetime) -> Q:
    """Rows with no retry pending, or whose retry time has come at ``now`` (with
    ``status=queued``: the rows a sender may claim)."""
    return Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)


@dataclass(frozen=True)
class Queue:
    """One sendable table: its model, the column its lease is stamped in, and its
    claim-token column (``""``: a claim knows its rows by their attempt count)."""

    model: type[models.Model]
    lease_field: str = "updated_at"
    token_field: str = ""

    @property
    def _manager(self) -> Any:
        return self.model._default_manager

    def due(self, now: datetime) -> QuerySet:
        """Every row a claim at ``now`` may take."""
        return self._manager.filter(due(now), status=QUEUED)

    def unclaimed(self) -> dict[str, Any]:
        """What a row forgets when it leaves ``sending`` (its token and lease stamp)."""
        if not self.token_field:
            return {}
        return {self.token_field: "", self.lease_field: None}

    def claim(self, rows: QuerySet, *, now: datetime, limit: int) -> Claim:
        """Take up to ``limit`` of ``rows`` that are queued and due at ``now`` under a new
        lease stamped in real time; other senders skip them until it runs out. Inside a
        caller's transaction the claim is part of it (no savepoint)."""
        token = uuid.uuid4().hex if self.token_field else ""
        stamp = lease_clock()
        stamped = {"updated_at": stamp, self.lease_field: stamp}
        if token:
            stamped[self.token_field] = token
        with transaction.atomic(savepoint=False):
            taken = list(
                rows.select_for_update(skip_locked=True)
                .filter(due(now), status=QUEUED)
                .order_by("id")
                .values_list("id", "attempts")[:limit]
            )
            ids = [pk for pk, _ in taken]
            updated = (
                self._manager.filter(pk__in=ids, status=QUEUED).update(
                    status=SENDING, attempts=F("attempts") + 1, **stamped
                )
                if ids
                else 0
            )
        if token:
            held = Q(**{self.token_field: token})
        else:
            held = reduce(
                operator.or_, (Q(pk=pk, attempts=attempts + 1) for pk, attempts in taken), Q()
            )
        claim = Claim(queue=self, token=token, ids=ids, held=held, renewed_at=stamp)
        if updated != len(ids):
            claim.ids = sorted(claim.held_ids())
        return claim

    def recover_stuck(self, *, lease: ClaimLease, **requeued: Any) -> int:
        """Put back in ``queued`` (with ``requeued``'s fields) every row whose claim went
        ``lease`` of real time without renewal — its sender died or lost its way —
        whatever ``now`` a caller has. Returns how many."""
        return self._manager.filter(
            status=SENDING, **{f"{self.lease_field}__lt": lease.taken_before()}
        ).update(status=QUEUED, updated_at=lease_clock(), **self.unclaimed(), **requeued)


@dataclass
class Claim:
    """One sender's hold on rows of a :class:`Queue`: ``ids``, known by ``held`` (their
    token, or their attempt count), last renewed at ``renewed_at`` (real time)."""

    queue: Queue
    token: str
    ids: list[int]
    held: Q
    renewed_at: datetime

    def rows(self) -> QuerySet:
        """The claim's rows still ``sending`` under it: only those are its sender's to send
        and to record. A row recovered after its lease (and claimed again) no longer is."""
        return self.queue._manager.filter(self.held, pk__in=self.ids, status=SENDING)

    def held_ids(self) -> set[int]:
        return set(self.rows().values_list("pk", flat=True))

    def keep(self, policy: SendPolicy = SEND) -> set[int]:
        """Renew the lease if a quarter of it has passed, and return the rows still held:
        only those may be sent. A row taken back meanwhile (the lease ran out and another
        sender recovered it) is its new owner's to send and record."""
        stamp = lease_clock()
        if stamp - self.renewed_at >= policy.lease.renew_after():
            self.rows().update(**{self.queue.lease_field: stamp})
            self.renewed_at = stamp
        return self.held_ids()

    def release(self) -> None:
        """Give the rows back untouched (nothing was sent): ``sending`` → ``queued``."""
        self.rows().update(
            status=QUEUED,
            attempts=F("attempts") - 1,
            updated_at=lease_clock(),
            **self.queue.unclaimed(),
        )


@dataclass(frozen=True)
class Next:
    """Where a row goes after one attempt's :class:`Outcome`: ``status`` (sent, queued
    again ``retry_in`` seconds later at ``next_retry_at``, or failed) and why."""

    status: str
    detail: str = ""
    retry_in: float | None = None
    next_retry_at: datetime | None = None

    def fields(self, now: datetime) -> dict[str, Any]:
        """The row's columns this status writes (sent: ``sent_at``; queued:
        ``next_retry_at``; every status: ``last_error``)."""
        if self.status == SENT:
            return {"status": SENT, "sent_at": now, "last_error": ""}
        if self.status == QUEUED:
            return {
                "status": QUEUED,
                "next_retry_at": self.next_retry_at,
                "last_error": self.detail,
            }
        return {"status": self.status, "last_error": self.detail}


def next_status(outcome: Outcome, *, attempts: int, now: datetime, retry: RetryPolicy) -> Next:
    """The next status after attempt number ``attempts`` ended in ``outcome``: a retry
    waits for the provider's ``retry_after`` or the back-off, until ``max_attempts``; then,
    like a permanent refusal, it is failed."""
    if outcome.result == Result.SENT:
        return Next(SENT)
    if outcome.result == Result.RETRY and attempts < retry.max_attempts:
        wait = retry.wait(attempts, outcome.retry_after)
        return Next(
            QUEUED,
            detail=outcome.detail,
            retry_in=wait,
            next_retry_at=now + timedelta(seconds=wait),
        )
    return Next(FAILED, detail=outcome.detail)


_COUNTED = {
    "sent": "sent",
    "queued": "retrying",
    "failed": "failed",
    "skipped": "skipped",
    "empty": "empty",
}


@dataclass
class SendCounts:
    """How many sends ended how — the one tally of sending, kept by a send phase's report
    and read by a run's progress, summary and the command's totals."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    empty: int = 0

    def count(self, status: str) -> None:
        """One row recorded with ``status`` (``queued`` again counts as retrying)."""
        name = _COUNTED[status]
        setattr(self, name, getattr(self, name) + 1)

    def merge(self, other: SendCounts) -> None:
        for name in _COUNTED.values():
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def text(self) -> str:
        return (
            f"{self.sent:,} sent, {self.skipped:,} skipped, {self.failed:,} failed, "
            f"{self.retrying:,} retrying"
        )
