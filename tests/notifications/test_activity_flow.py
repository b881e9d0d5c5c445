"""Integration: an edit through the API → activity log → outbox → Kafka → consumer →
an in-app notification, on the real PostgreSQL and Kafka."""

import pytest

from notifications.models import Notification, Outbox
from tests.factories import InsightFactory
from workspace.models import ActivityLog

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_editing_someones_insight_notifies_the_owner_once(team, member_of, api_client, drain):
    owner = member_of(team, first_name="Olive", last_name="Owner")
    editor = member_of(team, first_name="Eddie", last_name="Editor")
    insight = InsightFactory(team=team, created_by=owner, name="Weekly revenue")

    api_client.force_authenticate(editor)
    response = api_client.patch(
        f"/api/insights/{insight.pk}/",
        {"name": "Weekly revenue (EUR)", "description": "now in euros"},
        format="json",
    )
    assert response.status_code == 200, response.content

    entry = ActivityLog.objects.get(action="updated", resource_id=str(insight.pk))
    assert entry.actor == editor
    assert entry.changes["name"] == {"before": "Weekly revenue", "after": "Weekly revenue (EUR)"}
    assert not Outbox.objects.filter(published_at__isnull=True).exists()

    drain(expected=2)  # the factory's "created" and the edit

    api_client.force_authenticate(owner)
    inbox = api_client.get("/api/notifications/?unread=true").json()["results"]
    assert len(inbox) == 1
    note = inbox[0]
    assert note["actor_name"] == "Eddie Editor"
    assert "Eddie Editor edited insight" in note["title"]
    assert "Weekly revenue (EUR)" in note["title"]
    assert "name: Weekly revenue → Weekly revenue (EUR)" in note["body"]
    assert "description" in note["body"]
    assert api_client.get("/api/notifications/unread_count/").json() == {"unread": 1}

    assert not Notification.objects.filter(recipient=editor).exists()


def test_a_replayed_batch_stores_nothing_twice(team, member_of, drain, api_client):
    owner = member_of(team)
    editor = member_of(team)
    insight = InsightFactory(team=team, created_by=owner)
    api_client.force_authenticate(editor)
    api_client.patch(f"/api/insights/{insight.pk}/", {"name": "Renamed"}, format="json")
    drain(expected=2)
    Outbox.objects.update(published_at=None)  # as if the relay died before stamping
    from notifications.stream import relay_outbox

    assert relay_outbox() == 2
    drain(expected=2)
    assert Notification.objects.filter(recipient=owner).count() == 1
