"""Integration: a push that comes due again after a wait — a retry, a recovered claim —
passes the attention stage again: if do-not-disturb or quiet hours began meanwhile, it is
held like a new push and goes out in the summary when they end."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import Delivery, DeliveryStatus
from notifications.tasks import recover_deliveries, release_held
from tests.factories import TriggerFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def ingest(api_client, team, name, n=1):
    batch = [{"event": name, "distinct_id": f"u{i}", "properties": {"i": i}} for i in range(n)]
    response = api_client.post(
        "/api/ingest/", {"api_key": team.api_token, "batch": batch}, format="json"
    )
    assert response.status_code == 202, response.content


def put(api_client, user, path, body):
    api_client.force_authenticate(user)
    response = api_client.put(path, body, format="json")
    api_client.force_authenticate(None)
    assert response.status_code == 200, response.content


def test_a_push_waiting_for_its_retry_when_do_not_disturb_starts_is_held(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    TriggerFactory(
        team=team,
        owner=alice,
        config={"event": "checkout_error"},
        channels=[{"type": "email"}],
        subscribers=[alice],
    )
    smtp_server.answer_next("451 4.3.0 Try again later")  # the first attempt is refused
    ingest(api_client, team, "checkout_error")
    drain(expected=1)
    [waiting] = Delivery.objects.filter(recipient=alice)
    assert waiting.status == DeliveryStatus.QUEUED and waiting.next_retry_at is not None

    put(api_client, alice, "/api/preferences/dnd/", {"preset": "hour"})
    # The retry's time comes (30 s later, well inside the hour): beat's re-enqueue sends it.
    Delivery.objects.filter(pk=waiting.pk).update(next_retry_at=timezone.now())
    recover_deliveries()

    assert smtp_server.messages == []  # do not disturb: nothing is pushed
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.HELD

    release_held(now=(waiting.held_until + timedelta(seconds=1)).isoformat())
    [summary] = smtp_server.messages
    assert "While you were away: 1 notification" in summary.message["Subject"]
