"""Sending one Delivery: claim it, resolve its destination, send, record the outcome.

The claim, its lease, the next status and recovery are the send pipeline's
(:mod:`notifications.sending`, shared with digests); this module knows what a delivery
says (:func:`message_for`), where it goes (:func:`channel_destination`) and what a failure
does to the organization's channel (:func:`channel_failed`). A duplicated task finds the
row claimed and sends nothing; the send happens after the claim has committed and the
outcome is recorded only if the claim is still ours (same row, still ``sending``, same
attempt). A worker that dies between send and record leaves the row in ``sending``, and
:func:`recover_stuck` re-queues it once its lease has run out in real time — the
documented window in which a message can go out twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from notifications import attention, metrics, sending, store
from notifications.channels import registry
from notifications.channels.base import (
    ChannelNotConfigured,
    Destination,
    Message,
    Outcome,
    Result,
)
from notifications.channels.deadline import CALL_DEADLINE, Deadline
from notifications.channels.registry import get_channel
from notifications.models import ChannelConfig, Delivery, DeliveryStatus
from notifications.planning import channel_off_drafts
from notifications.secrets import SecretUnreadable, decrypt
from notifications.unsubscribe import unsubscribe_url
from workspace.models import Membership, Role

log = logging.getLogger(__name__)


DELIVERIES = sending.Queue(Delivery)
"""Deliveries' lease runs from ``updated_at``; a claim knows its row by the attempt count."""
DISABLE_AFTER_FAILURES = 5


@dataclass(frozen=True)
class SendResult:
    status: str
    retry_in: float | None = None
    detail: str = ""  # why it failed, was skipped or waits for a retry


def delivery_claim(*, delivery_id: int, now: datetime) -> sending.Claim:
    """Take a queued delivery due at ``now`` for sending (an empty claim if another worker
    has it, it is done or not yet due), under a lease stamped in real time whatever ``now``
    is: the lease that :func:`recover_stuck` checks runs in real time."""
    return DELIVERIES.claim(Delivery.objects.filter(pk=delivery_id), now=now, limit=1)


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
    policy: sending.SendPolicy = sending.SEND,
    deadline: Deadline = CALL_DEADLINE,
) -> SendResult | None:
    """Send one delivery if it is ours to send, each provider call within ``deadline``.
    Returns what happened, or None when the claim failed (already sent, being sent, or not
    yet due) or was lost before the outcome could be recorded."""
    now = now or timezone.now()
    with transaction.atomic():
        claim = delivery_claim(delivery_id=delivery_id, now=now)
        delivery = claim.rows().select_related("team", "team__organization").first()
        held = delivery is not None and attention.held_on_retry(delivery, claim=claim, now=now)
    if delivery is None:
        return None
    if held:
        result: SendResult | None = SendResult(DeliveryStatus.HELD, detail="the recipient is quiet")
    else:
        result = _send_claimed(claim, delivery, now, policy, deadline)
    if result is not None:
        metrics.count_delivery(delivery.channel, result.status)
    return result


def _send_claimed(
    claim: sending.Claim,
    delivery: Delivery,
    now: datetime,
    policy: sending.SendPolicy,
    deadline: Deadline,
) -> SendResult | None:
    """One provider call for a delivery this worker claimed, and its outcome recorded."""
    try:
        outcome = _send(delivery, deadline)
    except SecretUnreadable as exc:  # the operator's to fix: fails, and counts against it
        return _record_unsent(claim, delivery, DeliveryStatus.FAILED, str(exc), now)
    except ChannelNotConfigured as exc:
        return _record_unsent(claim, delivery, DeliveryStatus.SKIPPED, str(exc), now)
    return _record(claim, delivery, outcome, now, policy)


def _send(delivery: Delivery, deadline: Deadline) -> Outcome:
    """The provider call: the org's channel settings (or the address), then one send."""
    destination = channel_destination(
        organization=delivery.team.organization,
        channel=delivery.channel,
        address=delivery.destination,
    )
    channel = get_channel(delivery.channel, deadline=deadline)
    return channel.send(message_for(delivery), destination)


def _record_unsent(
    claim: sending.Claim, delivery: Delivery, status: DeliveryStatus, detail: str, now: datetime
) -> SendResult:
    """A delivery that could not go: skipped (the channel is not configured) or failed (its
    secret cannot be decrypted, which counts against the org's channel)."""
    with transaction.atomic():
        unsent = claim.rows().update(status=status, last_error=detail, updated_at=now)
        if unsent and status == DeliveryStatus.FAILED:
            _delivery_channel_failed(delivery, detail, now)
    return SendResult(status, detail=detail)


def _record(
    claim: sending.Claim,
    delivery: Delivery,
    outcome: Outcome,
    now: datetime,
    policy: sending.SendPolicy,
) -> SendResult | None:
    """Write the outcome on the row while the claim is ours. Only a permanent failure (the
    provider's verdict) counts toward turning the channel off: retries that ran out — a
    provider down, answers cut off, deadlines — fail the delivery but not the channel."""
    step = sending.next_status(outcome, attempts=delivery.attempts, now=now, retry=policy.retry)
    with transaction.atomic():
        if not claim.rows().update(**step.fields(now), updated_at=now):
            return None
        if step.status == DeliveryStatus.SENT:
            _channel_succeeded(delivery)
        elif step.status == DeliveryStatus.FAILED and outcome.result == Result.FAILED:
            _delivery_channel_failed(delivery, outcome.detail, now)
    return SendResult(DeliveryStatus(step.status), retry_in=step.retry_in, detail=step.detail)


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


def recover_stuck(
    *, now: datetime | None = None, lease: sending.ClaimLease = sending.SENDING_LEASE
) -> list[int]:
    """Re-queue deliveries whose claim outlived its ``lease`` in real time (a worker died
    mid-send) — whatever ``now`` says, so a live send is never taken back — and return every
    queued delivery that is due at ``now``, for the caller to enqueue. A recovered row is
    due at ``now`` as a retry is (so the quiet-hours stage sees it again)."""
    now = now or timezone.now()
    DELIVERIES.recover_stuck(lease=lease, next_retry_at=now)
    return list(DELIVERIES.due(now).order_by("id").values_list("id", flat=True)[:1000])
