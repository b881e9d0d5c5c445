"""Integration: a provider that answers slowly, half, or with an absurd ``Retry-After``.

Every outbound call has an overall deadline, a claim is a lease in real time, a delay the
provider asks for is capped, and an answer cut off mid-way is a retry that does not count
toward switching the channel off. All through ``delivery_send`` / the ``deliver`` task on
the local protocol servers.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from notifications.channels.base import RETRY_AFTER_CAP
from notifications.channels.deadline import CALL_DEADLINE, Deadline
from notifications.delivery import delivery_send, recover_stuck
from notifications.models import ChannelConfig, Delivery, DeliveryStatus
from notifications.secrets import encrypt
from notifications.sending import RETRY, SENDING_LEASE
from notifications.tasks import deliver
from tests.servers.http_sink import Reply

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SHORT = Deadline(1.5)
# Time for a send cut at SHORT to come back: the deadline, the row's update, a loaded CI box.
SHORT_GRACE = SHORT.seconds + 3.0


def org_channel(team, type, *, secret="xoxb-notiflow-test", **config):
    return ChannelConfig.objects.create(
        organization=team.organization,
        type=type,
        name=f"Acme {type}",
        config=config,
        secret_encrypted=encrypt(secret),
    )


def a_delivery(team, channel, destination, key="d1", recipient=None):
    return Delivery.objects.create(
        idempotency_key=key,
        channel=channel,
        destination=destination,
        team=team,
        recipient=recipient,
        message={"title": "checkout_error seen 1,000 times"},
    )


class InThread:
    """Run a send in a thread of its own (its own DB connection), as a worker would, so the
    test can look at the row and run the recovery while the send is still going."""

    def __init__(self, send):
        self.result = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.elapsed: float | None = None
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send):
        try:
            self.result = send()
        except BaseException as exc:  # handed to the test in join()
            self.error = exc
        finally:
            self.elapsed = time.monotonic() - self.started
            connection.close()

    def join(self, timeout):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the send was still going after {timeout:g}s"
        if self.error is not None:
            raise self.error
        return self.result


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def status(delivery):
    delivery.refresh_from_db()
    return delivery.status


@pytest.mark.slow
def test_a_slack_answer_dripped_byte_by_byte_ends_in_a_retry_by_the_production_deadline(
    team, slack_server
):
    """Issue #12 symptom 5: one byte every 2 s never trips a per-read timeout; the deliver
    task still gives the worker back by the overall deadline, with the row queued for a
    retry, and a recovery run in the meantime — even one whose ``now`` is past the lease —
    sends nothing a second time."""
    org_channel(team, "slack")
    delivery = a_delivery(team, "slack", "#alerts")
    slack_server.drip_next(2.0)

    send = InThread(lambda: deliver(delivery.pk))
    wait_for(lambda: len(slack_server.posts) == 1)
    assert status(delivery) == DeliveryStatus.SENDING
    for now in (timezone.now(), timezone.now() + SENDING_LEASE.duration + timedelta(minutes=1)):
        for delivery_id in recover_stuck(now=now):
            deliver(delivery_id)
    assert len(slack_server.posts) == 1
    assert status(delivery) == DeliveryStatus.SENDING

    assert send.join(CALL_DEADLINE.seconds + 5) == DeliveryStatus.QUEUED
    assert send.elapsed < CALL_DEADLINE.seconds + 5
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    assert "deadline" in delivery.last_error
    assert delivery.next_retry_at is not None
    assert len(slack_server.posts) == 1


@pytest.mark.parametrize("kind", ["slack", "webhook", "telegram", "email"])
def test_a_dripping_provider_gives_the_worker_back_at_the_deadline(
    kind, team, member_of, settings, request
):
    """Each channel's per-read timeout (10 s for HTTP, 1 s for SMTP here) is never reached;
    the overall deadline still ends the send and the row is queued for a retry."""
    if kind == "slack":
        server = request.getfixturevalue("slack_server")
        org_channel(team, "slack")
        delivery = a_delivery(team, "slack", "#alerts")
        server.drip_next(0.2)
    elif kind == "webhook":
        settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True
        server = request.getfixturevalue("http_sink")
        org_channel(team, "webhook", secret="s3cret")
        delivery = a_delivery(team, "webhook", f"{server.url}/hook")
        server.drip_next(0.2)
    elif kind == "telegram":
        server = request.getfixturevalue("telegram_server")
        org_channel(team, "telegram", secret="123456:TEST-token")
        delivery = a_delivery(team, "telegram", "-100123456")
        server.drip_next(0.2)
    else:
        server = request.getfixturevalue("smtp_server")
        user = member_of(team, email="ada@example.com")
        delivery = a_delivery(team, "email", "ada@example.com", recipient=user)
        server.drip_next(0.05)

    send = InThread(lambda: delivery_send(delivery_id=delivery.pk, deadline=SHORT))
    result = send.join(SHORT_GRACE + 2)

    assert result.status == DeliveryStatus.QUEUED
    assert send.elapsed < SHORT_GRACE
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.QUEUED
    assert f"within {SHORT.seconds:g}s" in delivery.last_error


def test_a_claim_is_a_lease_in_real_time_whatever_now_the_send_was_given(team, http_sink, settings):
    """A send run with a ``now`` an hour back (a backfill) and one still going while a
    recovery run believes it is past the lease are both live claims: nothing re-queues them,
    nothing sends them twice."""
    settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True
    org_channel(team, "webhook", secret="s3cret")
    delivery = a_delivery(team, "webhook", f"{http_sink.url}/hook")
    http_sink.drip_next(0.2)
    an_hour_ago = timezone.now() - timedelta(hours=1)

    send = InThread(lambda: delivery_send(delivery_id=delivery.pk, now=an_hour_ago, deadline=SHORT))
    wait_for(lambda: len(http_sink.requests) == 1)
    for now in (None, timezone.now() + SENDING_LEASE.duration + timedelta(minutes=1)):
        for delivery_id in recover_stuck(now=now):
            delivery_send(delivery_id=delivery_id, now=now, deadline=SHORT)
    assert status(delivery) == DeliveryStatus.SENDING
    assert len(http_sink.requests) == 1

    assert send.join(SHORT_GRACE + 2).status == DeliveryStatus.QUEUED
    assert len(http_sink.requests) == 1


def test_a_delivery_whose_worker_died_is_recovered_once_its_lease_ran_out(team, slack_server):
    org_channel(team, "slack")
    delivery = a_delivery(team, "slack", "#alerts")
    claimed_at = timezone.now() - SENDING_LEASE.duration - timedelta(seconds=1)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENDING, attempts=1, updated_at=claimed_at
    )
    fresh = a_delivery(team, "slack", "#alerts", key="d2")
    Delivery.objects.filter(pk=fresh.pk).update(
        status=DeliveryStatus.SENDING, attempts=1, updated_at=timezone.now()
    )

    assert recover_stuck() == [delivery.pk]
    assert deliver(delivery.pk) == DeliveryStatus.SENT
    assert status(fresh) == DeliveryStatus.SENDING
    assert len(slack_server.posts) == 1


def test_a_record_from_a_claim_that_lost_its_lease_does_not_overwrite_the_next_claim(
    team, http_sink, settings
):
    """Belt and braces for a worker paused past its lease (a stopped VM): its late answer
    is dropped, the row stays with the claim that re-sent it."""
    settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True
    org_channel(team, "webhook", secret="s3cret")
    delivery = a_delivery(team, "webhook", f"{http_sink.url}/hook")
    http_sink.drip_next(0.2)
    send = InThread(lambda: delivery_send(delivery_id=delivery.pk, deadline=SHORT))
    wait_for(lambda: len(http_sink.requests) == 1)
    expired = timezone.now() - SENDING_LEASE.duration - timedelta(seconds=1)
    Delivery.objects.filter(pk=delivery.pk).update(updated_at=expired)  # the pause
    [recovered] = recover_stuck()
    assert delivery_send(delivery_id=recovered).status == DeliveryStatus.SENT

    assert send.join(SHORT_GRACE + 2) is None  # nothing of its own left to record
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)


CAP = RETRY_AFTER_CAP
BACKOFF = (RETRY.base_seconds * (1 - RETRY.jitter), RETRY.base_seconds * (1 + RETRY.jitter))


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("1e12", (CAP, CAP)),
        ("inf", (CAP, CAP)),
        ("99999999999999999999999999", (CAP, CAP)),
        ("7200", (CAP, CAP)),
        ("Fri, 31 Dec 9999 23:59:59 GMT", (CAP, CAP)),
        ("7", (7, 7)),
        ("Wed, 21 Oct 2015 07:28:00 GMT", (0, 0)),
        ("-5", BACKOFF),
        ("nan", BACKOFF),
        ("-inf", BACKOFF),
        ("soon", BACKOFF),
        ("", BACKOFF),
    ],
)
@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_any_retry_after_schedules_a_retry_within_the_cap(
    kind, retry_after, expected, team, settings, request
):
    if kind == "slack":
        server = request.getfixturevalue("slack_server")
        org_channel(team, "slack")
        delivery = a_delivery(team, "slack", "#alerts")
        server.answer_next(
            Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": retry_after})
        )
    else:
        settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True
        server = request.getfixturevalue("http_sink")
        org_channel(team, "webhook", secret="s3cret")
        delivery = a_delivery(team, "webhook", f"{server.url}/hook")
        server.fail_next(429, b"slow down", {"Retry-After": retry_after})
    now = timezone.now()

    result = delivery_send(delivery_id=delivery.pk, now=now)

    assert result.status == DeliveryStatus.QUEUED
    low, high = expected
    assert low <= result.retry_in <= high
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.next_retry_at == now + timedelta(seconds=result.retry_in)


@pytest.mark.parametrize(
    ("kind", "announce_length"),
    [("slack", True), ("slack", False), ("webhook", True), ("webhook", False)],
)
def test_an_answer_cut_off_mid_way_is_retried_and_never_turns_the_channel_off(
    kind, announce_length, team, settings, request
):
    """Slack's success answer (or a webhook's 404) reset after a few bytes of its body,
    with or without a Content-Length: every attempt is a retry; when the attempts run out
    the delivery fails, and the channel is still on with no failure counted against it."""
    if kind == "slack":
        server = request.getfixturevalue("slack_server")
        config = org_channel(team, "slack")
        delivery = a_delivery(team, "slack", "#alerts")
    else:
        settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True
        server = request.getfixturevalue("http_sink")
        server.default = Reply(404, b"no such hook here, try another path")
        config = org_channel(team, "webhook", secret="s3cret")
        delivery = a_delivery(team, "webhook", f"{server.url}/hook")
    server.cut_next(8, announce_length=announce_length, times=RETRY.max_attempts)

    now = timezone.now()
    results = []
    for _ in range(RETRY.max_attempts):
        result = delivery_send(delivery_id=delivery.pk, now=now)
        results.append(result.status)
        now += timedelta(seconds=(result.retry_in or 0) + 1)

    assert results == [DeliveryStatus.QUEUED] * (RETRY.max_attempts - 1) + [DeliveryStatus.FAILED]
    delivery.refresh_from_db()
    assert delivery.attempts == RETRY.max_attempts
    config.refresh_from_db()
    assert (config.enabled, config.consecutive_failures) == (True, 0)


def test_a_channel_found_unconfigured_at_send_time_is_skipped_not_left_sending(team, slack_server):
    """The org's Slack row exists but its bot token is empty: the channel itself refuses;
    the delivery says why instead of staying claimed until its lease runs out."""
    org_channel(team, "slack", secret="")
    delivery = a_delivery(team, "slack", "#alerts")

    assert delivery_send(delivery_id=delivery.pk).status == DeliveryStatus.SKIPPED
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == (
        DeliveryStatus.SKIPPED,
        "Slack bot token is not set",
    )
    assert slack_server.posts == []
