"""Protections that no other test turned red when they were removed (docs/reliability.md,
"Protection removed → test that went red").

A SIGKILL replays only batches whose database transaction died with the process, so the
crash tests never hand the store an event it already holds. The stream does, though: the
outbox relay republishes rows after a crash between publish and stamp, and a client
retries an ingest batch whose answer it lost. Those events carry the same ids.

Where the SIGKILL of ``test_consumer.py`` lands is up to the scheduler, and with the offset
commit moved before the database transaction that test still passed: a batch is lost only
when the kill falls between the two. The crash below is placed inside the batch's
transaction every time.
"""

import pytest
from django.db import transaction

from notifications import stream
from notifications.models import Delivery, DeliveryStatus, Notification, RollupWindow
from notifications.processing import EventProcessor
from tests.factories import TriggerFactory
from tests.notifications.test_consumer import checkout_errors
from tests.notifications.test_delivery import slack_config

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_events_published_twice_are_stored_and_sent_once(team, member_of, drain, slack_server):
    alice, bob = member_of(team), member_of(team)
    slack_config(team)
    TriggerFactory(
        team=team,
        owner=alice,
        config={"event": "checkout_error"},
        channels=[{"type": "in_app"}, {"type": "slack", "target": "#alerts"}],
        subscribers=[alice, bob],
    )
    events = checkout_errors(team, [500] * 50)
    stream.ensure_topics()

    stream.publish_events(events)
    drain(expected=50)
    stream.publish_events(events)  # the relay after a crash, or a client's retry
    drain(expected=50)

    for user in (alice, bob):
        notes = Notification.objects.filter(recipient=user)
        assert sorted(notes.values_list("event_id", flat=True)) == sorted(e.id for e in events)
    assert Delivery.objects.filter(status=DeliveryStatus.SENT).count() == 50
    assert len(slack_server.posts) == 50


def test_a_burst_published_twice_is_counted_once_in_its_roll_up(team, member_of, drain):
    alice = member_of(team)
    TriggerFactory(
        team=team,
        owner=alice,
        config={"event": "checkout_error"},
        delivery={"mode": "rollup", "window_seconds": 600},
    )
    events = checkout_errors(team, [500] * 50)
    stream.ensure_topics()

    stream.publish_events(events)
    drain(expected=50)
    stream.publish_events(events)
    drain(expected=50)

    assert list(RollupWindow.objects.values_list("count", flat=True)) == [50]
    assert Notification.objects.get(recipient=alice).count == 50


class ProcessDied(BaseException):
    """Stands for SIGKILL: not an ``Exception``, so the loop's retry does not catch it."""


class DiesInsideTheTransaction(EventProcessor):
    def process(self, events, **kwargs):
        with transaction.atomic():
            super().process(events)
            raise ProcessDied


def test_a_consumer_that_dies_inside_a_batch_leaves_it_to_the_next_one(team, member_of, drain):
    alice = member_of(team)
    TriggerFactory(team=team, owner=alice, config={"event": "checkout_error"})
    events = checkout_errors(team, [500] * 50)
    stream.ensure_topics()
    stream.publish_events(events)

    with pytest.raises(ProcessDied):
        drain(expected=50, processor=DiesInsideTheTransaction())
    assert not Notification.objects.exists()

    assert drain(expected=50).events == 50
    assert Notification.objects.filter(recipient=alice).count() == 50
