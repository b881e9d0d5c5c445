"""Integration: the outbox holds activity while Kafka is down and relays it in order."""

import uuid

import pytest
from django.db import transaction

from notifications import events, stream
from notifications.models import Notification, Outbox
from notifications.stream import TopicName
from tests.factories import InsightFactory
from workspace.activity import acting_as

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_activity_and_its_outbox_row_commit_together(team, member_of):
    owner = member_of(team)
    with pytest.raises(RuntimeError), acting_as(owner), transaction.atomic():
        InsightFactory(team=team, created_by=owner)
        raise RuntimeError("the request failed after the save")
    assert not Outbox.objects.exists()


def test_relay_publishes_rows_in_order_and_stamps_them(team, member_of):
    owner = member_of(team)
    with acting_as(owner):
        insight = InsightFactory(team=team, created_by=owner, name="v0")
        for version in range(1, 6):
            insight.name = f"v{version}"
            insight.save()
    assert not Outbox.objects.filter(published_at__isnull=True).exists()
    expected = list(Outbox.objects.order_by("id").values_list("event_id", flat=True))

    consumer = stream.build_consumer(
        stream.topic(TopicName.EVENTS), group_id=f"order-{uuid.uuid4()}"
    )
    try:
        received = []
        for _ in range(40):
            for part in consumer.poll(timeout_ms=500).values():
                received.extend(events.decode(r.value).id for r in part)
            if len(received) >= len(expected):
                break
    finally:
        consumer.close()
    assert received == expected


@pytest.mark.slow
def test_an_edit_while_kafka_is_down_arrives_once_kafka_is_back(
    team, member_of, drain, private_kafka
):
    owner, editor = member_of(team), member_of(team)
    insight = InsightFactory(team=team, created_by=owner, name="Churn")
    private_kafka.stop()
    try:
        with acting_as(editor):
            insight.name = "Churn (monthly)"
            insight.save()
        waiting = Outbox.objects.filter(published_at__isnull=True)
        assert waiting.count() == 1
        assert waiting.get().attempts >= 1
    finally:
        private_kafka.start()

    assert stream.relay_outbox() == 1
    drain(expected=2)
    note = Notification.objects.get(recipient=owner)
    assert "Churn (monthly)" in note.title


def test_a_transaction_with_many_activity_rows_nudges_the_relay_once(team, member_of):
    from notifications.outbox import nudge_relay

    owner = member_of(team)
    with transaction.atomic(), acting_as(owner):
        for i in range(5):
            InsightFactory(team=team, created_by=owner, name=f"i{i}")
        pending = transaction.get_connection().run_on_commit
        assert [c for _, c, *_ in pending if c is nudge_relay] == [nudge_relay]
    assert Outbox.objects.filter(published_at__isnull=False).count() == 5
