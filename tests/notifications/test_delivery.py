"""Integration: matches → deliveries → real Slack-protocol and SMTP servers on loopback.

Celery runs tasks inline here (see conftest), so ``deliver`` runs right after the
consumer's commit, as a worker would; the servers count what actually arrived.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import rollup, stream
from notifications.delivery import DISABLE_AFTER_FAILURES, delivery_send, recover_stuck
from notifications.models import (
    ChannelConfig,
    Delivery,
    DeliveryStatus,
    Notification,
    RollupWindow,
)
from notifications.secrets import encrypt
from notifications.sending import RETRY, SENDING_LEASE
from notifications.tasks import deliver, flush_rollups
from tests.factories import TriggerFactory
from tests.notifications.test_consumer import checkout_errors
from tests.servers.worker import celery_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def slack_config(team, token="xoxb-notiflow-test"):
    return ChannelConfig.objects.create(
        organization=team.organization,
        type="slack",
        name="Acme Slack",
        secret_encrypted=encrypt(token),
    )


def test_a_burst_of_1000_ingested_events_becomes_one_message_per_destination(
    team, member_of, drain, slack_server, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    bob = member_of(team, email="bob@example.com")
    slack_config(team)
    trigger = TriggerFactory(
        team=team,
        owner=alice,
        name="Checkout errors",
        config={"event": "checkout_error"},
        channels=[{"type": "in_app"}, {"type": "email"}, {"type": "slack", "target": "#alerts"}],
        delivery={"mode": "rollup", "window_seconds": 10},
        subscribers=[alice, bob],
    )
    stream.ensure_topics()
    for start in range(0, 1000, 100):
        batch = [
            {"event": "checkout_error", "distinct_id": f"u{i}", "properties": {"amount": i}}
            for i in range(start, start + 100)
        ]
        response = api_client.post(
            "/api/ingest/", {"api_key": team.api_token, "batch": batch}, format="json"
        )
        assert response.status_code == 202
    drain(expected=1000)

    assert slack_server.posts == [] and smtp_server.messages == []  # the window is open
    for user in (alice, bob):
        [row] = Notification.objects.filter(recipient=user, trigger=trigger)
        assert row.count == 1000
    assert sorted(RollupWindow.objects.values_list("channel", "count")) == [
        ("email", 1000),
        ("email", 1000),
        ("in_app", 1000),
        ("in_app", 1000),
        ("slack", 1000),
    ]

    later = timezone.now() + timedelta(seconds=11)
    for _ in range(2):  # a second flush (beat running twice) finds nothing more
        for delivery_id in rollup.flush_due(now=later):
            deliver(delivery_id)
    flush_rollups()

    [post] = slack_server.posts
    assert post.channel == "#alerts"
    assert "checkout_error seen 1,000 times between" in post.text
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "alice@example.com",
        "bob@example.com",
    ]
    assert "seen 1,000 times" in smtp_server.messages[0].message["Subject"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}


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


def test_slack_429s_are_retried_after_retry_after_and_the_message_arrives_once(team, slack_server):
    slack_config(team)
    delivery = Delivery.objects.create(
        idempotency_key="k1",
        channel="slack",
        destination="#alerts",
        team=team,
        message={"title": "hello"},
    )
    slack_server.rate_limit_next(retry_after=2, times=2)
    now = timezone.now()
    for _ in range(2):
        result = delivery_send(delivery_id=delivery.pk, now=now)
        assert (result.status, result.retry_in) == (DeliveryStatus.QUEUED, 2)
        assert delivery_send(delivery_id=delivery.pk, now=now + timedelta(seconds=1)) is None
        now += timedelta(seconds=2)
    assert delivery_send(delivery_id=delivery.pk, now=now).status == DeliveryStatus.SENT
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 3)
    assert delivery.last_error == ""
    assert len(slack_server.posts) == 3  # two answered 429, one accepted: one message


def test_smtp_down_once_is_retried_and_down_for_good_fails_while_slack_goes_through(
    team, member_of, smtp_server, slack_server, settings
):
    slack_config(team)
    user = member_of(team, email="carol@example.com")

    def email_delivery(key):
        return Delivery.objects.create(
            idempotency_key=key,
            channel="email",
            destination="carol@example.com",
            team=team,
            recipient=user,
            message={"title": "Checkout errors", "category": "alert"},
        )

    working_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = 1  # nothing listens: connection refused
    first = email_delivery("smtp-once")
    now = timezone.now()
    result = delivery_send(delivery_id=first.pk, now=now)
    assert result.status == DeliveryStatus.QUEUED
    settings.EMAIL_PORT = working_port
    assert (
        delivery_send(delivery_id=first.pk, now=now + timedelta(seconds=result.retry_in + 1)).status
        == DeliveryStatus.SENT
    )
    assert len(smtp_server.messages) == 1

    settings.EMAIL_PORT = 1
    doomed = email_delivery("smtp-never")
    slack = Delivery.objects.create(
        idempotency_key="slack-ok",
        channel="slack",
        destination="#alerts",
        team=team,
        message={"title": "Checkout errors"},
    )
    when = timezone.now()
    while (
        result := delivery_send(delivery_id=doomed.pk, now=when)
    ).status == DeliveryStatus.QUEUED:
        when += timedelta(seconds=result.retry_in + 1)
    doomed.refresh_from_db()
    assert doomed.status == DeliveryStatus.FAILED
    assert doomed.attempts == RETRY.max_attempts
    assert "smtp" in doomed.last_error.lower()
    assert delivery_send(delivery_id=slack.pk).status == DeliveryStatus.SENT
    assert len(slack_server.posts) == 1


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


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.slow
def test_a_worker_killed_mid_send_does_not_send_again_until_recovery(team, slack_server, tmp_path):
    """The redelivered task finds the row claimed and sends nothing; only the stuck-row
    recovery sends again — the documented crash window (provider accepted, row not written)."""
    slack_config(team)
    delivery = Delivery.objects.create(
        idempotency_key="killed",
        channel="slack",
        destination="#alerts",
        team=team,
        message={"title": "Checkout errors"},
    )
    env = {"SLACK_API_BASE_URL": slack_server.api_url}
    with celery_worker(tmp_path, env=env) as worker:
        slack_server.stall_next(8)
        deliver.delay(delivery.pk)
        assert wait_for(lambda: len(slack_server.posts) == 1), worker.log()[-3000:]
        assert worker.kill_children()
        assert wait_for(lambda: "WorkerLostError" in worker.log() or "Process" in worker.log())
        time.sleep(3)  # the task is redelivered to a new pool process
        assert len(slack_server.posts) == 1
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SENDING
        assert delivery.attempts == 1

    assert recover_stuck() == []  # the claim's lease (real time) has not run out
    # Eleven minutes pass: the dead worker's claim is older than its lease.
    Delivery.objects.filter(pk=delivery.pk).update(
        updated_at=timezone.now() - SENDING_LEASE.duration - timedelta(minutes=1)
    )
    assert recover_stuck() == [delivery.pk]
    assert delivery_send(delivery_id=delivery.pk).status == DeliveryStatus.SENT
    assert len(slack_server.posts) == 2  # the one documented repeat
