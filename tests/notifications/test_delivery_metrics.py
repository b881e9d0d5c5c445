"""Each delivery attempt is counted where it happens — ``notiflow_deliveries_total`` by
channel and outcome (sent, retry, failed, skipped, held) — on the real send path against
loopback Slack and SMTP servers. A definition that nothing increments reads 0 forever."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from notifications.delivery import delivery_send
from notifications.models import ChannelConfig, Delivery, DeliveryStatus
from notifications.secrets import encrypt

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def counted(channel: str, outcome: str) -> float:
    labels = {"channel": channel, "outcome": outcome}
    return REGISTRY.get_sample_value("notiflow_deliveries_total", labels) or 0.0


def test_every_outcome_of_a_delivery_attempt_is_counted_by_channel(team, slack_server, smtp_server):
    before = {
        key: counted(*key) for key in [("email", "sent"), ("slack", "retry"), ("slack", "skipped")]
    }
    email = Delivery.objects.create(
        idempotency_key="m-email",
        channel="email",
        destination="carol@example.com",
        team=team,
        message={"title": "hello"},
    )
    assert delivery_send(delivery_id=email.pk).status == DeliveryStatus.SENT
    unconfigured = Delivery.objects.create(
        idempotency_key="m-slack-none",
        channel="slack",
        destination="#alerts",
        team=team,
        message={"title": "hello"},
    )
    assert delivery_send(delivery_id=unconfigured.pk).status == DeliveryStatus.SKIPPED
    ChannelConfig.objects.create(
        organization=team.organization,
        type="slack",
        name="Acme Slack",
        secret_encrypted=encrypt("xoxb-notiflow-test"),
    )
    limited = Delivery.objects.create(
        idempotency_key="m-slack-429",
        channel="slack",
        destination="#alerts",
        team=team,
        message={"title": "hello"},
    )
    slack_server.rate_limit_next(retry_after=2, times=1)
    assert delivery_send(delivery_id=limited.pk).status == DeliveryStatus.QUEUED
    assert delivery_send(delivery_id=email.pk) is None  # done: nothing attempted, not counted

    after = {key: counted(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == {
        ("email", "sent"): 1,
        ("slack", "retry"): 1,
        ("slack", "skipped"): 1,
    }
