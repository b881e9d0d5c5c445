"""Integration: the project's own stream code against the real Kafka broker."""

import uuid
from datetime import UTC, datetime

import pytest

from notifications import events, stream
from notifications.stream import TopicName

pytestmark = pytest.mark.integration


def test_topic_names_follow_the_prefix(settings):
    settings.NOTIFLOW_TOPIC_PREFIX = "acme"
    assert stream.topic(TopicName.EVENTS) == "acme.events"
    assert stream.topic(TopicName.EVENTS_DLQ) == "acme.events.dlq"


def test_ensure_topics_creates_missing_topics_once(settings):
    settings.NOTIFLOW_TOPIC_PARTITIONS = 3
    created = stream.ensure_topics()
    assert sorted(created) == sorted(stream.topic(n) for n in TopicName)
    assert stream.ensure_topics() == []
    consumer = stream.build_consumer(group_id=f"probe-{uuid.uuid4()}")
    try:
        assert consumer.partitions_for_topic(stream.topic(TopicName.EVENTS)) == {0, 1, 2}
    finally:
        consumer.close()


def test_an_envelope_produced_is_read_back_equal():
    stream.ensure_topics()
    event = events.Event(
        name="checkout_error",
        team_id=42,
        org_id=7,
        source=events.Source.INGEST,
        occurred_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        properties={"amount": 150, "currency": "EUR"},
    )
    producer = stream.build_producer()
    try:
        metadata = producer.send(
            stream.topic(TopicName.EVENTS), key=b"42", value=event.encode()
        ).get(timeout=10)
    finally:
        producer.close()

    consumer = stream.build_consumer(
        stream.topic(TopicName.EVENTS), group_id=f"roundtrip-{uuid.uuid4()}"
    )
    try:
        received = []
        for _ in range(20):
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(records)
            if received:
                break
    finally:
        consumer.close()
    assert [r.partition for r in received] == [metadata.partition]
    assert events.decode(received[0].value) == event
    assert received[0].key == b"42"
