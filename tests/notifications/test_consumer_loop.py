"""Unit tests of the Kafka side of the consumer (``consumers.ConsumerLoop``) over the
in-memory broker (``memory_broker.py``, an in-memory stand-in for Kafka): offsets are
committed only after the database commit, a poison event is isolated and dead-lettered
while the rest go on, strikes start again after a rebalance, and a stop finishes the batch.
The same loop on the real broker: ``test_consumer.py``, ``tests/reliability/test_faults.py``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError, connection
from kafka import TopicPartition

from notifications import stream
from notifications.consumers import BatchPolicy, ConsumerLoop
from notifications.events import Event, Source
from notifications.models import Notification
from notifications.processing import BatchResult, EventProcessor
from notifications.stream import TopicName
from tests.notifications.memory_broker import MemoryBroker
from tests.notifications.test_consumer import amount_over_100, checkout_errors

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
QUICK = BatchPolicy(retry_backoff_seconds=0, poll_timeout_ms=0)


def event(n: int, **properties) -> Event:
    return Event(
        name="checkout_error",
        team_id=1,
        org_id=1,
        source=Source.INGEST,
        occurred_at=T0 + timedelta(seconds=n),
        properties={"n": n, **properties},
        id=uuid.UUID(int=n + 1),
    )


class StandIn:
    """A processor stand-in with no database: keeps each batch it was given, raises
    ``ValueError`` on a batch holding an event marked ``poison`` and ``OperationalError``
    for the first ``down`` batches; ``during`` runs inside every call."""

    def __init__(self, *, down: int = 0, during=lambda events: None) -> None:
        self.down = down
        self.during = during
        self.batches: list[list[int]] = []
        self.failed = 0
        self.expired = 0

    def process(self, events: Sequence[Event], *, revision: int = 0) -> BatchResult:
        self.during(events)
        if self.down:
            self.down -= 1
            self.failed += 1
            raise OperationalError("server closed the connection unexpectedly")
        if any(e.properties.get("poison") for e in events):
            self.failed += 1
            raise ValueError("cannot evaluate this event")
        self.batches.append([e.properties["n"] for e in events])
        return BatchResult(events=len(events), stored=len(events))

    def expire(self) -> None:
        self.expired += 1

    @property
    def stored(self) -> list[int]:
        return sorted(n for batch in self.batches for n in batch)


def events_topic() -> str:
    return stream.topic(TopicName.EVENTS)


def publish(broker: MemoryBroker, partition: int, *events: Event) -> None:
    for e in events:
        broker.append(events_topic(), partition, e.encode(), key=b"1")


def run(broker: MemoryBroker, processor, policy: BatchPolicy = QUICK, consumer=None):
    consumer = consumer or broker.consumer()
    loop = ConsumerLoop(consumer, broker.producer(), processor, policy)
    return loop.run(threading.Event(), until_idle=True), consumer


def ends(broker: MemoryBroker) -> dict[TopicPartition, int]:
    topic = events_topic()
    return {TopicPartition(topic, p): len(part) for p, part in enumerate(broker.topics[topic])}


def dead_letters(broker: MemoryBroker) -> list[tuple[bytes | None, dict[str, bytes]]]:
    return [(r.value, dict(r.headers)) for r in broker.records(stream.topic(TopicName.EVENTS_DLQ))]


@pytest.mark.django_db(transaction=True)
def test_offsets_are_committed_only_once_the_batch_is_in_the_database(team, member_of):
    alice = member_of(team)
    amount_over_100(team, [alice])
    broker = MemoryBroker()
    for e in checkout_errors(team, [500] * 3):
        broker.append(events_topic(), 0, e.encode())
    consumer = broker.consumer()
    seen_at_commit: list[tuple[bool, int]] = []
    consumer.on_commit = lambda: seen_at_commit.append(
        (connection.in_atomic_block, Notification.objects.count())
    )

    total, _ = run(broker, EventProcessor(), consumer=consumer)

    assert total.stored == 3
    assert seen_at_commit == [(False, 3)]  # outside the transaction, rows already there
    assert broker.committed == ends(broker)


def test_a_failed_batch_commits_nothing_and_is_read_again():
    broker = MemoryBroker()
    publish(broker, 0, event(0), event(1))
    processor = StandIn(down=2)

    total, _ = run(broker, processor)

    assert processor.failed == 2 and processor.expired == 2
    assert [entry for entry in broker.log if entry[0] == "commit"] == [("commit", ends(broker))]
    assert processor.batches == [[0, 1]] and total.events == 2


def test_a_transient_error_outlasting_the_poison_limit_dead_letters_nothing():
    broker = MemoryBroker()
    publish(broker, 0, event(0), event(1))
    processor = StandIn(down=QUICK.poison_attempts + 2)

    run(broker, processor)

    assert dead_letters(broker) == []
    assert processor.stored == [0, 1] and processor.batches == [[0, 1]]


def test_a_poison_event_is_dead_lettered_and_the_rest_of_its_batch_stored():
    broker = MemoryBroker()
    publish(broker, 0, event(0), event(1, poison=True), event(2))
    broker.append(events_topic(), 0, b"not json")
    processor = StandIn()

    total, _ = run(broker, processor)

    assert processor.failed == QUICK.poison_attempts + 1  # 3 batches, then the event alone
    assert processor.stored == [0, 2]
    [(poison, poison_headers), (garbage, garbage_headers)] = dead_letters(broker)
    assert poison == event(1, poison=True).encode()
    assert poison_headers["reason"] == b"processing: ValueError: cannot evaluate this event"
    assert poison_headers["source"] == f"{events_topic()}:0:1".encode()
    assert garbage == b"not json" and garbage_headers["source"].endswith(b":0:3")
    assert (total.events, total.dead_lettered) == (2, 2)
    assert broker.committed == ends(broker)


def test_another_partition_goes_on_as_a_batch_while_the_poisoned_one_is_taken_apart():
    broker = MemoryBroker()
    publish(broker, 0, event(0), event(1, poison=True))

    def arrive_late(events):
        if len(events) == 2 and not broker.topics[events_topic()][1]:
            publish(broker, 1, event(10), event(11))  # after the first failure

    processor = StandIn(during=arrive_late)
    run(broker, processor)

    assert processor.stored == [0, 10, 11]
    assert [10, 11] in processor.batches  # its own strikes: one, not the limit
    assert [0] in processor.batches  # the poisoned partition, event by event
    assert len(dead_letters(broker)) == 1
    assert broker.committed == ends(broker)


def test_strikes_start_again_when_a_partition_comes_back():
    broker = MemoryBroker(partitions=1)
    publish(broker, 0, event(0, poison=True))
    consumer = broker.consumer()
    partition = TopicPartition(events_topic(), 0)

    def rebalance(events):
        if processor.failed == 2:  # the third attempt: the group takes it away and back
            consumer.revoke([partition])
            consumer.assign([partition])

    processor = StandIn(during=rebalance)
    run(broker, processor, consumer=consumer)

    # 2 strikes forgotten with the partition; the attempt during the rebalance is the new
    # assignment's first of 3, then the event alone fails
    assert processor.failed == 2 + QUICK.poison_attempts + 1
    assert len(dead_letters(broker)) == 1


def test_a_commit_refused_after_a_rebalance_leaves_the_offsets_to_the_new_owner():
    broker = MemoryBroker(partitions=1)
    publish(broker, 0, event(0))
    consumer = broker.consumer()
    stop = threading.Event()

    def rebalance(events):
        consumer.revoke([TopicPartition(events_topic(), 0)])  # refuses the next commit
        stop.set()

    processor = StandIn(during=rebalance)
    total = ConsumerLoop(consumer, broker.producer(), processor, QUICK).run(stop)

    assert total.events == 1 and processor.stored == [0]
    assert broker.committed == {}  # the new owner reads the event again; the store dedups


def test_a_stop_finishes_the_batch_commits_it_and_polls_no_more():
    broker = MemoryBroker(partitions=1)
    publish(broker, 0, *[event(n) for n in range(5)])
    stop = threading.Event()
    processor = StandIn(during=lambda events: stop.set())
    loop = ConsumerLoop(broker.consumer(), broker.producer(), processor, BatchPolicy(max_records=2))

    total = loop.run(stop)

    assert processor.batches == [[0, 1]] and total.events == 2
    assert broker.committed == {TopicPartition(events_topic(), 0): 2}


def test_a_stop_during_the_backoff_leaves_at_once_without_committing():
    broker = MemoryBroker(partitions=1)
    publish(broker, 0, event(0))
    stop = threading.Event()
    processor = StandIn(down=1, during=lambda events: stop.set())
    loop = ConsumerLoop(
        broker.consumer(), broker.producer(), processor, BatchPolicy(retry_backoff_seconds=600)
    )

    finished = threading.Event()
    threading.Thread(target=lambda: (loop.run(stop), finished.set()), daemon=True).start()

    assert finished.wait(10)
    assert broker.committed == {} and processor.batches == []
