"""Integration: ``event_count`` triggers through the public path — the API creates them,
ingestion feeds them, the real consumer counts, roll-ups flush to the local Slack server —
and the claims that make counting safe to replay, kept for the replay horizon.

These hold on PostgreSQL and on SQLite (the README's local default) alike."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import rollup, stream, tasks
from notifications.counting import REPLAY_HORIZON
from notifications.events import Event, Source
from notifications.models import (
    Delivery,
    DeliveryStatus,
    Notification,
    RollupWindow,
    Trigger,
    TriggerMatch,
)
from notifications.processing import EventProcessor
from notifications.tasks import deliver
from tests.notifications.test_delivery import slack_config

pytestmark = [pytest.mark.integration, pytest.mark.sqlite, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def owner(team, member_of):
    return member_of(team)


@pytest.fixture
def client(api_client, owner):
    api_client.force_authenticate(owner)
    return api_client


def count_trigger(client, team, *, count, minutes=10, **fields) -> Trigger:
    response = client.post(
        "/api/triggers/",
        {
            "team": team.pk,
            "name": "Checkout errors pile up",
            "kind": "event_count",
            "config": {"event": "checkout_error", "count": count, "window_minutes": minutes},
        }
        | fields,
        format="json",
    )
    assert response.status_code == 201, response.content
    return Trigger.objects.get(pk=response.json()["id"])


def ingest(client, team, n, *, at=None):
    at = at or timezone.now()
    response = client.post(
        "/api/ingest/",
        {
            "api_key": team.api_token,
            "batch": [
                {
                    "event": "checkout_error",
                    "distinct_id": f"u{i}",
                    "uuid": str(uuid.uuid4()),
                    "timestamp": (at + timedelta(seconds=i)).isoformat(),
                }
                for i in range(n)
            ],
        },
        format="json",
    )
    assert response.status_code == 202, response.content


def test_two_within_ten_minutes_fed_exactly_two_events_fires_once(client, team, owner, drain):
    trigger = count_trigger(client, team, count=2)
    stream.ensure_topics()
    ingest(client, team, 1)
    drain(expected=1)
    assert not Notification.objects.filter(trigger=trigger).exists()

    ingest(client, team, 1, at=timezone.now() + timedelta(seconds=5))
    drain(expected=1)

    assert Notification.objects.filter(trigger=trigger, recipient=owner).count() == 1


def test_an_event_count_trigger_rolled_up_sends_one_summary(
    client, team, owner, drain, slack_server
):
    slack_config(team)
    trigger = count_trigger(
        client,
        team,
        count=3,
        minutes=1,
        channels=[{"type": "in_app"}, {"type": "slack", "target": "#alerts"}],
        delivery={"mode": "rollup", "window_seconds": 60},
    )
    stream.ensure_topics()
    start = timezone.now() - timedelta(minutes=10)
    for minute in range(4):  # 3 events in each of 4 separate minutes: fires 4 times
        ingest(client, team, 3, at=start + timedelta(minutes=minute))
    drain(expected=12)

    assert sorted(RollupWindow.objects.values_list("channel", "count")) == [
        ("in_app", 4),
        ("slack", 4),
    ]
    assert Notification.objects.get(trigger=trigger, recipient=owner).count == 4
    for delivery_id in rollup.flush_due(now=timezone.now() + timedelta(seconds=61)):
        deliver(delivery_id)
    [post] = slack_server.posts
    assert post.channel == "#alerts"
    assert Delivery.objects.get(trigger=trigger).status == DeliveryStatus.SENT


def checkout_error(team, at, **fields) -> Event:
    """An event as any producer of the topic may publish it (stamped as it likes)."""
    return Event(
        name="checkout_error",
        team_id=team.pk,
        org_id=team.organization_id,
        source=Source.INGEST,
        occurred_at=at,
        properties={},
        **fields,
    )


def two_in_ten_minutes_rolled_up(team, owner) -> Trigger:
    from tests.factories import TriggerFactory

    return TriggerFactory(
        team=team,
        owner=owner,
        kind="event_count",
        config={"event": "checkout_error", "count": 2, "window_minutes": 10},
        delivery={"mode": "rollup", "window_seconds": 3600},
    )


class Replay:
    """The consumer's processor on a clock the test moves, in minutes from ``now``."""

    def __init__(self, team) -> None:
        self.team = team
        self.now = timezone.now()
        self.minutes = 0
        self.processor = EventProcessor(clock=lambda: self.now + timedelta(minutes=self.minutes))

    def event(self, minutes) -> Event:
        return checkout_error(self.team, self.now + timedelta(minutes=minutes))

    def process(self, events, *, at) -> None:
        self.minutes = at
        self.processor.process(events)


def test_an_event_from_a_clock_set_to_tomorrow_does_not_block_the_count(team, member_of):
    """Through the consumer's processor (any producer may stamp an event): the event counts
    at the time it was processed, so today's matches survive and the trigger fires."""
    from tests.factories import TriggerFactory

    alice = member_of(team)
    trigger = TriggerFactory(
        team=team,
        owner=alice,
        kind="event_count",
        config={"event": "checkout_error", "count": 3, "window_minutes": 10},
    )
    now = timezone.now()
    clock = [now]
    processor = EventProcessor(clock=lambda: clock[0])
    processor.process([checkout_error(team, now - timedelta(minutes=2))])
    processor.process([checkout_error(team, now + timedelta(days=1))])
    clock[0] = now + timedelta(seconds=30)
    processor.process([checkout_error(team, clock[0])])

    assert Notification.objects.filter(trigger=trigger).count() == 1


def test_a_future_stamped_event_replayed_a_window_later_does_not_fire_again(team, member_of):
    """An event stamped 50 minutes ahead (ingestion allows an hour) counts when it is
    first processed. A crash before the offset commit replays its batch 12 minutes later,
    together with the two events that followed it: the replay adds nothing to the roll-up,
    although at the replay's ``now`` the event falls in a window the later two fill, and
    it does not hold back the trigger's next firing."""
    trigger = two_in_ten_minutes_rolled_up(team, member_of(team))
    replay = Replay(team)
    first, later = [replay.event(-1), replay.event(50)], [replay.event(5), replay.event(9)]
    replay.process(first, at=0)
    replay.process(later, at=9)
    replay.process(first + later, at=12)
    window = RollupWindow.objects.get(trigger=trigger)
    assert window.count == 1

    replay.process([replay.event(14)], at=14)  # 3 in the 10 minutes to 14, 14 since the firing
    window.refresh_from_db()
    assert window.count == 2


def test_a_future_stamped_event_is_known_to_a_replay_after_later_events_passed_its_window(
    team, member_of
):
    """The first batch (an event stamped 50 minutes ahead, counted now, and one a minute
    old) fires. Another consumer has since processed an event 11 minutes on; then the first
    batch is replayed (a consumer evicted from its group, a reset group): the event stamped
    ahead is still known as counted, and the roll-up counts it once."""
    trigger = two_in_ten_minutes_rolled_up(team, member_of(team))
    replay = Replay(team)
    first, later = [replay.event(-1), replay.event(50)], [replay.event(11)]
    replay.process(first, at=0)
    replay.process(later, at=11)
    replay.process(first + later, at=12)

    assert RollupWindow.objects.get(trigger=trigger).count == 1


def test_claims_are_forgotten_after_the_replay_horizon_and_kept_before_it(
    client, team, owner, drain
):
    """Roll-up claims are pruned by beat once older than the horizon; the ones within it
    still keep a replayed event from counting twice."""
    trigger = Trigger.objects.create(
        team=team,
        owner=owner,
        name="Checkout errors",
        kind="event",
        config={"event": "checkout_error"},
        channels=[{"type": "in_app"}],
        delivery={"mode": "rollup", "window_seconds": 3600},
    )
    stream.ensure_topics()
    ingest(client, team, 4)
    drain(expected=4)
    claims = TriggerMatch.objects.filter(trigger=trigger)
    old, recent = list(claims.order_by("occurred_at").values_list("pk", flat=True)[:2]), 2
    claims.filter(pk__in=old).update(
        claimed_at=timezone.now() - REPLAY_HORIZON - timedelta(hours=1)
    )

    assert tasks.prune_claims() == 2

    assert claims.count() == recent
    assert not claims.filter(pk__in=old).exists()
    replayed = [checkout_error(team, m.occurred_at, id=m.event_id) for m in claims]
    stream.publish_events(replayed)
    drain(expected=2)
    assert RollupWindow.objects.get(trigger=trigger).count == 4
