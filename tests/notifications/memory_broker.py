"""An in-memory broker for unit tests of ``consumers.ConsumerLoop``: one consumer group,
topics of numbered partitions, and a consumer and producer that implement
``consumers.Consumer`` and ``consumers.Producer`` as kafka-python does in the ways the loop
relies on — ``poll`` hands out what follows each assigned partition's position and moves
it; ``seek`` moves it back; ``commit`` stores the positions as the group's offsets, or
raises ``CommitFailedError`` after a rebalance; a revoked partition is told to the
listener and, when assigned again, read from the committed offset.

Not Kafka: no network, no timing, every poll answers at once. The loop's behaviour on a
real broker is what ``test_consumer.py`` and ``tests/reliability/test_faults.py`` test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import CommitFailedError


@dataclass(frozen=True)
class MemoryRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class Acknowledged:
    """A send the broker has already taken."""

    record: MemoryRecord

    def get(self, timeout: float) -> MemoryRecord:
        return self.record


@dataclass
class MemoryBroker:
    """Topics and the one group's committed offsets. ``log`` records, in order, every
    commit (``("commit", {partition: offset})``) and every send (``("send", topic)``)."""

    partitions: int = 2
    topics: dict[str, list[list[MemoryRecord]]] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    log: list[tuple[str, object]] = field(default_factory=list)

    def append(
        self,
        topic: str,
        partition: int,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> MemoryRecord:
        records = self._topic(topic)[partition]
        record = MemoryRecord(topic, partition, len(records), key, value, tuple(headers))
        records.append(record)
        return record

    def records(self, topic: str) -> list[MemoryRecord]:
        return [r for part in self._topic(topic) for r in part]

    def _topic(self, topic: str) -> list[list[MemoryRecord]]:
        return self.topics.setdefault(topic, [[] for _ in range(self.partitions)])

    def consumer(self) -> MemoryConsumer:
        return MemoryConsumer(self)

    def producer(self) -> MemoryProducer:
        return MemoryProducer(self)


class MemoryConsumer:
    """Subscribes to whole topics and gets every partition of them. ``on_commit`` runs
    before each commit is stored (a test's look at the database at that moment)."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.positions: dict[TopicPartition, int] = {}
        self.listener: ConsumerRebalanceListener | None = None
        self.rebalanced = False
        self.on_commit: Callable[[], None] = lambda: None

    def subscribe(self, *, topics: list[str], listener: ConsumerRebalanceListener) -> None:
        self.listener = listener
        self.assign(
            [TopicPartition(t, p) for t in topics for p in range(len(self.broker._topic(t)))]
        )

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        """The group gives this consumer ``partitions``, read from their committed offset;
        it has rejoined, so its commits are taken again."""
        self.rebalanced = False
        for tp in partitions:
            self.positions[tp] = self.broker.committed.get(tp, 0)
        if self.listener is not None:
            self.listener.on_partitions_assigned(list(partitions))

    def revoke(self, partitions: Sequence[TopicPartition]) -> None:
        """A rebalance takes ``partitions`` away: the next commit fails, as kafka-python's
        does when the generation has moved on."""
        for tp in partitions:
            self.positions.pop(tp, None)
        self.rebalanced = True
        if self.listener is not None:
            self.listener.on_partitions_revoked(list(partitions))

    def poll(
        self, *, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[MemoryRecord]]:
        batch: dict[TopicPartition, list[MemoryRecord]] = {}
        room = max_records
        for tp, position in self.positions.items():
            records = self.broker.topics[tp.topic][tp.partition][position : position + room]
            if records:
                batch[tp] = records
                self.positions[tp] = position + len(records)
                room -= len(records)
        return batch

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def end_offsets(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        return {tp: len(self.broker.topics[tp.topic][tp.partition]) for tp in partitions}

    def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.positions[partition] = offset

    def commit(self) -> None:
        if self.rebalanced:
            self.rebalanced = False
            raise CommitFailedError("the group rebalanced")
        self.on_commit()
        offsets = dict(self.positions)
        self.broker.committed.update(offsets)
        self.broker.log.append(("commit", offsets))


class MemoryProducer:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]],
    ) -> Acknowledged:
        partition = 0
        record = self.broker.append(topic, partition, value, key=key, headers=headers)
        self.broker.log.append(("send", topic))
        return Acknowledged(record)
