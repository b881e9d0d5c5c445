"""Integration: a person's time zone that this machine does not know (stored by a web
process with newer tzdata, or removed by a tzdata update: "US/Pacific-New" went in 2020b)
is read as UTC by the attention stage, as digests and pages read it — it never fails the
consumer's batch, which would dead-letter the event for every other subscriber too."""

from __future__ import annotations

import pytest

from tests.factories import TriggerFactory
from workspace.models import UserProfile

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_an_unknown_stored_time_zone_fails_no_push(team, member_of, drain, smtp_server, api_client):
    alice = member_of(team, email="alice@example.com")
    bob = member_of(team, email="bob@example.com")
    api_client.force_authenticate(alice)
    response = api_client.put(
        "/api/preferences/", {"timezone": "America/Los_Angeles"}, format="json"
    )
    assert response.status_code == 200, response.content
    UserProfile.objects.filter(user=alice).update(timezone="US/Pacific-New")
    TriggerFactory(
        team=team,
        owner=alice,
        config={"event": "checkout_error"},
        channels=[{"type": "in_app"}, {"type": "email"}],
        subscribers=[alice, bob],
    )
    response = api_client.post(
        "/api/ingest/",
        {"api_key": team.api_token, "batch": [{"event": "checkout_error", "distinct_id": "u"}]},
        format="json",
    )
    assert response.status_code == 202, response.content

    result = drain(expected=1)

    assert result.dead_lettered == 0
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "alice@example.com",
        "bob@example.com",
    ]
    dnd = api_client.put("/api/preferences/dnd/", {"preset": "morning"}, format="json")
    assert dnd.status_code == 200, dnd.content
    assert dnd.json()["label"].startswith("until 08:00")
    assert api_client.get("/api/preferences/dnd/").status_code == 200
    api_client.force_login(alice)
    page = api_client.get("/")  # every page's header shows do-not-disturb
    assert page.status_code == 200
    assert "Do not disturb until 08:00 UTC" in page.content.decode()
