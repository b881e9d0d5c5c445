"""Each delivery attempt is counted where it happens — ``notiflow_deliveries_total`` by
channel and outcome (sent, retry, failed, skipped, held) — on the real send path against
loopback Slack and SMTP servers. A definition that nothing increments reads 0 forever."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from notifications.delivery import delivery_send
from notifications.models import Delivery, DeliveryStatus
from tests.notifications.test_delivery import slack_config

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def counted(channel: str, outcome: str) -> float:
    labels = {"channel": channel, "outcome": outcome}
    return REGISTRY.get_sample_value("notiflow_deliveries_total", labels) or 0.0


def attempt(team, channel: str, destination: str) -> str:
    """A queued delivery on ``channel``, sent once: the status it was left in."""
    row = Delivery.objects.create(
        idempotency_key=f"{channel}-{Delivery.objects.count()}",
        channel=channel,
        destination=destination,
        team=team,
        message={"title": "hello"},
    )
    return delivery_send(delivery_id=row.pk).status


def test_every_outcome_of_a_delivery_attempt_is_counted_by_channel(team, slack_server, smtp_server):
    before = {
        key: counted(*key) for key in [("email", "sent"), ("slack", "retry"), ("slack", "skipped")]
    }
    assert attempt(team, "email", "carol@example.com") == DeliveryStatus.SENT
    assert attempt(team, "slack", "#alerts") == DeliveryStatus.SKIPPED  # no Slack configured
    slack_config(team)
    slack_server.rate_limit_next(retry_after=2, times=1)
    assert attempt(team, "slack", "#alerts") == DeliveryStatus.QUEUED
    done = Delivery.objects.get(channel="email")
    assert delivery_send(delivery_id=done.pk) is None  # nothing attempted, not counted

    after = {key: counted(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == {
        ("email", "sent"): 1,
        ("slack", "retry"): 1,
        ("slack", "skipped"): 1,
    }
