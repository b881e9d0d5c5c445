"""Send phase: claim queued digests, send them, record what happened.

1. **Claim** (one short transaction): ``SELECT … FOR UPDATE SKIP LOCKED`` over queued,
   due digests, then ``queued`` → ``sending`` and ``attempts + 1``. Two senders started
   together claim disjoint rows.
2. **Send**, after the claim has committed — the irrevocable part. Email goes out in
   batches over one SMTP connection (``EmailChannel.send_many``); Slack and Telegram one
   message at a time through the organization's bot.
3. **Record** (one statement per batch), only on rows still ``sending``: ``sent``;
   ``queued`` again with ``next_retry_at`` from :class:`~notifications.delivery.RetryPolicy`
   (the channel's ``retry_after`` when it gave one); ``failed`` for good after
   ``max_attempts`` or a permanent error; ``skipped`` when the channel is not configured.

A sender that dies between 2 and 3 leaves rows in ``sending``; :func:`recover_stuck`
re-queues them after ``SENDING_TIMEOUT`` — the one window in which a digest can go out
twice, as for deliveries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q

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
from notifications.channels.base import (
    ChannelNotConfigured,
    Destination,
    Message,
    Outcome,
    Result,
)
from notifications.channels.email import EmailChannel
from notifications.channels.registry import get_channel
from notifications.unsubscribe import unsubscribe_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendPolicy:
    """``batch_size`` digests are claimed per transaction and mailed per SMTP connection."""

    batch_size: int = 100
    retry: deliveries.RetryPolicy = deliveries.RETRY
    sending_timeout: timedelta = deliveries.SENDING_TIMEOUT


SEND = SendPolicy()


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


@dataclass
class Sent:
    """What happened to one digest in this send phase."""

    digest_id: int
    user_id: int
    period: str
    status: str
    error: str = ""


@dataclass
class SendReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    empty: int = 0
    results: list[Sent] = field(default_factory=list)
    previews: list[tuple[Prepared, str]] = field(default_factory=list)

    def add(self, result: Sent) -> None:
        self.results.append(result)
        name = {
            DigestStatus.SENT: "sent",
            DigestStatus.QUEUED: "retrying",
            DigestStatus.FAILED: "failed",
            DigestStatus.SKIPPED: "skipped",
            DigestStatus.EMPTY: "empty",
        }[DigestStatus(result.status)]
        setattr(self, name, getattr(self, name) + 1)


def due_filter(now: datetime) -> Q:
    """Queued rows with no retry pending, or whose retry time has come."""
    return Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)


def recover_stuck(*, now: datetime, policy: SendPolicy = SEND) -> int:
    """Re-queue digests left in ``sending`` longer than the timeout (a sender died)."""
    return Digest.objects.filter(
        status=DigestStatus.SENDING, updated_at__lt=now - policy.sending_timeout
    ).update(status=DigestStatus.QUEUED, next_retry_at=now, updated_at=now)


def digest_claim(
    *,
    now: datetime,
    limit: int,
    period: Period | str | None = None,
    user_ids: Collection[int] | None = None,
) -> list[int]:
    """Take up to ``limit`` queued, due digests for this sender; other senders skip them."""
    with transaction.atomic():
        rows = Digest.objects.select_for_update(skip_locked=True).filter(
            due_filter(now), status=DigestStatus.QUEUED
        )
        if period is not None:
            rows = rows.filter(period=period)
        if user_ids is not None:
            rows = rows.filter(user_id__in=list(user_ids))
        ids = list(rows.order_by("id").values_list("id", flat=True)[:limit])
        if ids:
            Digest.objects.filter(pk__in=ids).update(
                status=DigestStatus.SENDING, attempts=F("attempts") + 1, updated_at=now
            )
    return ids


def due_queued(
    *,
    now: datetime,
    period: Period | str | None = None,
    user_ids: Collection[int] | None = None,
) -> list[int]:
    """Every digest :func:`digest_claim` would take, without taking any (``--dry-run``)."""
    rows = Digest.objects.filter(due_filter(now), status=DigestStatus.QUEUED)
    if period is not None:
        rows = rows.filter(period=period)
    if user_ids is not None:
        rows = rows.filter(user_id__in=list(user_ids))
    return list(rows.order_by("id").values_list("id", flat=True))


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
        destination, reason = None, ""
        try:
            destination = _destination_for(digest, targets)
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


def deliver(prepared: list[Prepared], outcomes: dict[int, Outcome | None]) -> None:
    """Send every prepared digest that can go, filling ``outcomes`` by position as answers
    come in: an :class:`Outcome`, or ``None`` for a digest that cannot go (skipped, empty).
    A position left out is unknown — the caller leaves that row in ``sending``. Email goes
    in one ``send_many`` batch; the rest one by one. A channel that turns out not to be
    configured (no bot token) replaces its entry with one that says why."""
    mail = []
    for i, p in enumerate(prepared):
        if p.message is None or p.destination is None:
            outcomes[i] = None
        elif p.channel == DigestChannel.EMAIL:
            mail.append(i)
    if mail:
        sent = EmailChannel().send_many(
            [(prepared[i].message, prepared[i].destination) for i in mail]  # type: ignore[misc]
        )
        outcomes.update(zip(mail, sent, strict=True))
    for i, p in enumerate(prepared):
        if i in outcomes or p.channel == DigestChannel.EMAIL:
            continue
        try:
            outcomes[i] = get_channel(p.channel).send(p.message, p.destination)  # type: ignore[arg-type]
        except ChannelNotConfigured as exc:
            prepared[i] = replace(p, destination=None, skip_reason=str(exc))
            outcomes[i] = None


def release(digest_ids: Sequence[int], *, now: datetime) -> None:
    """Give claimed digests back untouched (nothing was sent): ``sending`` → ``queued``."""
    Digest.objects.filter(pk__in=digest_ids, status=DigestStatus.SENDING).update(
        status=DigestStatus.QUEUED, attempts=F("attempts") - 1, updated_at=now
    )


def _outcome_fields(
    p: Prepared, outcome: Outcome | None, now: datetime, policy: SendPolicy
) -> tuple[str, dict]:
    """The status a digest moves to after this attempt, and the fields that go with it."""
    fields: dict = {"sent_at": None, "next_retry_at": None, "provider_id": "", "last_error": ""}
    if p.message is None:
        return DigestStatus.EMPTY, fields
    if outcome is None:
        return DigestStatus.SKIPPED, {**fields, "last_error": p.skip_reason}
    if outcome.result == Result.SENT:
        return DigestStatus.SENT, {
            **fields,
            "sent_at": now,
            "provider_id": outcome.provider_id[:300],
        }
    if outcome.result == Result.RETRY and p.attempts < policy.retry.max_attempts:
        wait = (
            outcome.retry_after
            if outcome.retry_after is not None
            else policy.retry.delay(p.attempts)
        )
        return DigestStatus.QUEUED, {
            **fields,
            "next_retry_at": now + timedelta(seconds=wait),
            "last_error": outcome.detail,
        }
    return DigestStatus.FAILED, {**fields, "last_error": outcome.detail}


def record(
    prepared: Sequence[Prepared],
    outcomes: Sequence[Outcome | None],
    *,
    now: datetime,
    policy: SendPolicy = SEND,
) -> list[Sent]:
    """Write each outcome on its row — only rows still ``sending``, i.e. still ours (after a
    timeout another sender may have re-queued one). One ``UPDATE … FROM (VALUES …) WHERE
    status = 'sending' RETURNING id`` for the whole batch: the row lock and the status check
    happen in the same statement, and the ids it returns are the rows that were ours."""
    rows: list[tuple] = []
    outcome_of: dict[int, tuple[Prepared, str, dict]] = {}
    for p, outcome in zip(prepared, outcomes, strict=True):
        status, fields = _outcome_fields(p, outcome, now, policy)
        outcome_of[p.digest_id] = (p, status, fields)
        rows.append(
            (
                p.digest_id,
                status,
                fields["sent_at"],
                fields["next_retry_at"],
                fields["provider_id"],
                fields["last_error"],
            )
        )
    if not rows:
        return []
    table = Digest._meta.db_table
    values = ", ".join(["(%s::bigint, %s, %s::timestamptz, %s::timestamptz, %s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS d SET status = v.status, sent_at = v.sent_at, "
            "next_retry_at = v.next_retry_at, provider_id = v.provider_id, "
            "last_error = v.last_error, updated_at = %s "
            f"FROM (VALUES {values}) AS v(id, status, sent_at, next_retry_at, provider_id, "
            "last_error) WHERE d.id = v.id AND d.status = %s RETURNING d.id",
            [now, *(value for row in rows for value in row), DigestStatus.SENDING],
        )
        ours = {row[0] for row in cursor.fetchall()}
    results = []
    for digest_id, (p, status, fields) in outcome_of.items():
        if digest_id not in ours:
            log.warning("digest %s was taken back while sending; not recording", digest_id)
            continue
        results.append(Sent(digest_id, p.user_id, p.period, status, fields["last_error"]))
    return results


def digest_send(
    *,
    now: datetime,
    period: Period | str | None = None,
    dry_run: bool = False,
    user_ids: Collection[int] | None = None,
    policy: SendPolicy = SEND,
    on_batch: Callable[[list[Sent]], None] | None = None,
) -> SendReport:
    """Send every queued digest that is due at ``now`` (of ``period``, and of ``user_ids``,
    if given).

    ``dry_run`` renders what would go out into ``report.previews`` and writes nothing.
    """
    report = SendReport()
    if dry_run:
        ids = due_queued(now=now, period=period, user_ids=user_ids)
        for start in range(0, len(ids), policy.batch_size):
            for p in prepare(ids[start : start + policy.batch_size]):
                text = render.plain_text(p.message) if p.message else ""
                report.previews.append((p, text))
        return report
    recover_stuck(now=now, policy=policy)
    while True:
        ids = digest_claim(now=now, limit=policy.batch_size, period=period, user_ids=user_ids)
        if not ids:
            break
        report.claimed += len(ids)
        try:
            prepared = prepare(ids)
        except BaseException:
            release(ids, now=now)
            raise
        outcomes: dict[int, Outcome | None] = {}
        try:
            deliver(prepared, outcomes)
        finally:
            # Record every answer we have, even when a send raised: a digest that went out
            # must not stay in ``sending`` and be sent again after the timeout.
            known = sorted(outcomes)
            results = record(
                [prepared[i] for i in known], [outcomes[i] for i in known], now=now, policy=policy
            )
        for result in results:
            report.add(result)
        for result in results:
            if result.status in (DigestStatus.FAILED, DigestStatus.QUEUED):
                log.warning(
                    "digest %s of user %s not sent (%s): %s",
                    result.digest_id,
                    result.user_id,
                    result.status,
                    result.error,
                )
        if on_batch is not None:
            on_batch(results)
    return report
