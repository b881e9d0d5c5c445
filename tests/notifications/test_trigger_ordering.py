"""Integration: a trigger change is ordered with the events ingested after it.

The promise (DESIGN.md, "Guarantees the stream must keep"): an event ingested after the API
answered a trigger change — create, edit, disable, snooze, subscribers — is evaluated
against that change, on every consumer instance. Each test keeps one consumer alive across
the change, with a trigger cache loaded before it and a refresh interval of an hour, so
only the ordering mechanism, never a poll, can make the change visible.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import stream
from notifications.models import Notification, Trigger, trigger_revision
from notifications.processing import EventProcessor
from tests.factories import TeamFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

AMOUNT_OVER_100 = {
    "event": "checkout_error",
    "filters": [{"property": "amount", "operator": "gt", "value": 100}],
}


@pytest.fixture
def owner(team, member_of):
    return member_of(team)


@pytest.fixture
def client(api_client, owner):
    api_client.force_authenticate(owner)
    return api_client


@pytest.fixture
def consumer(settings, team, client, drain):
    """A running consumer whose trigger cache is already loaded (it processed an event)
    and that would not ask the database again for an hour."""
    settings.NOTIFLOW_TRIGGER_REFRESH_SECONDS = 3600
    stream.ensure_topics()
    processor = EventProcessor()
    ingest(client, team, [("page_view", 1)])
    drain(expected=1, processor=processor)
    assert processor.triggers.revision is not None

    def run(expected: int):
        return drain(expected=expected, processor=processor)

    return run


def ingest(client, team, events):
    response = client.post(
        "/api/ingest/",
        {
            "api_key": team.api_token,
            "batch": [
                {"event": name, "distinct_id": f"u{i}", "properties": {"amount": amount}}
                for i, (name, amount) in enumerate(events)
            ],
        },
        format="json",
    )
    assert response.status_code == 202, response.content


def checkout_errors(client, team, n, amount=500):
    """Ingest ``n`` matching events (each with its own id) right after the change."""
    ingest(client, team, [("checkout_error", amount + i) for i in range(n)])


def create_trigger(client, team, **fields):
    response = client.post(
        "/api/triggers/",
        {"team": team.pk, "name": "Big checkout errors", "kind": "event", "config": AMOUNT_OVER_100}
        | fields,
        format="json",
    )
    assert response.status_code == 201, response.content
    return Trigger.objects.get(pk=response.json()["id"])


def test_a_trigger_created_and_fed_at_once_matches_every_event(client, team, owner, consumer):
    trigger = create_trigger(client, team)
    checkout_errors(client, team, 300)

    consumer(expected=300)

    assert Notification.objects.filter(trigger=trigger, recipient=owner).count() == 300


def test_an_edit_applies_to_the_next_event(client, team, owner, consumer):
    trigger = create_trigger(client, team)
    checkout_errors(client, team, 1)
    consumer(expected=1)
    assert Notification.objects.filter(trigger=trigger).count() == 1
    response = client.patch(
        f"/api/triggers/{trigger.pk}/",
        {
            "config": {
                **AMOUNT_OVER_100,
                "filters": [{**AMOUNT_OVER_100["filters"][0], "value": 10_000}],
            }
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    checkout_errors(client, team, 20)

    consumer(expected=20)

    assert Notification.objects.filter(trigger=trigger).count() == 1


def test_disabling_applies_to_the_next_event(client, team, consumer):
    trigger = create_trigger(client, team)
    checkout_errors(client, team, 5)
    consumer(expected=5)
    assert Notification.objects.filter(trigger=trigger).count() == 5

    response = client.patch(f"/api/triggers/{trigger.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content
    checkout_errors(client, team, 20, amount=900)

    consumer(expected=20)

    assert Notification.objects.filter(trigger=trigger).count() == 5


def test_snoozing_applies_to_the_next_event(client, team, consumer):
    trigger = create_trigger(client, team)
    checkout_errors(client, team, 1)
    consumer(expected=1)
    assert Notification.objects.filter(trigger=trigger).count() == 1
    until = (timezone.now() + timedelta(hours=1)).isoformat()
    response = client.post(f"/api/triggers/{trigger.pk}/snooze/", {"until": until}, format="json")
    assert response.status_code == 200, response.content
    checkout_errors(client, team, 20)

    consumer(expected=20)

    assert Notification.objects.filter(trigger=trigger).count() == 1


def test_a_new_subscriber_hears_the_next_event(client, team, owner, member_of, consumer):
    trigger = create_trigger(client, team)
    teammate = member_of(team)
    response = client.patch(
        f"/api/triggers/{trigger.pk}/", {"subscribers": [owner.pk, teammate.pk]}, format="json"
    )
    assert response.status_code == 200, response.content
    checkout_errors(client, team, 10)

    consumer(expected=10)

    assert Notification.objects.filter(trigger=trigger, recipient=teammate).count() == 10


def test_a_bulk_update_stamped_in_the_past_is_still_seen(client, team, consumer):
    """A change whose ``updated_at`` is older than one the consumer already saw (an import,
    a bulk action, a transaction that committed late) still reaches the consumer."""
    trigger = create_trigger(client, team)
    checkout_errors(client, team, 1)
    consumer(expected=1)
    before = trigger_revision()

    Trigger.objects.filter(pk=trigger.pk).update(
        enabled=False, updated_at=timezone.now() - timedelta(days=1)
    )
    assert trigger_revision() == before + 1
    checkout_errors(client, team, 10, amount=800)

    consumer(expected=10)

    assert Notification.objects.filter(trigger=trigger).count() == 1


def test_a_change_in_one_team_is_ordered_for_every_partition(client, team, owner, consumer):
    """The stamp is the global revision, so an event of another team (another partition)
    published after the change is evaluated against it too."""
    other = TeamFactory(organization=team.organization)
    other.memberships.create(user=owner, role="member")
    trigger = create_trigger(client, other)
    checkout_errors(client, other, 30)

    consumer(expected=30)

    assert Notification.objects.filter(trigger=trigger).count() == 30


def test_a_trigger_deleted_while_its_events_wait_costs_no_other_trigger_its_match(
    client, team, owner, member_of, consumer
):
    """Events ingested before a trigger is deleted and read after it match the cached
    trigger, whose rows can no longer be stored (the foreign key is gone): the batch fails.
    Its retry must see the deletion, not the same cache, or the events are dead-lettered
    and every other trigger they match loses them too."""
    doomed = create_trigger(client, team, name="Doomed")
    teammate = member_of(team)
    kept = create_trigger(client, team, name="Kept", subscribers=[teammate.pk])
    checkout_errors(client, team, 1)
    consumer(expected=1)
    checkout_errors(client, team, 5)  # waiting in the topic when the trigger goes
    assert client.delete(f"/api/triggers/{doomed.pk}/").status_code == 204

    result = consumer(expected=5)

    assert result.dead_lettered == 0
    assert Notification.objects.filter(trigger=kept, recipient=teammate).count() == 6
