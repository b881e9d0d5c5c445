"""The consumer loop, Kafka side: poll a batch → decode (poison → DLQ) → hand the events to
a :class:`Processor` (``processing.EventProcessor``: evaluate, plan, store in one
transaction) → commit offsets. Offsets are committed only after the database commit, and
every write is idempotent, so a crash or rebalance replays without doubling.

The loop asks nothing of Kafka but the small :class:`Consumer` and :class:`Producer`
protocols below: kafka-python's ``KafkaConsumer`` and ``KafkaProducer`` (``stream``) in
production, an in-memory broker in the loop's unit tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from django.db import InterfaceError, OperationalError, ProgrammingError, close_old_connections
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kombu.exceptions import OperationalError as BrokerUnavailable

from notifications import metrics, stream
from notifications.events import Event, InvalidEvent, decode
from notifications.processing import BatchResult
from notifications.stream import TopicName

log = logging.getLogger(__name__)


class Record(Protocol):
    """One record as a poll returns it (kafka-python's ``ConsumerRecord``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


class Consumer(Protocol):
    """What the loop needs of a consumer in a group, with manual commits.

    ``poll`` returns the records after each assigned partition's position and moves the
    position past them; ``seek`` moves it back. ``commit`` stores every assigned
    partition's position as the group's offset, or raises ``CommitFailedError`` when the
    group has rebalanced since. ``subscribe`` joins the group; ``listener`` hears of each
    partition revoked or assigned."""

    def subscribe(self, *, topics: list[str], listener: ConsumerRebalanceListener) -> None: ...
    def poll(
        self, *, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[Record]]: ...
    def assignment(self) -> set[TopicPartition]: ...
    def end_offsets(self, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]: ...
    def position(self, partition: TopicPartition) -> int: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def commit(self) -> None: ...


class Sent(Protocol):
    """A send in flight: ``get`` waits for the broker's acknowledgement or raises."""

    def get(self, timeout: float) -> object: ...


class Producer(Protocol):
    """What the loop needs of a producer: send to the dead-letter topic."""

    def send(
        self, topic: str, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> Sent: ...


class Processor(Protocol):
    """The database side (``processing.EventProcessor``). ``process`` handles a batch in one
    transaction, committed when it returns; it raises to have the batch retried. ``expire``
    is called after a failure: the retry must not trust what was cached."""

    def process(self, events: Sequence[Event], *, revision: int = 0) -> BatchResult: ...
    def expire(self) -> None: ...


@dataclass(frozen=True)
class BatchPolicy:
    """How much the loop takes at once, how it backs off when a batch fails, and after how
    many identical non-transient failures a batch is taken apart (see ``ConsumerLoop``)."""

    max_records: int = 2000
    poll_timeout_ms: int = 1000
    retry_backoff_seconds: float = 2.0
    poison_attempts: int = 3


DEFAULT_BATCH = BatchPolicy()


TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,  # the database went away, a deadlock, a serialization failure
    InterfaceError,  # a connection closed under us
    ProgrammingError,  # a table missing: code deployed before its migration ran
    KafkaError,  # the broker is down (dead-lettering, committing)
    BrokerUnavailable,  # Redis is down when the commit enqueues deliveries
)


def is_transient(exc: Exception) -> bool:
    """An error that a retry of the same batch can outlive: never a reason to dead-letter."""
    return isinstance(exc, TRANSIENT_ERRORS)


class Strikes(ConsumerRebalanceListener):
    """Non-transient failures in a row, per partition, at the offset it is stuck on, for as
    long as the partition stays assigned to this consumer.

    Kept per partition so that a batch of another partition succeeding in between (polls
    alternate between partitions) does not reset a poison event's count, and without the
    error's text, so a poison event whose error changes between attempts still reaches
    its limit. As the consumer's rebalance listener it forgets a partition that is revoked
    or lost: when the partition comes back (after another consumer had it, or after this one
    was evicted from the group) its count starts again, so an event is dead-lettered only
    after failing ``BatchPolicy.poison_attempts`` times on the consumer that dead-letters it.
    """

    def __init__(self) -> None:
        self.stuck: dict[tuple[str, int], tuple[int, int]] = {}

    def add(self, offsets: frozenset[tuple[str, int, int]]) -> int:
        """Count one more failure of a batch starting at ``offsets``; return the highest
        count among its partitions."""
        for topic, partition, offset in offsets:
            at, count = self.stuck.get((topic, partition), (offset, 0))
            self.stuck[(topic, partition)] = (offset, count + 1 if at == offset else 1)
        return max(self.stuck[(t, p)][1] for t, p, _ in offsets)

    def poisoned(
        self, offsets: frozenset[tuple[str, int, int]], limit: int
    ) -> frozenset[tuple[str, int]]:
        """The partitions of a batch starting at ``offsets`` whose count at that offset
        reached ``limit``."""
        return frozenset(
            (t, p)
            for t, p, o in offsets
            for at, count in [self.stuck.get((t, p), (-1, 0))]
            if at == o and count >= limit
        )

    def clear(self, offsets: frozenset[tuple[str, int, int]]) -> None:
        """The batch went through: its partitions moved on."""
        for topic, partition, _ in offsets:
            self.stuck.pop((topic, partition), None)

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        for tp in revoked:
            self.stuck.pop((tp.topic, tp.partition), None)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Nothing to restore: a partition assigned again starts with no strikes."""


def record_revision(records: Iterable[Record]) -> int:
    """The newest trigger revision the records were published under (0 without a stamp)."""
    newest = 0
    for record in records:
        for key, value in record.headers or ():
            if key == stream.TRIGGER_REVISION_HEADER:
                try:
                    newest = max(newest, int(value))
                except (TypeError, ValueError):
                    continue
    return newest


class ConsumerLoop:
    """Kafka side: poll, decode, process, dead-letter, commit after the DB.

    A batch that fails is rewound and retried after a backoff. Transient errors (database or
    broker unreachable) are retried for as long as they last. Once a partition's batch has
    failed ``policy.poison_attempts`` times in a row with any other error, that partition's
    records are processed one event at a time and every event that still fails is
    dead-lettered with the error as its ``reason``, so no event stalls its partition; the
    other partitions of the poll are rewound and go through as a batch, with strikes of
    their own. Records that do not decode are dead-lettered only once their batch went
    through, so retries of a failing batch do not dead-letter them again. A failed batch
    expires the trigger cache, so its retry is evaluated against the triggers as they are
    then: a trigger deleted while its events waited fails one attempt, not every one.

    The loop subscribes ``consumer`` (built without topics) to the events topic with its
    :class:`Strikes` as the rebalance listener.
    """

    def __init__(
        self,
        consumer: Consumer,
        producer: Producer,
        processor: Processor,
        policy: BatchPolicy = DEFAULT_BATCH,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.processor = processor
        self.policy = policy
        self.dlq_topic = stream.topic(TopicName.EVENTS_DLQ)
        self.strikes = Strikes()
        consumer.subscribe(topics=[stream.topic(TopicName.EVENTS)], listener=self.strikes)

    def run(self, stop: threading.Event, *, until_idle: bool = False) -> BatchResult:
        total = BatchResult()
        while not stop.is_set():
            batch = self.consumer.poll(
                timeout_ms=self.policy.poll_timeout_ms, max_records=self.policy.max_records
            )
            records = [r for part in batch.values() for r in part]
            if not records:
                if until_idle and self.caught_up():
                    break
                continue
            offsets = self._first_offsets(records)
            poisoned = self.strikes.poisoned(offsets, self.policy.poison_attempts)
            if poisoned:
                self._rewind([r for r in records if (r.topic, r.partition) not in poisoned])
                records = [r for r in records if (r.topic, r.partition) in poisoned]
                offsets = self._first_offsets(records)
            started = time.monotonic()
            try:
                result = self.isolate(records) if poisoned else self.handle(records)
            except Exception as exc:
                self._failed(records, offsets, exc)
                stop.wait(self.policy.retry_backoff_seconds)
                continue
            metrics.count_batch(result, time.monotonic() - started)
            self.strikes.clear(offsets)
            for name in ("events", "dead_lettered", "matches", "stored"):
                setattr(total, name, getattr(total, name) + getattr(result, name))
        return total

    def caught_up(self) -> bool:
        """Partitions are assigned and every one is read to its end."""
        assigned = self.consumer.assignment()
        if not assigned:
            return False
        ends = self.consumer.end_offsets(list(assigned))
        return all(self.consumer.position(tp) >= ends[tp] for tp in assigned)

    def handle(self, records: Sequence[Record]) -> BatchResult:
        valid: list[Event] = []
        dead: list[tuple[Record, str]] = []
        for record in records:
            try:
                valid.append(decode(record.value))
            except InvalidEvent as exc:
                dead.append((record, str(exc)))
        started = time.monotonic()
        result = self.processor.process(valid, revision=record_revision(records))
        result.dead_lettered = self._dead_letter_all(dead)
        self._commit()
        log.info(
            "batch: %d events, %d dead-lettered, %d matches, %d stored in %.0f ms",
            result.events,
            result.dead_lettered,
            result.matches,
            result.stored,
            (time.monotonic() - started) * 1000,
        )
        return result

    def isolate(self, records: Sequence[Record]) -> BatchResult:
        """Process the records of poisoned partitions one event per transaction; dead-letter
        each event whose processing still raises a non-transient error, then commit past them
        (the poll's other partitions were rewound, so the commit leaves them where they were).

        A transient error propagates and the whole batch is retried (what was stored is
        replayed idempotently). Even when every event fails, each is dead-lettered with its
        reason: the dead-letter topic keeps them for a replay once the cause is fixed,
        while a waiting partition would stall every other team whose events share it.
        """
        total = BatchResult()
        dead: list[tuple[Record, str]] = []
        for record in records:
            try:
                event = decode(record.value)
            except InvalidEvent as exc:
                dead.append((record, str(exc)))
                continue
            try:
                result = self.processor.process([event], revision=record_revision([record]))
            except Exception as exc:
                if is_transient(exc):
                    raise
                dead.append((record, f"processing: {type(exc).__name__}: {exc}"))
                continue
            for name in ("events", "matches", "stored"):
                setattr(total, name, getattr(total, name) + getattr(result, name))
        total.dead_lettered = self._dead_letter_all(dead)
        self._commit()
        log.warning(
            "poisoned batch of %d taken apart: %d stored, %d dead-lettered",
            len(records),
            total.stored,
            total.dead_lettered,
        )
        return total

    def _failed(
        self, records: Sequence[Record], offsets: frozenset[tuple[str, int, int]], exc: Exception
    ) -> None:
        if is_transient(exc):
            attempt = "transient, retried until it passes"
        else:
            count = self.strikes.add(offsets)
            attempt = f"attempt {count} of {self.policy.poison_attempts}"
        log.exception(
            "batch of %d failed (%s); rewinding and retrying in %.1fs",
            len(records),
            attempt,
            self.policy.retry_backoff_seconds,
        )
        self._rewind(records)
        self.processor.expire()
        close_old_connections()

    def _commit(self) -> None:
        try:
            self.consumer.commit()
        except CommitFailedError:
            log.warning("offset commit failed after a rebalance; the new owner will replay")

    def _dead_letter_all(self, dead: list[tuple[Record, str]]) -> int:
        """Send each record to the dead-letter topic and wait for every acknowledgement."""
        futures = [self._dead_letter(record, reason) for record, reason in dead]
        for future in futures:
            future.get(timeout=10)
        return len(futures)

    def _dead_letter(self, record: Record, reason: str) -> Sent:
        log.warning(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason
        )
        headers = [
            ("reason", reason.encode()),
            ("source", f"{record.topic}:{record.partition}:{record.offset}".encode()),
        ]
        return self.producer.send(
            self.dlq_topic, key=record.key, value=record.value or b"", headers=headers
        )

    @staticmethod
    def _first_offsets(records: Sequence[Record]) -> frozenset[tuple[str, int, int]]:
        first: dict[tuple[str, int], int] = {}
        for r in records:
            key = (r.topic, r.partition)
            first[key] = min(first.get(key, r.offset), r.offset)
        return frozenset((topic, partition, offset) for (topic, partition), offset in first.items())

    def _rewind(self, records: Sequence[Record]) -> None:
        for topic, partition, offset in self._first_offsets(records):
            self.consumer.seek(TopicPartition(topic, partition), offset)
