"""The send pipeline both deliveries and digests use (``notifications.sending``): the next
status from an outcome (pure), and claims, leases and recovery on each of its two tables —
``Delivery`` (lease in ``updated_at``, a claim knows its row by the attempt count) and
``Digest`` (lease in ``claimed_at``, a claim token) — on PostgreSQL and SQLite."""

from datetime import UTC, datetime, timedelta

import pytest

from digests.models import Digest
from digests.sender import DIGESTS
from notifications.channels.base import Outcome
from notifications.delivery import DELIVERIES
from notifications.models import Delivery
from notifications.sending import (
    QUEUED,
    SEND,
    SENDING,
    SENT,
    ClaimLease,
    Next,
    Queue,
    RetryPolicy,
    SendCounts,
    lease_clock,
    next_status,
)
from tests.factories import TeamFactory, UserFactory

NOW = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
NO_JITTER = RetryPolicy(base_seconds=30, factor=2, max_seconds=100, jitter=0, max_attempts=3)


# -- next status (pure) -----------------------------------------------------------------------


def test_a_sent_outcome_is_sent_and_clears_the_error():
    step = next_status(Outcome.sent("p-1"), attempts=1, now=NOW, retry=NO_JITTER)
    assert step == Next(SENT)
    assert step.fields(NOW) == {"status": SENT, "sent_at": NOW, "last_error": ""}


def test_a_retry_waits_for_the_backoff_then_fails_once_attempts_run_out():
    waits = [
        next_status(Outcome.retry("busy"), attempts=n, now=NOW, retry=NO_JITTER) for n in (1, 2, 3)
    ]
    assert [w.status for w in waits] == [QUEUED, QUEUED, "failed"]
    assert [w.retry_in for w in waits[:2]] == [30, 60]
    assert waits[1].fields(NOW) == {
        "status": QUEUED,
        "next_retry_at": NOW + timedelta(seconds=60),
        "last_error": "busy",
    }
    assert waits[2].fields(NOW) == {"status": "failed", "last_error": "busy"}


def test_a_retry_after_the_provider_asked_for_wins_over_the_backoff():
    step = next_status(Outcome.retry("slow down", after=7), attempts=1, now=NOW, retry=NO_JITTER)
    assert (step.retry_in, step.next_retry_at) == (7, NOW + timedelta(seconds=7))


def test_a_permanent_failure_fails_at_the_first_attempt():
    step = next_status(Outcome.failed("no such channel"), attempts=1, now=NOW, retry=NO_JITTER)
    assert (step.status, step.detail, step.retry_in) == ("failed", "no such channel", None)


def test_the_backoff_is_capped_and_jittered_within_its_spread():
    policy = RetryPolicy()
    for attempt in range(1, 12):
        raw = min(policy.base_seconds * policy.factor ** (attempt - 1), policy.max_seconds)
        assert raw * 0.8 <= policy.delay(attempt) <= raw * 1.2


def test_a_lease_is_renewed_after_a_quarter_and_outlasts_every_call_deadline():
    assert SEND.lease.renew_after() == SEND.lease.duration / 4
    with pytest.raises(ValueError, match="longer than any call deadline"):
        ClaimLease(timedelta(seconds=1))


def test_counts_name_each_status_once():
    counts, more = SendCounts(), SendCounts(sent=2)
    for status in (SENT, QUEUED, "failed", "skipped", "empty"):
        counts.count(status)
    counts.merge(more)
    assert (counts.sent, counts.retrying, counts.failed, counts.skipped, counts.empty) == (
        3,
        1,
        1,
        1,
        1,
    )
    assert counts.text() == "3 sent, 1 skipped, 1 failed, 1 retrying"


# -- claims, leases, recovery on both tables ---------------------------------------------------


def a_delivery(i: int) -> Delivery:
    team = TeamFactory()
    return Delivery.objects.create(
        idempotency_key=f"pipeline-{i}", channel="email", destination="a@example.com", team=team
    )


def a_digest(i: int) -> Digest:
    start = NOW - timedelta(days=1 + i)
    return Digest.objects.create(
        digest_key=f"pipeline-{i}",
        user=UserFactory(),
        channel="email",
        period="daily",
        window_start=start,
        window_end=start + timedelta(days=1),
    )


def pipeline(test):
    """Run ``test`` on each table the pipeline serves, on the database."""
    both = pytest.mark.parametrize(
        ("queue", "make"),
        [
            pytest.param(DELIVERIES, a_delivery, id="deliveries"),
            pytest.param(DIGESTS, a_digest, id="digests"),
        ],
    )
    for mark in (both, pytest.mark.django_db, pytest.mark.integration, pytest.mark.sqlite):
        test = mark(test)
    return test


def lease_of(queue: Queue, pk: int) -> datetime:
    return getattr(queue.model._default_manager.get(pk=pk), queue.lease_field)


def age_lease(queue: Queue, pk: int, by: timedelta) -> None:
    queue.model._default_manager.filter(pk=pk).update(**{queue.lease_field: lease_clock() - by})


@pipeline
@pytest.mark.parametrize("as_of", [NOW - timedelta(days=7), NOW + timedelta(days=400)])
def test_a_claim_takes_due_rows_once_and_stamps_its_lease_in_real_time(queue, make, as_of):
    due, later = make(1), make(2)
    queue.model._default_manager.filter(pk=later.pk).update(
        next_retry_at=as_of + timedelta(minutes=5)
    )
    before = lease_clock()
    rows = queue.model._default_manager.all()
    claim = queue.claim(rows, now=as_of, limit=10)

    assert claim.ids == [due.pk]
    assert claim.held_ids() == {due.pk}
    row = queue.model._default_manager.get(pk=due.pk)
    assert (row.status, row.attempts) == (SENDING, 1)
    assert before <= lease_of(queue, due.pk) <= lease_clock()  # never ``as_of``
    assert queue.claim(rows, now=as_of, limit=10).ids == []  # nobody takes it twice


@pipeline
def test_a_live_claim_is_never_recovered_and_an_expired_one_is(queue, make):
    live, dead = make(1), make(2)
    rows = queue.model._default_manager.all()
    claim = queue.claim(rows, now=NOW, limit=10)
    age_lease(queue, dead.pk, SEND.lease.duration + timedelta(seconds=1))
    age_lease(queue, live.pk, SEND.lease.duration - timedelta(minutes=1))

    assert queue.recover_stuck(lease=SEND.lease) == 1
    assert queue.model._default_manager.get(pk=dead.pk).status == QUEUED
    assert claim.held_ids() == {live.pk}
    if queue.token_field:
        assert getattr(queue.model._default_manager.get(pk=dead.pk), queue.token_field) == ""


@pipeline
def test_a_claim_recovered_and_claimed_again_holds_nothing(queue, make):
    row = make(1)
    rows = queue.model._default_manager.all()
    first = queue.claim(rows, now=NOW, limit=10)
    age_lease(queue, row.pk, SEND.lease.duration + timedelta(seconds=1))
    queue.recover_stuck(lease=SEND.lease)
    second = queue.claim(rows, now=NOW, limit=10)

    assert first.held_ids() == set() and not first.rows().update(last_error="late")
    assert second.held_ids() == {row.pk}
    assert first.keep(SEND) == set()


@pipeline
def test_keep_renews_the_lease_after_a_quarter_and_release_gives_the_rows_back(queue, make):
    row = make(1)
    claim = queue.claim(queue.model._default_manager.all(), now=NOW, limit=10)
    stamped = lease_of(queue, row.pk)
    assert claim.keep(SEND) == {row.pk}
    assert lease_of(queue, row.pk) == stamped  # too soon to renew

    claim.renewed_at -= SEND.lease.renew_after()
    assert claim.keep(SEND) == {row.pk}
    assert lease_of(queue, row.pk) > stamped

    claim.release()
    back = queue.model._default_manager.get(pk=row.pk)
    assert (back.status, back.attempts) == (QUEUED, 0)


@pipeline
def test_due_rows_are_queued_with_no_retry_or_a_retry_come(queue, make):
    ready, waiting, soon = make(1), make(2), make(3)
    manager = queue.model._default_manager
    manager.filter(pk=waiting.pk).update(next_retry_at=NOW + timedelta(seconds=1))
    manager.filter(pk=soon.pk).update(next_retry_at=NOW)
    manager.filter(pk=make(4).pk).update(status=SENT)
    assert set(queue.due(NOW).values_list("pk", flat=True)) == {ready.pk, soon.pk}
