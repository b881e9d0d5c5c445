"""``/api/digest/…``: executions and schedules scoped to the caller, and the preview."""

from datetime import UTC, datetime

import pytest
from django.utils import timezone

from digests.models import Digest
from digests.runs import digest_run
from digests.windows import Period, next_due
from tests.digests.factories import NotificationFactory
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db, pytest.mark.sqlite]

DAY = datetime(2026, 3, 29, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 30, 9, 30, tzinfo=UTC)


@pytest.fixture
def two_runs(subscriber, smtp_server):
    alice, team = subscriber(username="alice")
    bob, _ = subscriber(username="bob", team=team)
    for user in (alice, bob):
        NotificationFactory(recipient=user, team=team, at=DAY)
    digest_run(period=Period.DAILY, now=NOW)
    return alice, bob


def test_a_member_sees_only_their_own_executions(api_client, two_runs):
    alice, bob = two_runs
    api_client.force_authenticate(alice)
    listed = api_client.get("/api/digest/executions").json()
    assert [(r["profile_id"], r["status"], r["message_count"]) for r in listed] == [
        (alice.pk, "SUCCESS", 1)
    ]
    assert api_client.get(f"/api/digest/executions/{alice.pk}").json() == listed
    assert api_client.get(f"/api/digest/executions/{bob.pk}").status_code == 404


def test_staff_see_everyones_executions(api_client, two_runs):
    alice, bob = two_runs
    api_client.force_authenticate(UserFactory(is_staff=True))
    everyone = api_client.get("/api/digest/executions").json()
    assert {r["profile_id"] for r in everyone} == {alice.pk, bob.pk}
    bobs = api_client.get(f"/api/digest/executions/{bob.pk}?schedule_type=daily").json()
    assert [r["profile_id"] for r in bobs] == [bob.pk]
    assert api_client.get("/api/digest/executions?schedule_type=hourly").json() == []


def test_bad_query_parameters_are_400(api_client, two_runs):
    api_client.force_authenticate(two_runs[0])
    assert api_client.get("/api/digest/executions?limit=0").status_code == 400
    assert api_client.get("/api/digest/executions?schedule_type=monthly").status_code == 400


def test_anonymous_callers_are_refused(api_client):
    assert api_client.get("/api/digest/executions").status_code in (401, 403)
    assert api_client.get("/api/digest/schedules").status_code in (401, 403)


def test_schedules_show_the_callers_cadence_last_run_and_next_run(api_client, subscriber):
    user, _ = subscriber(tz="Europe/Berlin", hour=8)
    digest_run(period=Period.DAILY, now=NOW)  # nothing to send: the empty window is recorded
    api_client.force_authenticate(user)

    body = api_client.get("/api/digest/schedules").json()

    by_type = {s["schedule_type"]: s for s in body}
    assert set(by_type) == {"hourly", "daily", "weekly"}
    daily = by_type["daily"]
    assert daily["enabled"] and daily["channels"] == ["email"]
    assert (daily["timezone"], daily["digest_hour"], daily["profile_id"]) == (
        "Europe/Berlin",
        8,
        user.pk,
    )
    assert daily["last_run"] == "2026-03-30T09:30:00Z"
    expected = next_due(Period.DAILY, timezone.now(), "Europe/Berlin", 8)
    assert datetime.fromisoformat(daily["next_run"]) == expected
    assert daily["next_window"]["label"]
    assert not by_type["hourly"]["enabled"] and by_type["hourly"]["next_run"] is None


def test_preview_renders_the_next_digest_and_sends_nothing(api_client, subscriber, smtp_server):
    user, team = subscriber(hour=0)  # due at midnight: the next digest is today's
    NotificationFactory(
        recipient=user, team=team, title="Ann edited dashboard “Revenue”", at=timezone.now()
    )
    api_client.force_authenticate(user)

    (preview,) = api_client.get("/api/digest/preview").json()

    assert preview["channel"] == "email" and preview["schedule_type"] == "daily"
    assert preview["item_count"] == 1 and preview["unread_count"] == 1
    assert preview["subject"] == "Your daily digest: 1 update in 1 team"
    assert "• Ann edited dashboard “Revenue” (unread)" in preview["text"]
    assert "Ann edited dashboard" in preview["html"]
    assert not Digest.objects.exists() and smtp_server.messages == []
    assert api_client.get("/api/digest/preview?channel=slack").json() == []
    assert api_client.get("/api/digest/preview?channel=pigeon").status_code == 400


def test_preview_is_empty_when_digests_are_off(api_client, subscriber):
    user, _ = subscriber(cadence="off")
    api_client.force_authenticate(user)
    assert api_client.get("/api/digest/preview").json() == []
    schedules = api_client.get("/api/digest/schedules").json()
    assert not any(s["enabled"] for s in schedules)


def test_the_digest_endpoints_are_in_the_openapi_schema(api_client, subscriber):
    api_client.force_authenticate(subscriber()[0])
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for route in (
        "/api/digest/executions",
        "/api/digest/executions/{profile_id}",
        "/api/digest/schedules",
        "/api/digest/preview",
    ):
        assert "get" in schema["paths"][route]
