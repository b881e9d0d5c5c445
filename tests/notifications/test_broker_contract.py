"""One contract, two brokers: what ``consumers.Consumer`` and ``consumers.Producer`` promise
the loop, checked against kafka-python on the real broker and against the in-memory broker
the loop's unit tests use (``memory_broker.py``), so the stand-in cannot drift from Kafka
in the ways the loop relies on."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import TopicPartition

from notifications import stream
from notifications.consumers import Strikes
from notifications.stream import TopicName
from tests.notifications.memory_broker import MemoryBroker


class Kafka:
    def __init__(self) -> None:
        stream.ensure_topics()
        self.group = f"contract-{uuid.uuid4().hex[:8]}"
        self.producer = stream.build_producer()
        self.opened: list = []

    def put(self, partition: int, value: bytes) -> None:
        topic = stream.topic(TopicName.EVENTS)
        self.producer.send(topic, value=value, partition=partition).get(timeout=10)

    def consumer(self):
        consumer = stream.build_consumer(group_id=self.group)
        self.opened.append(consumer)
        return consumer

    def retire(self, consumer) -> None:
        consumer.close()
        self.opened.remove(consumer)

    def close(self) -> None:
        for consumer in self.opened:
            consumer.close()
        self.producer.close(timeout=5)


class Memory:
    def __init__(self) -> None:
        self.broker = MemoryBroker(partitions=2)
        self.producer = self.broker.producer()

    def put(self, partition: int, value: bytes) -> None:
        self.broker.append(stream.topic(TopicName.EVENTS), partition, value)

    def consumer(self):
        return self.broker.consumer()

    def retire(self, consumer) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture(params=[pytest.param("kafka", marks=pytest.mark.integration), "memory"])
def broker(request):
    backend = Kafka() if request.param == "kafka" else Memory()
    yield backend
    backend.close()


def subscribed(broker):
    consumer = broker.consumer()
    consumer.subscribe(topics=[stream.topic(TopicName.EVENTS)], listener=Strikes())
    return consumer


def poll_until(consumer, count: int, timeout: float = 30.0) -> list:
    """Poll (the real group needs a few polls to join) until ``count`` records came."""
    records: list = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=200, max_records=500)
        records += [r for part in batch.values() for r in part]
    return records


def test_poll_hands_out_what_follows_the_position_and_seek_goes_back(broker):
    for n in range(3):
        broker.put(0, b"event %d" % n)
    consumer = subscribed(broker)
    partition = TopicPartition(stream.topic(TopicName.EVENTS), 0)

    records = poll_until(consumer, 3)
    assert [(r.partition, r.offset, r.value) for r in records] == [
        (0, n, b"event %d" % n) for n in range(3)
    ]
    assert consumer.position(partition) == 3 == consumer.end_offsets([partition])[partition]
    assert partition in consumer.assignment()

    consumer.seek(partition, 1)
    assert [r.offset for r in poll_until(consumer, 2)] == [1, 2]


def test_a_commit_is_where_the_group_resumes(broker):
    broker.put(1, b"first")
    consumer = subscribed(broker)
    assert len(poll_until(consumer, 1)) == 1
    consumer.commit()
    broker.retire(consumer)

    broker.put(1, b"second")
    again = subscribed(broker)
    assert [r.value for r in poll_until(again, 1)] == [b"second"]
    assert poll_until(again, 1, timeout=1) == []


def test_a_send_is_acknowledged_and_arrives_with_its_key_and_headers(broker):
    topic = stream.topic(TopicName.EVENTS)
    consumer = subscribed(broker)
    sent = broker.producer.send(topic, key=b"7", value=b"dead", headers=[("reason", b"why")])
    sent.get(timeout=10)

    [record] = poll_until(consumer, 1)
    assert (record.key, record.value) == (b"7", b"dead")
    assert list(record.headers) == [("reason", b"why")]
