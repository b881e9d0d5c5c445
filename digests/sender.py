"""Send phase: claim queued digests, send them, record what happened.

Claiming, the lease, the next status, recovery and the counts are the send pipeline's
(:mod:`notifications.sending`, shared with deliveries); this module renders digests
(:func:`prepare`), sends them (:func:`deliver`) and writes their rows (:func:`record`).

1. **Claim** (:func:`digest_claim`, one short transaction): queued, due digests →
   ``sending`` under the claim's own ``claim_token``, stamped in ``claimed_at``.
2. **Send**, after the claim has committed — the irrevocable part. Email goes out in
   batches over one SMTP connection (``EmailChannel.send_many``); Slack and Telegram one
   message at a time through the organization's bot. Before each of those sends the
   sender renews its lease (:meth:`~notifications.sending.Claim.keep`) and sends only the
   digests it still holds.
3. **Record** (one transaction per batch), only on rows the claim still holds: the next
   status from :func:`notifications.sending.next_status` (``sent``; ``queued`` again with
   ``next_retry_at``; ``failed`` for good after ``max_attempts`` or a permanent error);
   ``skipped`` when the channel is not configured; ``empty`` when the items are gone;
   ``failed`` when the organization's channel secret cannot be decrypted — the operator's
   to fix, so it counts against the channel as a failed delivery does
   (:func:`notifications.delivery.channel_failed`: turned off after repeated failures,
   its admins told).

Claims are leases in real time: ``now`` (a run's ``--now``) decides which windows and
retries are due; the lease is stamped and judged by the wall clock, so a backfill run a
week back, a run a day ahead and beat's own run all agree on whose claim has expired.
:func:`recover_stuck` takes back only digests whose claim has not been renewed for
``SendPolicy.lease`` of real time: only a sender that died between 2 and 3 — the one
window in which a digest can go out twice.

Every statement here is plain ORM and runs on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from digests import queries, render
from digests.models import (
    DIGEST_PREFERENCE,
    Digest,
    DigestChannel,
    DigestStatus,
    DigestTarget,
)
from digests.windows import Period, Window, due_at, next_window
from notifications import delivery as deliveries
from notifications import sending
from notifications.channels.base import (
    ChannelNotConfigured,
    Destination,
    Message,
    Outcome,
)
from notifications.channels.email import EmailChannel
from notifications.channels.registry import get_channel
from notifications.secrets import SecretUnreadable
from notifications.unsubscribe import unsubscribe_url
from workspace.models import Team

log = logging.getLogger(__name__)


DIGESTS = sending.Queue(Digest, lease_field="claimed_at", token_field="claim_token")
"""Digests' lease runs from ``claimed_at``; a claim knows its rows by ``claim_token``."""


@dataclass(frozen=True)
class Prepared:
    """A claimed digest, ready to go: its message, and where — or why it cannot go."""

    digest_id: int
    key: str
    user_id: int
    channel: str
    period: str
    attempts: int
    message: Message | None
    destination: Destination | None
    skip_reason: str = ""
    failure: str = ""  # the org's channel secret cannot be decrypted: fails, never skips
    organization_id: int | None = None  # whose channel the failure counts against


@dataclass
class Sent:
    """What happened to one digest in this send phase."""

    digest_id: int
    user_id: int
    period: str
    channel: str
    status: str
    error: str = ""


@dataclass
class SendReport(sending.SendCounts):
    """A send phase: how many it claimed, how each ended (the counts), every result, and
    in a dry run what would go out."""

    claimed: int = 0
    results: list[Sent] = field(default_factory=list)
    previews: list[tuple[Prepared, str]] = field(default_factory=list)

    def add(self, result: Sent) -> None:
        self.results.append(result)
        self.count(result.status)


def recover_stuck(*, policy: sending.SendPolicy = sending.SEND) -> int:
    """Re-queue, due at once, digests whose claim has gone ``policy.lease`` of real time
    without renewal (their sender died or lost its way), whatever ``now`` a run has."""
    return DIGESTS.recover_stuck(lease=policy.lease, next_retry_at=None)


def _scoped(
    rows: QuerySet[Digest], period: Period | str | None, user_ids: Collection[int] | None
) -> QuerySet[Digest]:
    if period is not None:
        rows = rows.filter(period=period)
    if user_ids is not None:
        rows = rows.filter(user_id__in=list(user_ids))
    return rows


def digest_claim(
    *,
    now: datetime,
    limit: int,
    period: Period | str | None = None,
    user_ids: Collection[int] | None = None,
) -> sending.Claim:
    """Take up to ``limit`` queued digests due at ``now`` for this sender under a new lease;
    other senders skip them until it runs out."""
    return DIGESTS.claim(_scoped(Digest.objects.all(), period, user_ids), now=now, limit=limit)


def due_queued(
    *,
    now: datetime,
    period: Period | str | None = None,
    user_ids: Collection[int] | None = None,
) -> QuerySet[Digest]:
    """Every digest :func:`digest_claim` would take, without taking any (``--dry-run``)."""
    return _scoped(DIGESTS.due(now), period, user_ids).order_by("id")


def render_context(
    *, window: Window, user_id: int, channel: str, digest_hour: int, key: str = ""
) -> render.Context:
    """Links, next digest time and unsubscribe URL around a digest's items."""
    return render.Context(
        window=window,
        base_url=settings.NOTIFLOW_BASE_URL,
        next_digest_at=due_at(next_window(window), digest_hour),
        unsubscribe_url=unsubscribe_url(
            user_id=user_id, category=DIGEST_PREFERENCE, channel=channel
        ),
        digest_key=key,
    )


def prepare(digest_ids: Sequence[int]) -> list[Prepared]:
    """Render each digest for its channel and resolve its destination. Reads only."""
    digests = list(Digest.objects.filter(pk__in=digest_ids).select_related("user").order_by("id"))
    items = queries.items_by_digest([d.pk for d in digests])
    hours = queries.digest_hours(d.user_id for d in digests)
    targets = {
        (t.user_id, t.channel): t
        for t in DigestTarget.objects.filter(
            user_id__in={d.user_id for d in digests}, enabled=True
        ).select_related("organization")
    }
    prepared = []
    for digest in digests:
        window = Window(
            Period(digest.period), digest.window_start, digest.window_end, digest.timezone
        )
        context = render_context(
            window=window,
            user_id=digest.user_id,
            channel=digest.channel,
            digest_hour=hours[digest.user_id],
            key=digest.digest_key,
        )
        view = render.build_view(items.get(digest.pk, ()), context)
        message = None if view.is_empty else render.to_message(view, digest.channel)
        destination, reason, failure, organization_id = None, "", "", None
        try:
            destination = _destination_for(digest, targets)
        except SecretUnreadable as exc:
            failure, organization_id = (
                str(exc),
                targets[(digest.user_id, digest.channel)].organization_id,
            )
        except ChannelNotConfigured as exc:
            reason = str(exc)
        prepared.append(
            Prepared(
                digest_id=digest.pk,
                key=digest.digest_key,
                user_id=digest.user_id,
                channel=digest.channel,
                period=digest.period,
                attempts=digest.attempts,
                message=message,
                destination=destination,
                skip_reason=reason,
                failure=failure,
                organization_id=organization_id,
            )
        )
    return prepared


def _destination_for(digest: Digest, targets: dict) -> Destination:
    if digest.channel == DigestChannel.EMAIL:
        if not (digest.user.email or "").strip():
            raise ChannelNotConfigured("the user has no email address")
        return Destination(address=digest.user.email)
    target = targets.get((digest.user_id, digest.channel))
    if target is None or not target.address.strip():
        raise ChannelNotConfigured(f"no {digest.channel} address for this user's digest")
    return deliveries.channel_destination(
        organization=target.organization, channel=digest.channel, address=target.address
    )


def deliver(
    prepared: list[Prepared],
    outcomes: dict[int, Outcome | None],
    *,
    held: Callable[[], Collection[int]],
) -> None:
    """Send every prepared digest that can go, filling ``outcomes`` by position as answers
    come in: an :class:`Outcome`, or ``None`` for a digest that cannot go (skipped, empty);
    a digest whose channel secret no key decrypts is a failed outcome, not sent.
    A position left out is unknown — the caller leaves that row in ``sending``. ``held()``
    (a :meth:`Claim.keep`) is asked before the email batch and before each other send;
    a digest no longer held is not sent and its position is left out. Email goes in one
    ``send_many`` batch; the rest one by one. A channel that turns out not to be
    configured (no bot token) replaces its entry with one that says why."""
    mail = []
    for i, p in enumerate(prepared):
        if p.message is not None and p.failure:
            outcomes[i] = Outcome.failed(p.failure)
        elif p.message is None or p.destination is None:
            outcomes[i] = None
        elif p.channel == DigestChannel.EMAIL:
            mail.append(i)
    if mail:
        ours = held()
        mail = [i for i in mail if prepared[i].digest_id in ours]
    if mail:
        sent = EmailChannel().send_many(
            [(prepared[i].message, prepared[i].destination) for i in mail]  # type: ignore[misc]
        )
        outcomes.update(zip(mail, sent, strict=True))
    for i, p in enumerate(prepared):
        if i in outcomes or p.channel == DigestChannel.EMAIL:
            continue
        if p.digest_id not in held():
            continue
        try:
            outcomes[i] = get_channel(p.channel).send(p.message, p.destination)  # type: ignore[arg-type]
        except ChannelNotConfigured as exc:
            prepared[i] = replace(p, destination=None, skip_reason=str(exc))
            outcomes[i] = None


_CLEARED: dict = {"sent_at": None, "next_retry_at": None, "provider_id": "", "last_error": ""}


def _outcome_fields(
    p: Prepared, outcome: Outcome | None, now: datetime, policy: sending.SendPolicy
) -> tuple[str, dict]:
    """The status a digest moves to after this attempt, and the fields that go with it."""
    if p.message is None:
        return DigestStatus.EMPTY, dict(_CLEARED)
    if outcome is None:
        return DigestStatus.SKIPPED, {**_CLEARED, "last_error": p.skip_reason}
    step = sending.next_status(outcome, attempts=p.attempts, now=now, retry=policy.retry)
    fields = {**_CLEARED, **step.fields(now)}
    if step.status == DigestStatus.SENT:
        fields["provider_id"] = outcome.provider_id[:300]
    return DigestStatus(fields.pop("status")), fields


RECORDED_FIELDS = (
    "status",
    "sent_at",
    "next_retry_at",
    "provider_id",
    "last_error",
    "claim_token",
    "claimed_at",
    "updated_at",
)


def record(
    claim: sending.Claim,
    prepared: Sequence[Prepared],
    outcomes: Sequence[Outcome | None],
    *,
    now: datetime,
    policy: sending.SendPolicy = sending.SEND,
) -> list[Sent]:
    """Write each outcome on its row — only rows ``claim`` still holds (after its lease ran
    out another sender may have taken one back). In one transaction: lock the rows still
    ``sending`` under the claim's token, then one ``bulk_update`` of those; the locked
    rows are the ones that were ours, and no recovery can slip in between."""
    if not prepared:
        return []
    stamp = sending.lease_clock()
    with transaction.atomic():
        ours = set(
            claim.rows()
            .select_for_update()
            .filter(pk__in=[p.digest_id for p in prepared])
            .values_list("pk", flat=True)
        )
        rows, results = [], []
        for p, outcome in zip(prepared, outcomes, strict=True):
            if p.digest_id not in ours:
                log.warning("digest %s was taken back while sending; not recording", p.digest_id)
                continue
            status, fields = _outcome_fields(p, outcome, now, policy)
            rows.append(
                Digest(
                    pk=p.digest_id, status=status, updated_at=stamp, **DIGESTS.unclaimed(), **fields
                )
            )
            results.append(
                Sent(p.digest_id, p.user_id, p.period, p.channel, status, fields["last_error"])
            )
            if status == DigestStatus.FAILED and p.failure:
                _count_against_channel(p, now)
        Digest.objects.bulk_update(rows, RECORDED_FIELDS)
    return results


def _count_against_channel(p: Prepared, now: datetime) -> None:
    """A digest's secret failure counts against its organization's channel, as a
    delivery's does; the admins' notice goes under the user's first team there."""
    teams = Team.objects.filter(organization_id=p.organization_id).order_by("id")
    ids = teams.values_list("id", flat=True)
    team_id = ids.filter(memberships__user_id=p.user_id).first() or ids.first()
    if team_id is not None and p.organization_id is not None:
        deliveries.channel_failed(
            organization_id=p.organization_id,
            channel=p.channel,
            team_id=team_id,
            detail=p.failure,
            now=now,
        )


def digest_send(
    *,
    now: datetime,
    period: Period | str | None = None,
    dry_run: bool = False,
    user_ids: Collection[int] | None = None,
    policy: sending.SendPolicy = sending.SEND,
    on_batch: Callable[[list[Sent], SendReport], None] | None = None,
) -> SendReport:
    """Send every queued digest that is due at ``now`` (of ``period``, and of ``user_ids``,
    if given). ``on_batch`` is handed each batch's results and the running report.

    ``dry_run`` renders what would go out into ``report.previews`` and writes nothing.
    """
    if dry_run:
        return _preview(now=now, period=period, user_ids=user_ids, policy=policy)
    report = SendReport()
    recover_stuck(policy=policy)
    while (
        claim := digest_claim(now=now, limit=policy.batch_size, period=period, user_ids=user_ids)
    ).ids:
        report.claimed += len(claim.ids)
        results = _send_batch(claim, now=now, policy=policy)
        for result in results:
            report.add(result)
            if result.status in (DigestStatus.FAILED, DigestStatus.QUEUED):
                log.warning(
                    "digest %s of user %s not sent (%s): %s",
                    result.digest_id,
                    result.user_id,
                    result.status,
                    result.error,
                )
        if on_batch is not None:
            on_batch(results, report)
    return report


def _preview(
    *,
    now: datetime,
    period: Period | str | None,
    user_ids: Collection[int] | None,
    policy: sending.SendPolicy,
) -> SendReport:
    """A dry run: render every digest due into ``previews``; write nothing."""
    report = SendReport()
    ids = list(due_queued(now=now, period=period, user_ids=user_ids).values_list("id", flat=True))
    for start in range(0, len(ids), policy.batch_size):
        for p in prepare(ids[start : start + policy.batch_size]):
            report.previews.append((p, render.plain_text(p.message) if p.message else ""))
    return report


def _send_batch(claim: sending.Claim, *, now: datetime, policy: sending.SendPolicy) -> list[Sent]:
    """Prepare, send and record one claim's digests; a batch that cannot be prepared is
    given back untouched."""
    try:
        prepared = prepare(claim.ids)
    except BaseException:
        claim.release()
        raise
    outcomes: dict[int, Outcome | None] = {}
    try:
        deliver(prepared, outcomes, held=partial(claim.keep, policy))
    finally:
        # Record every answer we have, even when a send raised: a digest that went out
        # must not stay in ``sending`` and be sent again once its lease runs out.
        known = sorted(outcomes)
        results = record(
            claim,
            [prepared[i] for i in known],
            [outcomes[i] for i in known],
            now=now,
            policy=policy,
        )
    return results
