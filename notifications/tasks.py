"""Celery tasks. Thin: each calls one service function."""

from __future__ import annotations

import logging

from celery import shared_task

from notifications import checks, stream

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
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
