"""Integration: matches → deliveries → real Slack-protocol and SMTP servers on loopback.

Celery runs tasks inline here (see conftest), so ``deliver`` runs right after the
consumer's commit, as a worker would; the servers count what actually arrived.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import rollup, stream
from notifications.delivery import DISABLE_AFTER_FAILURES, delivery_send
from notifications.models import (
    ChannelConfig,
    Delivery,
    DeliveryStatus,
    Notification,
    RollupWindow,
)
from notifications.secrets import encrypt
from notifications.tasks import deliver, flush_rollups
from tests.factories import TriggerFactory
from tests.notifications.test_consumer import checkout_errors

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def slack_config(team, token="xoxb-notiflow-test"):
    return ChannelConfig.objects.create(
        organization=team.organization,
        type="slack",
        name="Acme Slack",
        secret_encrypted=encrypt(token),
    )


def test_a_burst_of_1000_becomes_one_slack_summary_and_one_in_app_row(
    team, member_of, drain, slack_server
):
    alice, bob = member_of(team), member_of(team)
    slack_config(team)
    trigger = TriggerFactory(
        team=team,
        owner=alice,
        name="Checkout errors",
        config={"event": "checkout_error"},
        channels=[{"type": "in_app"}, {"type": "slack", "target": "#alerts"}],
        delivery={"mode": "rollup", "window_seconds": 60},
        subscribers=[alice, bob],
    )
    stream.publish_events(checkout_errors(team, range(1000)))
    drain(expected=1000)

    assert slack_server.posts == []  # nothing goes out while the window is open
    for user in (alice, bob):
        [row] = Notification.objects.filter(recipient=user, trigger=trigger)
        assert row.count == 1000
    slack_window = RollupWindow.objects.get(channel="slack")
    assert slack_window.count == 1000
    assert len(slack_window.samples) == 5

    later = timezone.now() + timedelta(seconds=61)
    for delivery_id in rollup.flush_due(now=later):
        deliver(delivery_id)
    for delivery_id in rollup.flush_due(now=later):  # a second flush finds nothing
        deliver(delivery_id)
    flush_rollups()

    assert len(slack_server.posts) == 1
    post = slack_server.posts[0]
    assert post.channel == "#alerts"
    assert "checkout_error seen 1,000 times between" in post.text
    assert Delivery.objects.get().status == DeliveryStatus.SENT


def test_instant_email_goes_once_per_recipient_with_one_click_unsubscribe(
    team, member_of, drain, smtp_server, client
):
    alice = member_of(team, email="alice@example.com")
    trigger = TriggerFactory(
        team=team,
        owner=alice,
        config={"event": "checkout_error"},
        channels=[{"type": "email"}],
        subscribers=[alice],
    )
    stream.publish_events(checkout_errors(team, [500]))
    drain(expected=1)
    delivery = Delivery.objects.get(trigger=trigger)
    deliver(delivery.pk)  # a duplicated task: the claim makes it a no-op

    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["alice@example.com"]
    headers = mail.message
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = headers["List-Unsubscribe"].strip("<>")
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SENT

    path = unsubscribe.split("://", 1)[1].split("/", 1)[1]
    assert client.post(f"/{path}").status_code == 200  # RFC 8058 one-click, no login
    stream.publish_events(checkout_errors(team, [600]))
    drain(expected=1)
    assert Delivery.objects.filter(trigger=trigger).count() == 1
    assert len(smtp_server.messages) == 1


def test_slack_429_is_retried_after_retry_after_without_blocking(team, slack_server):
    slack_config(team)
    delivery = Delivery.objects.create(
        idempotency_key="k1",
        channel="slack",
        destination="#alerts",
        team=team,
        message={"title": "hello"},
    )
    slack_server.rate_limit_next(retry_after=30)
    now = timezone.now()
    result = delivery_send(delivery_id=delivery.pk, now=now)
    assert result.status == DeliveryStatus.QUEUED and result.retry_in == 30
    delivery.refresh_from_db()
    assert delivery.next_retry_at == now + timedelta(seconds=30)
    assert delivery_send(delivery_id=delivery.pk, now=now + timedelta(seconds=5)) is None
    assert delivery_send(delivery_id=delivery.pk, now=now + timedelta(seconds=31)).status == "sent"
    # Slack saw the rate-limited attempt and the accepted one; no third call.
    assert [p.channel for p in slack_server.posts] == ["#alerts", "#alerts"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)


def test_an_unconfigured_channel_is_skipped_and_the_others_still_go(
    team, member_of, drain, smtp_server
):
    alice = member_of(team, email="alice@example.com")
    TriggerFactory(
        team=team,
        owner=alice,
        config={"event": "checkout_error"},
        channels=[{"type": "slack", "target": "#alerts"}, {"type": "email"}],
    )
    stream.publish_events(checkout_errors(team, [500]))
    drain(expected=1)
    skipped = Delivery.objects.get(channel="slack")
    assert skipped.status == DeliveryStatus.SKIPPED
    assert "slack is not configured" in skipped.last_error
    assert Delivery.objects.get(channel="email").status == DeliveryStatus.SENT
    assert len(smtp_server.messages) == 1


def test_repeated_permanent_failures_turn_the_channel_off_and_tell_the_admin(
    team, member_of, slack_server
):
    admin = member_of(team, role="admin")
    config = slack_config(team, token="xoxb-wrong")
    for i in range(DISABLE_AFTER_FAILURES):
        delivery = Delivery.objects.create(
            idempotency_key=f"bad-{i}",
            channel="slack",
            destination="#alerts",
            team=team,
            message={"title": "hello"},
        )
        assert delivery_send(delivery_id=delivery.pk).status == DeliveryStatus.FAILED
    config.refresh_from_db()
    assert not config.enabled
    assert "invalid_auth" in config.disabled_reason
    note = Notification.objects.get(recipient=admin)
    assert note.title == "Slack · Acme Slack was turned off"
    after = Delivery.objects.create(
        idempotency_key="after", channel="slack", destination="#a", team=team, message={}
    )
    assert delivery_send(delivery_id=after.pk).status == DeliveryStatus.SKIPPED
