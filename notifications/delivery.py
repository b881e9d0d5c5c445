"""Sending one Delivery: claim it, resolve its destination, send, record the outcome.

The claim is a conditional update (``queued`` → ``sending``), so a duplicated task sends
nothing. The send happens after the claim has committed and the outcome is recorded in its
own transaction, only if the claim is still ours (same row, still ``sending``, same
attempt). The claim is a lease in real time: it is stamped with the worker's clock (never
the ``now`` a caller passes for scheduling), and every provider call ends by its deadline
(:mod:`notifications.channels.deadline`), well inside :data:`SENDING_LEASE`. So a slow but
live send is never taken back; a worker that dies between send and record leaves the row
in ``sending``, and :func:`recover_stuck` re-queues it once the lease has run out — the
documented window in which a message can go out twice.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from notifications import attention, store
from notifications.channels import registry
from notifications.channels.base import (
    ChannelNotConfigured,
    Destination,
    Message,
    Outcome,
    Result,
)
from notifications.channels.deadline import CALL_DEADLINE, MAX_DEADLINE_SECONDS, Deadline
from notifications.channels.registry import get_channel
from notifications.models import ChannelConfig, Delivery, DeliveryStatus
from notifications.planning import channel_off_drafts
from notifications.secrets import SecretUnreadable, decrypt
from notifications.unsubscribe import unsubscribe_url
from workspace.models import Membership, Role

log = logging.getLogger(__name__)


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
    ``MAX_DEADLINE_SECONDS`` — so only a claim whose worker died is ever taken back."""

    duration: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.duration.total_seconds() <= MAX_DEADLINE_SECONDS:
            raise ValueError(
                f"a claim lease must be longer than any call deadline "
                f"({MAX_DEADLINE_SECONDS:g}s), not {self.duration}"
            )

    def taken_before(self) -> datetime:
        """Claims stamped before this moment (real time) have run out."""
        return timezone.now() - self.duration


RETRY = RetryPolicy()
SENDING_LEASE = ClaimLease()
DISABLE_AFTER_FAILURES = 5


@dataclass(frozen=True)
class SendResult:
    status: str
    retry_in: float | None = None
    detail: str = ""  # why it failed, was skipped or waits for a retry


def delivery_claim(*, delivery_id: int, now: datetime) -> Delivery | None:
    """Take a queued delivery due at ``now`` for sending; None if another worker has it or
    it's done. The claim is stamped with the real clock, whatever ``now`` is: the lease
    that :func:`recover_stuck` checks runs in real time."""
    due = Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)
    claimed = Delivery.objects.filter(due, pk=delivery_id, status=DeliveryStatus.QUEUED).update(
        status=DeliveryStatus.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return None
    return Delivery.objects.select_related("team", "team__organization").get(pk=delivery_id)


def channel_destination(*, organization, channel: str, address: str) -> Destination:
    """Where a message on ``channel`` goes for ``organization``: email and other personal
    channels need only the address; organization-level ones (Slack, webhooks, Telegram)
    take the org's enabled channel settings with the secret decrypted under its declared
    name. Raises :class:`ChannelNotConfigured` with the reason when the org has none (or it
    was turned off)."""
    declared = registry.secret_of(channel)
    if declared is None:
        if not address:
            raise ChannelNotConfigured(f"no address for {channel}")
        return Destination(address=address)
    config = (
        ChannelConfig.objects.filter(organization=organization, type=channel)
        .order_by("-enabled", "id")
        .first()
    )
    if config is None:
        raise ChannelNotConfigured(f"{channel} is not configured for {organization.name}")
    if not config.enabled:
        raise ChannelNotConfigured(f"{config} is disabled: {config.disabled_reason}")
    settings = {**config.config, declared.name: decrypt(config.secret_encrypted)}
    return Destination(
        address=address or str(config.config.get("default_target", "")), settings=settings
    )


def message_for(delivery: Delivery) -> Message:
    data = delivery.message
    return Message(
        title=data.get("title", ""),
        body=data.get("body", ""),
        url=data.get("url", ""),
        lines=tuple(data.get("lines", ())),
        count=int(data.get("count", 1)),
        team_name=data.get("team_name", delivery.team.name),
        unsubscribe_url=(
            unsubscribe_url(
                user_id=delivery.recipient_id,
                category=data.get("category", "alert"),
                channel=delivery.channel,
            )
            if delivery.recipient_id
            else ""
        ),
    )


def delivery_send(
    *,
    delivery_id: int,
    now: datetime | None = None,
    policy: RetryPolicy = RETRY,
    deadline: Deadline = CALL_DEADLINE,
) -> SendResult | None:
    """Send one delivery if it is ours to send, each provider call within ``deadline``.
    Returns what happened, or None when the claim failed (already sent, being sent, or not
    yet due) or was lost before the outcome could be recorded."""
    now = now or timezone.now()
    with transaction.atomic():
        delivery = delivery_claim(delivery_id=delivery_id, now=now)
        if delivery is not None and attention.held_on_retry(delivery, now=now):
            return SendResult(DeliveryStatus.HELD, detail="the recipient is quiet")
    if delivery is None:
        return None
    try:
        destination = channel_destination(
            organization=delivery.team.organization,
            channel=delivery.channel,
            address=delivery.destination,
        )
        channel = get_channel(delivery.channel, deadline=deadline)
        outcome = channel.send(message_for(delivery), destination)
    except SecretUnreadable as exc:  # the operator's to fix: fails, and counts against it
        with transaction.atomic():
            if _ours(delivery).update(
                status=DeliveryStatus.FAILED, last_error=str(exc), updated_at=now
            ):
                _delivery_channel_failed(delivery, str(exc), now)
        return SendResult(DeliveryStatus.FAILED, detail=str(exc))
    except ChannelNotConfigured as exc:
        _ours(delivery).update(status=DeliveryStatus.SKIPPED, last_error=str(exc), updated_at=now)
        return SendResult(DeliveryStatus.SKIPPED, detail=str(exc))
    return _record(delivery, outcome, now, policy)


def _ours(delivery: Delivery) -> QuerySet[Delivery]:
    """The row, if this claim still holds it: ``sending`` at the attempt we claimed. A
    claim recovered after its lease (and claimed again) no longer matches."""
    return Delivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.SENDING, attempts=delivery.attempts
    )


def _record(
    delivery: Delivery, outcome: Outcome, now: datetime, policy: RetryPolicy
) -> SendResult | None:
    """Write the outcome on the row while the claim is ours. Only a permanent failure (the
    provider's verdict) counts toward turning the channel off: retries that ran out — a
    provider down, answers cut off, deadlines — fail the delivery but not the channel."""
    with transaction.atomic():
        row = _ours(delivery)
        if outcome.result == Result.SENT:
            if not row.update(
                status=DeliveryStatus.SENT, sent_at=now, last_error="", updated_at=now
            ):
                return None
            _channel_succeeded(delivery)
            return SendResult(DeliveryStatus.SENT)
        if outcome.result == Result.RETRY and delivery.attempts < policy.max_attempts:
            wait = policy.wait(delivery.attempts, outcome.retry_after)
            if not row.update(
                status=DeliveryStatus.QUEUED,
                next_retry_at=now + timedelta(seconds=wait),
                last_error=outcome.detail,
                updated_at=now,
            ):
                return None
            return SendResult(DeliveryStatus.QUEUED, retry_in=wait, detail=outcome.detail)
        if not row.update(status=DeliveryStatus.FAILED, last_error=outcome.detail, updated_at=now):
            return None
        if outcome.result == Result.FAILED:
            _delivery_channel_failed(delivery, outcome.detail, now)
        return SendResult(DeliveryStatus.FAILED, detail=outcome.detail)


def _channel_succeeded(delivery: Delivery) -> None:
    if delivery.channel in registry.ORG_LEVEL:
        ChannelConfig.objects.filter(
            organization_id=delivery.team.organization_id, type=delivery.channel, enabled=True
        ).update(consecutive_failures=0)


def _delivery_channel_failed(delivery: Delivery, detail: str, now: datetime) -> None:
    if delivery.channel in registry.ORG_LEVEL:
        channel_failed(
            organization_id=delivery.team.organization_id,
            channel=delivery.channel,
            team_id=delivery.team_id,
            detail=detail,
            now=now,
        )


def channel_failed(
    *, organization_id: int, channel: str, team_id: int, detail: str, now: datetime
) -> None:
    """Count a permanent failure against the org's ``channel`` (a delivery's or a digest's);
    after repeated failures turn it off and tell its owner (or the org's admins) in-app why,
    under ``team_id``. Call it inside the transaction that records the failure."""
    configs = ChannelConfig.objects.select_for_update().filter(
        organization_id=organization_id, type=channel, enabled=True
    )
    for config in configs:
        config.consecutive_failures += 1
        if config.consecutive_failures >= DISABLE_AFTER_FAILURES:
            config.enabled = False
            config.disabled_reason = (
                f"disabled after {config.consecutive_failures} failed deliveries; last: {detail}"
            )
            _tell_admins(config, team_id, now)
        config.save(update_fields=["consecutive_failures", "enabled", "disabled_reason"])


def _tell_admins(config: ChannelConfig, team_id: int, now: datetime) -> None:
    admins = set(
        Membership.objects.filter(
            team__organization_id=config.organization_id, role__in=[Role.ADMIN, Role.OWNER]
        ).values_list("user_id", flat=True)
    )
    if config.created_by_id:
        admins.add(config.created_by_id)
    store.write(
        channel_off_drafts(
            channel=str(config),
            why=config.disabled_reason,
            channel_id=config.pk,
            team_id=team_id,
            admins=admins,
            now=now,
        )
    )


def recover_stuck(*, now: datetime | None = None, lease: ClaimLease = SENDING_LEASE) -> list[int]:
    """Re-queue deliveries whose claim outlived its ``lease`` in real time (a worker died
    mid-send) — whatever ``now`` says, so a live send is never taken back — and return every
    queued delivery that is due at ``now``, for the caller to enqueue."""
    now = now or timezone.now()
    Delivery.objects.filter(
        status=DeliveryStatus.SENDING, updated_at__lt=lease.taken_before()
    ).update(status=DeliveryStatus.QUEUED, next_retry_at=now, updated_at=now)
    due = Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)
    return list(
        Delivery.objects.filter(due, status=DeliveryStatus.QUEUED)
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )
