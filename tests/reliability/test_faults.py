"""Faults injected into a running pipeline; the final state must equal a fault-free run's.

Each test breaks one thing the pipeline depends on while it works — the consumer process,
the Kafka broker, Redis, the PostgreSQL connection, one event the processor cannot handle —
then lets it recover and counts what ended up in the store and at the receiving servers.
Brokers and Redis that are stopped are private instances (``tests/servers/brokers.py``):
the shared ones serve every other test on the machine.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from kafka import TopicPartition

from notifications import stream
from notifications.consumers import DEFAULT_BATCH, BatchPolicy, ConsumerLoop
from notifications.models import (
    Delivery,
    DeliveryStatus,
    Notification,
    Outbox,
    RollupWindow,
    TriggerMatch,
)
from notifications.processing import BatchResult, EventProcessor
from notifications.stream import TopicName
from notifications.tasks import flush_rollups, recover_deliveries
from tests.api.test_ingest import read_events
from tests.factories import InsightFactory, TriggerFactory
from tests.notifications.test_consumer import (
    T0,
    _consumer_process,
    amount_over_100,
    checkout_errors,
)
from tests.notifications.test_delivery import slack_config, wait_for
from tests.servers.worker import celery_worker
from workspace.activity import acting_as

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def event_count_fires(seconds: list[int], *, count: int, window: int) -> int:
    """Reference: how often an event_count trigger fires over events at these offsets (in
    seconds, ascending) — at most once per window, once ``count`` events fell in it."""
    fired, last, oldest = 0, None, 0
    for i, at in enumerate(seconds):
        while at - seconds[oldest] >= window:
            oldest += 1
        if (last is None or at - last >= window) and i - oldest + 1 >= count:
            fired, last = fired + 1, at
    return fired


# --- the consumer process killed ----------------------------------------------------------

KILLS = 5
KILLED_EVENTS = 5_000


@pytest.mark.slow
@pytest.mark.timeout(480)  # six consumer starts, each waiting out the killed member's 10 s session
def test_five_sigkills_at_random_points_leave_the_store_of_a_fault_free_run(team, member_of):
    alice = member_of(team)
    alert = amount_over_100(team, [alice])
    counter = TriggerFactory(
        team=team,
        owner=alice,
        kind="event_count",
        config={"event": "checkout_error", "count": 3, "window_minutes": 10},
    )
    burst = TriggerFactory(
        team=team,
        owner=alice,
        config={"event": "checkout_error"},
        delivery={"mode": "rollup", "window_seconds": 3600},
    )
    stream.ensure_topics()
    stream.publish_events(checkout_errors(team, [500] * KILLED_EVENTS), timeout=60)
    stored = Notification.objects.filter(trigger=alert)
    rng = random.Random(8)

    at_kill = []
    step = KILLED_EVENTS // (KILLS + 1)
    for kill in range(1, KILLS + 1):
        # Killed once the store passed a seeded random point of the kill's own stretch of
        # the run, so the kills spread over it whatever the machine's speed.
        target = kill * step + rng.randrange(step // 2)
        consumer = _consumer_process({})
        try:
            assert wait_for(lambda target=target: stored.count() >= target, timeout=120)
        finally:
            consumer.send_signal(signal.SIGKILL)
            consumer.wait(timeout=10)
        at_kill.append(stored.count())
    assert at_kill[-1] < KILLED_EVENTS, f"the run ended before the last kill: {at_kill}"
    last = _consumer_process({})
    try:
        assert last.wait(timeout=150) == 0
    finally:
        last.kill()

    assert stored.count() == KILLED_EVENTS
    assert Notification.objects.values("dedup_key").distinct().count() == (
        Notification.objects.count()
    )
    fires = event_count_fires(list(range(KILLED_EVENTS)), count=3, window=600)
    assert Notification.objects.filter(trigger=counter).count() == fires
    [window] = RollupWindow.objects.filter(trigger=burst)
    assert window.count == KILLED_EVENTS
    assert Notification.objects.get(trigger=burst).count == KILLED_EVENTS
    assert TriggerMatch.objects.filter(trigger=burst).count() == KILLED_EVENTS


# --- the Kafka broker stopped and restarted ------------------------------------------------

INGEST_BATCHES = 30
INGEST_BATCH_SIZE = 100


@pytest.mark.slow
def test_a_broker_restart_during_ingestion_loses_and_doubles_nothing(
    team, member_of, api_client, drain, private_kafka
):
    alice = member_of(team)
    alert = amount_over_100(team, [alice])
    stream.ensure_topics()
    answers: list[int] = []
    accepted = threading.Event()
    refused = threading.Event()

    def restart_broker() -> None:
        accepted.wait(timeout=120)
        private_kafka.stop()
        refused.wait(timeout=120)
        private_kafka.start()

    restarter = threading.Thread(target=restart_broker)
    restarter.start()
    try:
        for n in range(INGEST_BATCHES):
            batch = [
                {
                    "event": "checkout_error",
                    "distinct_id": f"u{i}",
                    "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
                    "properties": {"amount": 500},
                }
                for i in range(n * INGEST_BATCH_SIZE, (n + 1) * INGEST_BATCH_SIZE)
            ]
            while True:  # a client retries the same batch until it is accepted
                response = api_client.post(
                    "/api/ingest/", {"api_key": team.api_token, "batch": batch}, format="json"
                )
                answers.append(response.status_code)
                if response.status_code == 202:
                    break
                assert response.status_code == 503, response.content
                refused.set()
                time.sleep(0.5)
            if n == 4:
                accepted.set()
    finally:
        accepted.set()
        refused.set()
        restarter.join(timeout=300)

    events = INGEST_BATCHES * INGEST_BATCH_SIZE
    drain(expected=events, timeout=180)
    assert answers.count(503) >= 1
    assert answers.count(202) == INGEST_BATCHES
    assert Notification.objects.filter(recipient=alice, trigger=alert).count() == events
    assert Notification.objects.values("dedup_key").distinct().count() == events


RELAYED_EDITS = 120


@pytest.mark.slow
def test_a_broker_restart_during_the_outbox_relay_loses_and_doubles_nothing(
    team, member_of, drain, private_kafka
):
    owner, editor = member_of(team), member_of(team)
    insight = InsightFactory(team=team, created_by=owner, name="v0")
    stopping = threading.Thread(target=private_kafka.stop)
    with acting_as(editor):
        for version in range(1, RELAYED_EDITS + 1):
            if version == 30:
                stopping.start()  # goes down while the next edits are being relayed
            if version == 80:
                stopping.join()
                assert Outbox.objects.filter(published_at__isnull=True).exists()
                private_kafka.start()
            insight.name = f"v{version}"
            insight.save()  # each commit nudges the relay, as in production

    while stream.relay_outbox():
        pass
    assert not Outbox.objects.filter(published_at__isnull=True).exists()
    retried = Outbox.objects.filter(attempts__gt=0).count()
    assert retried > 0
    drain(expected=RELAYED_EDITS + 1, timeout=120)
    notes = Notification.objects.filter(recipient=owner)
    assert notes.count() == RELAYED_EDITS
    assert notes.values("dedup_key").distinct().count() == RELAYED_EDITS
    assert {n.title.rsplit("“", 1)[-1].rstrip("”") for n in notes} == {
        f"v{version}" for version in range(1, RELAYED_EDITS + 1)
    }


# --- Redis restarted -----------------------------------------------------------------------

REDIS_EVENTS = 100


@pytest.mark.slow
def test_a_redis_restart_with_tasks_queued_and_a_window_open_sends_each_once(
    team, member_of, drain, private_redis, slack_server, smtp_server, tmp_path
):
    slack_config(team)
    alice = member_of(team, email="alice@example.com")
    TriggerFactory(
        team=team,
        owner=alice,
        config={"event": "checkout_error"},
        channels=[{"type": "slack", "target": "#instant"}, {"type": "email"}],
    )
    burst = TriggerFactory(
        team=team,
        owner=alice,
        config={"event": "checkout_error"},
        channels=[{"type": "slack", "target": "#burst"}],
        delivery={"mode": "rollup", "window_seconds": 15},
    )
    env = {
        "SLACK_API_BASE_URL": slack_server.api_url,
        "EMAIL_URL": f"smtp://{smtp_server.host}:{smtp_server.port}",
    }
    stream.ensure_topics()
    stream.publish_events(checkout_errors(team, [500] * REDIS_EVENTS))
    with celery_worker(tmp_path, env=env) as worker:
        drain(expected=REDIS_EVENTS)  # 2 deliveries per event are enqueued in Redis
        private_redis.stop()
        waiting = Delivery.objects.filter(status=DeliveryStatus.QUEUED).count()
        private_redis.start()  # empty: the queued tasks are gone
        window = RollupWindow.objects.get(trigger=burst)
        assert window.status == RollupWindow.Status.OPEN
        assert waiting > 0, "every delivery went out before Redis stopped"

        # beat after the restart: re-enqueue due deliveries, flush the closed window
        assert wait_for(lambda: timezone.now() > window.closes_at, timeout=30)
        for _ in range(2):
            recover_deliveries.delay()
            flush_rollups.delay()
        instant = 2 * REDIS_EVENTS
        done = Delivery.objects.filter(status=DeliveryStatus.SENT)
        assert wait_for(lambda: done.count() == instant + 1, timeout=180), worker.log()[-3000:]
        recover_deliveries.delay()  # one more beat tick finds nothing to send
        flush_rollups.delay()
        time.sleep(3)

    posts = [p.channel for p in slack_server.posts]
    assert posts.count("#instant") == REDIS_EVENTS
    assert posts.count("#burst") == 1
    [summary] = [p for p in slack_server.posts if p.channel == "#burst"]
    assert f"seen {REDIS_EVENTS} times" in summary.text
    assert len(smtp_server.messages) == REDIS_EVENTS
    assert Delivery.objects.count() == instant + 1
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}


# --- the PostgreSQL connection cut -------------------------------------------------------

CUT_EVENTS = 20_000  # enough batches (of 200) that three cuts land while it runs
CUTS = 3


def terminate_other_busy_backends() -> int:
    """pg_terminate_backend on every other connection to the test database that is in the
    middle of a query or a transaction: the consumer's, while it processes a batch."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND state IN ('active', 'idle in transaction')"
        )
        return cursor.fetchone()[0]


@pytest.mark.slow
def test_the_database_connection_cut_mid_batch_is_survived(team, member_of):
    alice = member_of(team)
    alert = amount_over_100(team, [alice])
    stream.ensure_topics()
    stream.publish_events(checkout_errors(team, [500] * CUT_EVENTS))
    stored = Notification.objects.filter(trigger=alert)

    consumer = _consumer_process({})
    try:
        cuts = 0
        deadline = time.monotonic() + 120
        while cuts < CUTS and consumer.poll() is None and time.monotonic() < deadline:
            if stored.exists():
                cuts += terminate_other_busy_backends()
            time.sleep(0.05)
        assert cuts >= CUTS
        assert consumer.wait(timeout=150) == 0  # reconnected and finished, never crashed
    finally:
        consumer.kill()

    assert stored.count() == CUT_EVENTS
    assert stored.values("dedup_key").distinct().count() == CUT_EVENTS


# --- an event the processor cannot handle ------------------------------------------------


class FailsOnMarkedEvents(EventProcessor):
    """Processing raises for an event marked ``poison``, as a bug evaluating one event's
    properties would; every other event is processed for real."""

    def process(self, events, **kwargs):
        if any(e.properties.get("poison") for e in events):
            raise ValueError("cannot evaluate this event")
        return super().process(events, **kwargs)


def test_a_poison_event_is_dead_lettered_after_k_attempts_and_the_rest_are_stored(
    team, member_of, drain
):
    alice = member_of(team)
    alert = amount_over_100(team, [alice])
    events = checkout_errors(team, [500] * 10)
    events[3].properties["poison"] = True
    stream.ensure_topics()
    stream.publish_events(events)

    totals = drain(expected=10, processor=FailsOnMarkedEvents())

    assert totals.dead_lettered == 1
    assert Notification.objects.filter(trigger=alert).count() == 9
    assert not Notification.objects.filter(event_id=events[3].id).exists()
    [record] = read_events(stream.topic(TopicName.EVENTS_DLQ), 1)
    headers = dict(record.headers)
    assert headers["reason"] == b"processing: ValueError: cannot evaluate this event"
    assert record.value == events[3].encode()


class DatabaseDownFor(EventProcessor):
    """The database is unreachable for the first ``failures`` attempts."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def process(self, events, **kwargs):
        if self.failures:
            self.failures -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return super().process(events, **kwargs)


def test_a_transient_error_is_retried_past_the_poison_limit_and_nothing_is_dead_lettered(
    team, member_of, drain
):
    alice = member_of(team)
    alert = amount_over_100(team, [alice])
    stream.ensure_topics()
    stream.publish_events(checkout_errors(team, [500] * 10))

    totals = drain(
        expected=10, processor=DatabaseDownFor(DEFAULT_BATCH.poison_attempts + 2), timeout=90
    )

    assert totals.dead_lettered == 0
    assert Notification.objects.filter(trigger=alert).count() == 10


class FailsDifferentlyOnMarkedEvents(EventProcessor):
    """Raises for events marked ``poison`` with a message that changes every attempt, as a
    bug whose error names a timestamp or a counter would."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def process(self, events, **kwargs):
        if any(e.properties.get("poison") for e in events):
            self.attempts += 1
            raise ValueError(f"cannot evaluate this event (attempt {self.attempts})")
        return super().process(events, **kwargs)


def test_a_partition_holding_only_poison_events_is_dead_lettered_and_moves_on(
    team, member_of, drain
):
    alice = member_of(team)
    alert = amount_over_100(team, [alice])
    poison = checkout_errors(team, [500] * 3)
    for event in poison:
        event.properties["poison"] = True
    stream.ensure_topics()
    stream.publish_events(poison)

    totals = drain(expected=3, processor=FailsDifferentlyOnMarkedEvents(), timeout=60)

    assert totals.dead_lettered == 3
    stream.publish_events(checkout_errors(team, [500] * 2, start=T0 + timedelta(minutes=1)))
    drain(expected=2)
    assert Notification.objects.filter(trigger=alert).count() == 2


def test_an_undecodable_record_is_dead_lettered_once_however_often_its_batch_is_retried(
    team, member_of, drain
):
    alice = member_of(team)
    alert = amount_over_100(team, [alice])
    stream.ensure_topics()
    producer = stream.shared_producer()
    producer.send(stream.topic(TopicName.EVENTS), key=str(team.pk).encode(), value=b"{not json")
    stream.publish_events(checkout_errors(team, [500] * 5))

    totals = drain(expected=6, processor=DatabaseDownFor(DEFAULT_BATCH.poison_attempts), timeout=90)

    assert totals.dead_lettered == 1
    assert Notification.objects.filter(trigger=alert).count() == 5
    assert len(read_events(stream.topic(TopicName.EVENTS_DLQ), 5, deadline_s=5)) == 1


QUICK_RETRIES = BatchPolicy(retry_backoff_seconds=0.1)
POISONED, NEIGHBOUR = 0, 1  # partitions of the events topic


def consume_until_caught_up(processor_for, *, timeout=60.0, **consumer_options) -> BatchResult:
    """The real consumer loop over this test's topic until every assigned partition is read
    to its end; ``processor_for(consumer)`` builds the processor (which may pause and
    resume the consumer's partitions, from the loop's own thread)."""
    stream.ensure_topics()
    consumer = stream.build_consumer(**consumer_options)
    producer = stream.build_producer()
    loop = ConsumerLoop(consumer, producer, processor_for(consumer), QUICK_RETRIES)
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        return loop.run(stop, until_idle=True)
    finally:
        timer.cancel()
        producer.close(timeout=5)
        consumer.close()


def send_to_partition(partition, events):
    producer = stream.shared_producer()
    name = stream.topic(TopicName.EVENTS)
    for future in [producer.send(name, value=e.encode(), partition=partition) for e in events]:
        future.get(timeout=10)


class PoisonBesideANeighbour(EventProcessor):
    """Fails on events marked ``poison``. The neighbouring partition is held back (paused)
    from the poison batch's first failure until its last, so the poll that takes the poison
    apart brings the neighbour's events too; one of them fails its first attempt with a
    non-transient error (as losing a unique-key race with another writer does) and passes
    the next."""

    def __init__(self, consumer, neighbours) -> None:
        super().__init__()
        self.consumer = consumer
        self.neighbours = neighbours
        self.poison_failures = 0
        self.unlucky_attempts = 0

    def process(self, events, **kwargs):
        neighbour = TopicPartition(stream.topic(TopicName.EVENTS), NEIGHBOUR)
        if any(e.properties.get("poison") for e in events):
            self.poison_failures += 1
            if self.poison_failures == 1:
                self.consumer.pause(neighbour)
                send_to_partition(NEIGHBOUR, self.neighbours)
            if self.poison_failures == QUICK_RETRIES.poison_attempts:
                self.consumer.resume(neighbour)
            raise ValueError("cannot evaluate this event")
        if any(e.properties.get("unlucky") for e in events):
            self.unlucky_attempts += 1
            if self.unlucky_attempts == 1:
                raise ValueError("duplicate key value violates unique constraint")
        return super().process(events, **kwargs)


def test_only_the_poisoned_partition_is_taken_apart(team, member_of):
    """The poll that takes a poisoned partition apart event by event also holds another
    partition's events, which have failed nothing yet: they go through as a batch with
    strikes of their own, and an event of theirs that fails once is retried, not
    dead-lettered."""
    alice = member_of(team)
    alert = amount_over_100(team, [alice])
    events = checkout_errors(team, [500] * 6)
    poisoned, neighbours = events[:3], events[3:]
    poisoned[0].properties["poison"] = True
    neighbours[0].properties["unlucky"] = True
    stream.ensure_topics()
    send_to_partition(POISONED, poisoned)

    totals = consume_until_caught_up(lambda consumer: PoisonBesideANeighbour(consumer, neighbours))

    assert totals.dead_lettered == 1
    assert set(Notification.objects.filter(trigger=alert).values_list("event_id", flat=True)) == {
        e.id for e in events[1:]
    }
    [record] = read_events(stream.topic(TopicName.EVENTS_DLQ), 2, deadline_s=5)
    assert record.value == poisoned[0].encode()


def group_has_no_members() -> bool:
    admin = stream.build_admin()
    try:
        [group] = admin.describe_groups([stream.consumer_group()]).values()
    finally:
        admin.close()
    return not group["members"]


class PoisonOutlastingItsMembership(EventProcessor):
    """Fails on events marked ``poison``. The poison batch's second failure takes longer
    than the consumer's poll interval (it returns once the group has evicted the consumer),
    as a batch stuck on a slow database would; counts the batch's failures after that."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_failures = 0
        self.evicted = False
        self.failures_after_eviction = 0

    def process(self, events, **kwargs):
        if any(e.properties.get("poison") for e in events):
            if len(events) > 1:  # the whole batch, not the event-by-event pass
                self.batch_failures += 1
                self.failures_after_eviction += self.evicted
                if self.batch_failures == 2:
                    assert wait_for(group_has_no_members)
                    self.evicted = True
            raise ValueError("cannot evaluate this event")
        return super().process(events, **kwargs)


def test_strikes_start_again_when_the_partition_comes_back(team, member_of):
    """A consumer evicted from its group loses its partitions; when it gets the poisoned
    one back, the failures before do not count: the poison event is dead-lettered after
    ``poison_attempts`` failures in the new assignment, never after one."""
    alice = member_of(team)
    alert = amount_over_100(team, [alice])
    events = checkout_errors(team, [500] * 3)
    events[0].properties["poison"] = True
    stream.ensure_topics()
    send_to_partition(POISONED, events)
    processor = PoisonOutlastingItsMembership()

    totals = consume_until_caught_up(lambda consumer: processor, max_poll_interval_ms=2_000)

    assert processor.evicted
    assert processor.failures_after_eviction == QUICK_RETRIES.poison_attempts
    assert totals.dead_lettered == 1
    assert Notification.objects.filter(trigger=alert).count() == 2
