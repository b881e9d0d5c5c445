"""The lag reading on a broker that has just started: its first answers about the consumer
group are "no coordinator yet" (Kafka marks them retriable), which must not show as a
degraded pipeline; an error that is not retriable is reported at once. An in-memory admin
client stands in for Kafka (a unit test; the real broker is in test_health.py)."""

from types import SimpleNamespace

import pytest
from kafka import TopicPartition
from kafka.errors import (
    CoordinatorNotAvailableError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NotCoordinatorError,
    RequestTimedOutError,
    UnknownError,
)

from api import health
from notifications import stream


class StartingBroker:
    """One partition with 3 records, a group that committed 1; the group calls fail with
    ``errors`` first."""

    def __init__(self, errors):
        self.errors = list(errors)
        self.group_calls = 0

    def describe_topics(self, names):
        return [{"partitions": [{"partition_index": 0}]}]

    def list_partition_offsets(self, specs):
        return {tp: SimpleNamespace(offset=3) for tp in specs}

    def list_group_offsets(self, group):
        self.group_calls += 1
        if self.errors:
            raise self.errors.pop(0)
        events = TopicPartition(stream.topic(stream.TopicName.EVENTS), 0)
        return {group: {events: SimpleNamespace(offset=1)}}


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(health, "LAG_RETRY_PAUSE", 0.0)


def test_a_coordinator_still_loading_is_waited_for_and_the_lag_read():
    broker = StartingBroker([CoordinatorNotAvailableError(), NotCoordinatorError()])
    assert health.consumer_lag_settled(broker) == {0: 2}
    assert broker.group_calls == 3


def test_an_error_kafka_does_not_call_retriable_is_reported_at_once():
    broker = StartingBroker([UnknownError()])
    with pytest.raises(UnknownError):
        health.consumer_lag_settled(broker)
    assert broker.group_calls == 1


def test_a_coordinator_that_never_comes_is_reported_after_the_budget(monkeypatch):
    monkeypatch.setattr(health, "LAG_RETRY_SECONDS", 0.0)
    broker = StartingBroker([CoordinatorNotAvailableError()] * 100)
    with pytest.raises(CoordinatorNotAvailableError):
        health.consumer_lag_settled(broker)
    assert broker.group_calls == 1


@pytest.mark.parametrize(
    "error",
    [KafkaConnectionError("gone"), RequestTimedOutError("10 s"), KafkaTimeoutError("10 s")],
    ids=type,
)
def test_a_broker_that_did_not_answer_is_not_asked_again(error):
    """Kafka calls these retriable too, but each one already cost a connection or a request
    timeout: asking again for 5 s more would keep a load balancer's health check waiting
    past its own timeout, for a verdict (lag unreadable) that is already known."""
    broker = StartingBroker([error] * 100)
    with pytest.raises(type(error)):
        health.consumer_lag_settled(broker)
    assert broker.group_calls == 1
