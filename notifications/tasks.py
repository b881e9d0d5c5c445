"""Celery tasks. Thin: each calls one service function. Services that enqueue one of these
after their commit do it through :mod:`notifications.enqueue` (by the names declared here),
so nothing this module imports imports it back."""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task
from django.utils import timezone

from notifications import attention, checks, counting, delivery, rollup, stream
from notifications.enqueue import DELIVER, RELAY_OUTBOX, deliver_all
from notifications.models import DeliveryStatus

log = logging.getLogger(__name__)


@shared_task(name=RELAY_OUTBOX, ignore_result=True)
def relay_outbox() -> int:
    """Publish pending outbox rows; when Kafka is down they wait for the next run."""
    try:
        return stream.relay_outbox()
    except stream.PublishFailed as exc:
        log.warning("outbox relay paused: %s", exc)
        return 0


@shared_task(ignore_result=True)
def run_checks() -> int:
    """Evaluate scheduled triggers (thresholds, significance, cohorts) that are due."""
    return checks.run_due_checks()


@shared_task(name=DELIVER, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def deliver(delivery_id: int) -> str | None:
    """Send one delivery. A duplicate of this task finds the row claimed and does nothing;
    a retry is re-enqueued with the countdown the channel or the backoff asked for."""
    result = delivery.delivery_send(delivery_id=delivery_id)
    if result is None:
        return None
    if result.retry_in is not None:
        log.info(
            "delivery %s not sent yet (%s); next attempt in %.0f s",
            delivery_id,
            result.detail,
            result.retry_in,
        )
        deliver.apply_async((delivery_id,), countdown=result.retry_in)
    elif result.status == DeliveryStatus.FAILED:
        log.warning("delivery %s failed: %s", delivery_id, result.detail)
    elif result.status == DeliveryStatus.HELD:
        log.info("delivery %s held: %s", delivery_id, result.detail)
    elif result.status == DeliveryStatus.SKIPPED:
        log.info("delivery %s skipped: %s", delivery_id, result.detail)
    else:
        log.info("delivery %s sent", delivery_id)
    return result.status


@shared_task(ignore_result=True)
def flush_rollups() -> int:
    """Close roll-up windows whose time is up and send one summary per destination."""
    return deliver_all(rollup.flush_due(now=timezone.now()))


@shared_task(ignore_result=True)
def recover_deliveries() -> int:
    """Re-enqueue due and stuck deliveries (a lost countdown, a worker killed mid-send)."""
    return deliver_all(delivery.recover_stuck())


@shared_task(ignore_result=True)
def release_held(now: str | None = None) -> int:
    """Send what quiet hours and do-not-disturb held, as one summary per person × channel,
    once their quiet time is over. ``now`` (ISO 8601) replaces the clock for a backfill."""
    moment = datetime.fromisoformat(now) if now else timezone.now()
    return deliver_all(attention.release_due(now=moment))


@shared_task(ignore_result=True)
def prune_claims() -> int:
    """Forget counted events older than the replay horizon (``counting.REPLAY_HORIZON``)."""
    return counting.prune_claims(now=timezone.now())
