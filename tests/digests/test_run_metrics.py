"""A digest run is counted where it happens: ``notiflow_digest_runs_total`` and its duration
by period, the digests it built, and each digest sent or failed by period and channel — on
the real run against a loopback SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from digests.runs import digest_run
from digests.windows import Period
from tests.digests.factories import NotificationFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

DAY = datetime(2026, 3, 29, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 30, 9, 30, tzinfo=UTC)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_run_counts_itself_what_it_built_and_each_digest_sent_or_failed(subscriber, smtp_server):
    names = [
        ("notiflow_digest_runs_total", {"period": "daily"}),
        ("notiflow_digest_run_duration_seconds_count", {"period": "daily"}),
        ("notiflow_digests_built_total", {"period": "daily"}),
        ("notiflow_digests_total", {"period": "daily", "channel": "email", "outcome": "sent"}),
        ("notiflow_digests_total", {"period": "daily", "channel": "email", "outcome": "failed"}),
    ]
    before = [value(name, **labels) for name, labels in names]
    ana, team = subscriber()
    refused, _ = subscriber(team=team)
    for user in (ana, refused):
        NotificationFactory(recipient=user, team=team, at=DAY)
    smtp_server.refuse(refused.email)

    digest_run(period=Period.DAILY, now=NOW)
    digest_run(period=Period.DAILY, now=NOW, dry_run=True)  # writes nothing, counts nothing

    after = [value(name, **labels) for name, labels in names]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 2, 1, 1]
