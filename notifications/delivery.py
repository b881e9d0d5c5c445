"""Sending one Delivery: claim it, resolve its destination, send, record the outcome.

The claim is a conditional update (``queued`` → ``sending``), so a duplicated task sends
nothing. The send happens after the claim has committed and the outcome is recorded in its
own transaction; a worker that dies between the two leaves the row in ``sending``, and
:func:`recover_stuck` re-queues it after ``SENDING_TIMEOUT`` — the documented window in
which a message can go out twice.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from notifications.channels.base import (
    ChannelNotConfigured,
    Destination,
    Message,
    Outcome,
    Result,
)
from notifications.channels.registry import get_channel
from notifications.models import ChannelConfig, Delivery, DeliveryStatus, Notification
from notifications.secrets import decrypt
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


RETRY = RetryPolicy()
SENDING_TIMEOUT = timedelta(minutes=10)
DISABLE_AFTER_FAILURES = 5
ORG_CHANNELS = ("slack", "webhook", "telegram")


@dataclass(frozen=True)
class SendResult:
    status: str
    retry_in: float | None = None


def delivery_claim(*, delivery_id: int, now: datetime) -> Delivery | None:
    """Take a queued, due delivery for sending; None if another worker has it or it's done."""
    due = Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)
    claimed = Delivery.objects.filter(due, pk=delivery_id, status=DeliveryStatus.QUEUED).update(
        status=DeliveryStatus.SENDING, attempts=F("attempts") + 1, updated_at=now
    )
    if not claimed:
        return None
    return Delivery.objects.select_related("team", "team__organization").get(pk=delivery_id)


def channel_destination(*, organization, channel: str, address: str) -> Destination:
    """Where a message on ``channel`` goes for ``organization``: email and other per-person
    channels need only the address; Slack, webhooks and Telegram take the org's enabled
    channel settings with the secret decrypted. Raises :class:`ChannelNotConfigured` with
    the reason when the org has none (or it was turned off)."""
    if channel not in ORG_CHANNELS:
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
    secret_key = {"slack": "bot_token", "telegram": "bot_token", "webhook": "secret"}[channel]
    settings = {**config.config, secret_key: decrypt(config.secret_encrypted)}
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
    *, delivery_id: int, now: datetime | None = None, policy: RetryPolicy = RETRY
) -> SendResult | None:
    """Send one delivery if it is ours to send. Returns what happened, or None when the
    claim failed (already sent, being sent, or not yet due)."""
    now = now or timezone.now()
    with transaction.atomic():
        delivery = delivery_claim(delivery_id=delivery_id, now=now)
    if delivery is None:
        return None
    try:
        destination = channel_destination(
            organization=delivery.team.organization,
            channel=delivery.channel,
            address=delivery.destination,
        )
    except ChannelNotConfigured as exc:
        Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.SKIPPED, last_error=str(exc), updated_at=now
        )
        return SendResult(DeliveryStatus.SKIPPED)
    outcome = get_channel(delivery.channel).send(message_for(delivery), destination)
    return _record(delivery, outcome, now, policy)


def _record(delivery: Delivery, outcome: Outcome, now: datetime, policy: RetryPolicy) -> SendResult:
    with transaction.atomic():
        row = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING)
        if outcome.result == Result.SENT:
            row.update(status=DeliveryStatus.SENT, sent_at=now, last_error="", updated_at=now)
            _channel_succeeded(delivery)
            return SendResult(DeliveryStatus.SENT)
        if outcome.result == Result.RETRY and delivery.attempts < policy.max_attempts:
            wait = (
                outcome.retry_after
                if outcome.retry_after is not None
                else policy.delay(delivery.attempts)
            )
            row.update(
                status=DeliveryStatus.QUEUED,
                next_retry_at=now + timedelta(seconds=wait),
                last_error=outcome.detail,
                updated_at=now,
            )
            return SendResult(DeliveryStatus.QUEUED, retry_in=wait)
        row.update(status=DeliveryStatus.FAILED, last_error=outcome.detail, updated_at=now)
        _channel_failed(delivery, outcome.detail, now)
        return SendResult(DeliveryStatus.FAILED)


def _channel_succeeded(delivery: Delivery) -> None:
    if delivery.channel in ORG_CHANNELS:
        ChannelConfig.objects.filter(
            organization_id=delivery.team.organization_id, type=delivery.channel, enabled=True
        ).update(consecutive_failures=0)


def _channel_failed(delivery: Delivery, detail: str, now: datetime) -> None:
    """Count a permanent failure against the org's channel; after repeated failures turn it
    off and tell its owner (or the org's admins) in-app why."""
    if delivery.channel not in ORG_CHANNELS:
        return
    configs = ChannelConfig.objects.select_for_update().filter(
        organization_id=delivery.team.organization_id, type=delivery.channel, enabled=True
    )
    for config in configs:
        config.consecutive_failures += 1
        if config.consecutive_failures >= DISABLE_AFTER_FAILURES:
            config.enabled = False
            config.disabled_reason = (
                f"disabled after {config.consecutive_failures} failed deliveries; last: {detail}"
            )
            _tell_admins(config, delivery, now)
        config.save(update_fields=["consecutive_failures", "enabled", "disabled_reason"])


def _tell_admins(config: ChannelConfig, delivery: Delivery, now: datetime) -> None:
    admins = set(
        Membership.objects.filter(
            team__organization_id=config.organization_id, role__in=[Role.ADMIN, Role.OWNER]
        ).values_list("user_id", flat=True)
    )
    if config.created_by_id:
        admins.add(config.created_by_id)
    Notification.objects.bulk_create(
        [
            Notification(
                recipient_id=user_id,
                team_id=delivery.team_id,
                category="alert",
                title=f"{config} was turned off",
                body=config.disabled_reason,
                reason="You administer this organization's channels.",
                dedup_key=f"channel-disabled:{config.pk}:{now:%Y%m%d%H%M%S}:{user_id}",
                first_seen_at=now,
                last_seen_at=now,
            )
            for user_id in sorted(admins)
        ],
        ignore_conflicts=True,
    )


def recover_stuck(*, now: datetime | None = None) -> list[int]:
    """Re-queue deliveries stuck in ``sending`` past the timeout (a worker died mid-send)
    and return every queued delivery that is due, for the caller to enqueue."""
    now = now or timezone.now()
    Delivery.objects.filter(
        status=DeliveryStatus.SENDING, updated_at__lt=now - SENDING_TIMEOUT
    ).update(status=DeliveryStatus.QUEUED, next_retry_at=now, updated_at=now)
    due = Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)
    return list(
        Delivery.objects.filter(due, status=DeliveryStatus.QUEUED)
        .order_by("id")
        .values_list("id", flat=True)[:1000]
    )
