"""A trigger an organization admin marked critical passes everyone's quiet hours, so what it
matches and whom it reaches is that admin's to change, not its owner's (hostile review)."""

from __future__ import annotations

import pytest

from tests.factories import TriggerFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def critical(team, member_of, api_client):
    owner = member_of(team)
    admin = member_of(team, role="admin")
    trigger = TriggerFactory(
        team=team, owner=owner, config={"event": "site_down"}, channels=[{"type": "email"}]
    )
    trigger.subscribers.set([owner])
    api_client.force_authenticate(admin)
    marked = api_client.patch(f"/api/triggers/{trigger.pk}/", {"critical": True}, format="json")
    assert marked.status_code == 200, marked.content
    return trigger, owner, admin


@pytest.mark.parametrize(
    "body",
    [
        {"config": {"event": "page_view"}},
        {"kind": "activity", "config": {"actions": ["deleted"]}},
        {"channels": [{"type": "email"}, {"type": "in_app"}]},
        {"subscribers": "everyone"},
    ],
)
def test_its_owner_cannot_widen_a_critical_trigger(critical, team, member_of, api_client, body):
    trigger, owner, _ = critical
    if body.get("subscribers") == "everyone":
        body = {"subscribers": [owner.pk, member_of(team).pk, member_of(team).pk]}
    api_client.force_authenticate(owner)

    response = api_client.patch(f"/api/triggers/{trigger.pk}/", body, format="json")

    assert response.status_code == 400, response.content
    for field in body:
        assert "critical" in response.json()[field][0]
    trigger.refresh_from_db()
    assert trigger.config == {"event": "site_down"} and trigger.critical is True
    assert list(trigger.subscribers.values_list("pk", flat=True)) == [owner.pk]


def test_its_owner_may_rename_it_and_repeat_it_whole_and_an_admin_may_widen_it(
    critical, api_client
):
    trigger, owner, admin = critical
    api_client.force_authenticate(owner)
    current = api_client.get(f"/api/triggers/{trigger.pk}/").json()
    body = {k: current[k] for k in ("team", "name", "kind", "config", "channels", "delivery")}
    body |= {"name": "Site down (renamed)", "subscribers": [owner.pk]}
    assert api_client.put(f"/api/triggers/{trigger.pk}/", body, format="json").status_code == 200

    api_client.force_authenticate(admin)
    widened = api_client.patch(
        f"/api/triggers/{trigger.pk}/", {"config": {"event": "page_view"}}, format="json"
    )
    assert widened.status_code == 200, widened.content
    assert widened.json()["critical"] is True and widened.json()["name"] == "Site down (renamed)"
