"""Integration: the consumer against the real Kafka and PostgreSQL."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications import stream
from notifications.events import Event, Source
from notifications.models import Notification, Preference, Trigger
from notifications.processing import EventProcessor
from notifications.stream import TopicName
from tests.factories import InsightFactory, TriggerFactory
from tests.servers.worker import subprocess_database_url
from workspace.activity import acting_as, subscription_delivered
from workspace.models import Subscription

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def checkout_errors(team, amounts, *, start=T0):
    return [
        Event(
            name="checkout_error",
            team_id=team.pk,
            org_id=team.organization_id,
            source=Source.INGEST,
            occurred_at=start + timedelta(seconds=i),
            properties={"amount": amount, "distinct_id": f"user-{i}"},
        )
        for i, amount in enumerate(amounts)
    ]


def amount_over_100(team, subscribers, **fields):
    return TriggerFactory(
        team=team,
        owner=subscribers[0],
        config={
            "event": "checkout_error",
            "filters": [{"property": "amount", "operator": "gt", "value": 100}],
        },
        subscribers=subscribers,
        **fields,
    )


def test_ingested_events_matching_a_filter_reach_every_subscriber(
    team, member_of, api_client, drain
):
    alice, bob = member_of(team), member_of(team)
    outsider = member_of(team)
    trigger = amount_over_100(team, [alice, bob])
    batch = [
        {"event": "checkout_error", "distinct_id": f"u{i}", "properties": {"amount": amount}}
        for i, amount in enumerate(range(50, 1050))
    ]
    stream.ensure_topics()
    for start in range(0, 1000, 100):
        response = api_client.post(
            "/api/ingest/",
            {"api_key": team.api_token, "batch": batch[start : start + 100]},
            format="json",
        )
        assert response.status_code == 202, response.content

    drain(expected=1000)

    for user in (alice, bob):
        assert Notification.objects.filter(recipient=user, trigger=trigger).count() == 949
    assert not Notification.objects.filter(recipient=outsider).exists()
    sample = Notification.objects.filter(recipient=alice).first()
    assert sample.title == f"{trigger.name}: checkout_error"
    assert "amount=" in sample.body


def test_garbage_goes_to_the_dead_letter_topic_and_the_next_event_is_processed(
    team, member_of, drain
):
    alice = member_of(team)
    amount_over_100(team, [alice])
    stream.ensure_topics()
    producer = stream.build_producer()
    try:
        events_topic = stream.topic(TopicName.EVENTS)
        wrong_version = (
            checkout_errors(team, [500])[0].encode().replace(b'"schema":1', b'"schema":9')
        )
        for value in (b"\x00not json", wrong_version, checkout_errors(team, [500])[0].encode()):
            producer.send(events_topic, key=b"1", value=value).get(10)
    finally:
        producer.close()

    totals = drain(expected=3)

    assert totals.dead_lettered == 2
    assert Notification.objects.filter(recipient=alice).count() == 1
    dlq = stream.build_consumer(
        stream.topic(TopicName.EVENTS_DLQ), group_id=f"dlq-reader-{uuid.uuid4()}"
    )
    try:
        records = []
        deadline = time.monotonic() + 20
        while len(records) < 2 and time.monotonic() < deadline:
            for part in dlq.poll(timeout_ms=500).values():
                records.extend(part)
    finally:
        dlq.close()
    reasons = sorted(dict(r.headers)["reason"].decode() for r in records)
    assert reasons[0].startswith("envelope: is not JSON")
    assert reasons[1] == "schema: unknown version 9, expected 1"


def test_event_count_fires_once_per_window_and_survives_a_replay(team, member_of, drain):
    alice = member_of(team)
    trigger = TriggerFactory(
        team=team,
        owner=alice,
        kind="event_count",
        config={"event": "checkout_error", "count": 3, "window_minutes": 10},
    )
    events = checkout_errors(team, [1, 2, 3, 4, 5])
    events.append(checkout_errors(team, [6], start=T0 + timedelta(minutes=30))[0])
    stream.publish_events(events)
    drain(expected=6)
    notes = Notification.objects.filter(recipient=alice, trigger=trigger)
    assert notes.count() == 1
    assert notes.get().title == f"{trigger.name}: checkout_error seen 3 times within 10 minutes"

    stream.publish_events(events)  # the same ids again, as after a relay crash
    drain(expected=6)
    assert notes.count() == 1


def test_muted_category_and_muted_team_make_no_notification(team, member_of, drain):
    alice, bob, carol = member_of(team), member_of(team), member_of(team)
    amount_over_100(team, [alice, bob, carol])
    Preference.objects.create(user=bob, channels={"alert": {"in_app": False}})
    Preference.objects.create(user=carol).muted_teams.add(team)
    stream.publish_events(checkout_errors(team, [500]))
    drain(expected=1)
    assert list(Notification.objects.values_list("recipient", flat=True)) == [alice.pk]


def test_followers_hear_about_later_edits_and_the_actor_never_does(team, member_of, drain):
    owner, first_editor, second_editor = member_of(team), member_of(team), member_of(team)
    insight = InsightFactory(team=team, created_by=owner)
    with acting_as(first_editor):
        insight.name = "First rename"
        insight.save()
    drain(expected=2)
    with acting_as(second_editor):
        insight.name = "Second rename"
        insight.save()
    drain(expected=1)
    assert Notification.objects.filter(recipient=owner).count() == 2
    assert Notification.objects.filter(recipient=first_editor).count() == 1
    assert not Notification.objects.filter(recipient=second_editor).exists()


def test_a_failed_subscription_is_activity_for_its_owner(team, member_of, drain):
    owner = member_of(team)
    subscription = Subscription.objects.create(
        team=team, name="Weekly revenue", created_by=owner, target_value="team@example.com"
    )
    subscription_delivered(subscription, ok=False, error="SMTP 550 mailbox unavailable")
    drain(expected=2)
    note = Notification.objects.get(recipient=owner)
    assert note.title == "Someone failed to send subscription “Weekly revenue”"


def test_a_trigger_saved_while_the_consumer_runs_is_evaluated_after_the_refresh_interval(
    team, member_of, settings
):
    settings.NOTIFLOW_TRIGGER_REFRESH_SECONDS = 2
    alice = member_of(team)
    now = T0
    processor = EventProcessor(clock=lambda: now)
    assert processor.process(checkout_errors(team, [500])).stored == 0

    trigger = amount_over_100(team, [alice])
    with CaptureQueriesContext(connection) as queries:
        processor.process(checkout_errors(team, [500]))
    # Within the interval the batch does not ask about triggers at all.
    assert not [q for q in queries if Trigger._meta.db_table in q["sql"]]

    now += timedelta(seconds=2)
    assert processor.process(checkout_errors(team, [500])).stored == 1
    assert Notification.objects.get().trigger == trigger


def test_an_expired_trigger_cache_sees_a_new_trigger_in_the_next_batch(team, member_of, settings):
    settings.NOTIFLOW_TRIGGER_REFRESH_SECONDS = 3600
    alice = member_of(team)
    processor = EventProcessor()
    assert processor.process(checkout_errors(team, [500])).stored == 0
    amount_over_100(team, [alice])
    processor.triggers.expire()
    assert processor.process(checkout_errors(team, [500])).stored == 1


def _consumer_process(env_overrides):
    from django.conf import settings

    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "NOTIFLOW_TOPIC_PREFIX": settings.NOTIFLOW_TOPIC_PREFIX,
        **env_overrides,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "consume_events", "--batch-size", "200", "--until-idle"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_sigkill_mid_stream_then_restart_gives_the_same_store(team, member_of):
    alice = member_of(team)
    amount_over_100(team, [alice])
    stream.ensure_topics()
    stream.publish_events(checkout_errors(team, [500] * 5000))

    first = _consumer_process({})
    deadline = time.monotonic() + 120
    while Notification.objects.count() < 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    stored_at_kill = Notification.objects.count()
    assert 0 < stored_at_kill < 5000

    second = _consumer_process({})
    assert second.wait(timeout=180) == 0
    assert Notification.objects.filter(recipient=alice).count() == 5000
    assert Notification.objects.values("dedup_key").distinct().count() == 5000


def test_sigterm_finishes_the_batch_commits_and_leaves(team, member_of):
    alice = member_of(team)
    amount_over_100(team, [alice])
    stream.ensure_topics()
    stream.publish_events(checkout_errors(team, [500] * 2000))
    consumer = _consumer_process({})
    deadline = time.monotonic() + 60
    while not Notification.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    consumer.send_signal(signal.SIGTERM)
    assert consumer.wait(timeout=30) == 0
    stored = Notification.objects.count()
    # A restart continues where the committed offsets left off: the store ends complete.
    assert _consumer_process({}).wait(timeout=120) == 0
    assert Notification.objects.count() == 2000
    assert stored > 0
