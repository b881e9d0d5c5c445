"""Tenant isolation across the whole API: a member — even an admin — of organization A
never reads or changes organization B's triggers, notifications, preferences, channels,
deliveries, announcements or resources. B's ids answer 404 (never 403, which would confirm
they exist), B's rows never appear in A's lists, references to B in a body are 400, and
B's data is unchanged afterwards. Also: the ingestion endpoint's rate limit."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.forms.models import model_to_dict
from django.utils import timezone

from api.permissions import IngestRateThrottle
from notifications.models import Announcement, ChannelConfig, Delivery, Notification, Preference
from notifications.secrets import encrypt
from tests.factories import DashboardFactory, InsightFactory, TeamFactory, TriggerFactory
from workspace import models as w

pytestmark = pytest.mark.django_db


@dataclass
class OrgB:
    team: w.Team
    admin: object
    trigger: object
    notification: Notification
    preference: Preference
    channel: ChannelConfig
    delivery: Delivery
    announcement: Announcement
    resources: dict[str, object]


def snapshot(obj) -> dict:
    obj.refresh_from_db()
    return model_to_dict(obj)


@pytest.fixture
def org_b(member_of) -> OrgB:
    team = TeamFactory()
    admin = member_of(team, role="owner")
    trigger = TriggerFactory(team=team, owner=admin, subscribers=[admin], name="B's trigger")
    now = timezone.now()
    notification = Notification.objects.create(
        recipient=admin,
        team=team,
        category="alert",
        title="B's alert",
        trigger=trigger,
        dedup_key="org-b:1",
        first_seen_at=now,
        last_seen_at=now,
    )
    preference = Preference.objects.create(user=admin, channels={"activity": {"email": False}})
    channel = ChannelConfig.objects.create(
        organization=team.organization,
        type="slack",
        name="B's Slack",
        config={"default_target": "#b"},
        secret_encrypted=encrypt("xoxb-org-b-secret"),
    )
    delivery = Delivery.objects.create(
        idempotency_key="org-b:delivery",
        channel="slack",
        destination="#b",
        team=team,
        trigger=trigger,
        status="failed",
        last_error="channel_not_found",
    )
    announcement = Announcement.objects.create(
        organization=team.organization, author=admin, title="B's news"
    )
    flag = w.FeatureFlag.objects.create(team=team, name="B's flag", key="b-flag")
    resources = {
        "dashboards": DashboardFactory(team=team, created_by=admin),
        "insights": InsightFactory(team=team, created_by=admin),
        "feature-flags": flag,
        "experiments": w.Experiment.objects.create(team=team, name="B's experiment"),
        "surveys": w.Survey.objects.create(team=team, name="B's survey"),
        "cohorts": w.Cohort.objects.create(team=team, name="B's cohort"),
    }
    return OrgB(
        team, admin, trigger, notification, preference, channel, delivery, announcement, resources
    )


@pytest.fixture
def team_a(team):
    return team


@pytest.fixture
def client(api_client, team_a, member_of):
    """An admin of organization A: the most a caller from A can be."""
    api_client.force_authenticate(member_of(team_a, role="admin"))
    return api_client


def ids_in(response) -> set[int]:
    data = response.json()
    rows = data["results"] if isinstance(data, dict) else data
    return {row["id"] for row in rows}


# --- triggers ---------------------------------------------------------------------------


def test_triggers(client, org_b, team_a):
    url = f"/api/triggers/{org_b.trigger.pk}/"
    before = snapshot(org_b.trigger)
    assert org_b.trigger.pk not in ids_in(client.get("/api/triggers/"))
    assert client.get(url).status_code == 404
    assert client.patch(url, {"name": "mine now"}, format="json").status_code == 404
    assert client.put(url, {"name": "x"}, format="json").status_code == 404
    assert client.delete(url).status_code == 404
    for action in ("test", "snooze", "enable", "disable"):
        body = {"event": "x"} if action == "test" else {"until": None}
        assert client.post(f"{url}{action}/", body, format="json").status_code == 404, action
    created = client.post(
        "/api/triggers/",
        {
            "team": org_b.team.pk,
            "name": "spy",
            "kind": "event",
            "config": {"event": "x"},
            "subscribers": [org_b.admin.pk],
        },
        format="json",
    )
    assert created.status_code == 400 and "team" in created.json()
    mine = client.post(
        "/api/triggers/",
        {
            "team": team_a.pk,
            "name": "t",
            "kind": "event",
            "config": {"event": "x"},
            "subscribers": [org_b.admin.pk],
        },
        format="json",
    )
    assert mine.status_code == 400 and "subscribers[0]" in mine.json()
    assert snapshot(org_b.trigger) == before
    assert set(org_b.trigger.subscribers.all()) == {org_b.admin}


# --- notifications ----------------------------------------------------------------------


def test_notifications(client, org_b):
    url = f"/api/notifications/{org_b.notification.pk}/"
    before = snapshot(org_b.notification)
    assert org_b.notification.pk not in ids_in(client.get("/api/notifications/"))
    assert not ids_in(client.get("/api/notifications/", {"team": org_b.team.pk}))
    for action in ("read", "seen", "archive", "mute_trigger"):
        assert client.post(f"{url}{action}/").status_code == 404, action
    assert client.get(f"{url}why/").status_code == 404
    client.post("/api/notifications/read_all/")
    client.post("/api/notifications/seen_all/")
    assert snapshot(org_b.notification) == before
    assert set(org_b.trigger.subscribers.all()) == {org_b.admin}


# --- preferences ------------------------------------------------------------------------


def test_preferences_are_the_callers_own(client, org_b):
    before = snapshot(org_b.preference)
    mine = client.get("/api/preferences/").json()
    assert mine["channels"]["activity"]["email"] is True  # not B's switched-off email
    response = client.put(
        "/api/preferences/",
        {"muted_teams": [org_b.team.pk], "channels": {"activity": {"email": True}}},
        format="json",
    )
    assert response.status_code == 400 and "muted_teams[0]" in response.json()
    assert (
        client.put(
            "/api/preferences/", {"channels": {"alert": {"email": False}}}, format="json"
        ).status_code
        == 200
    )
    assert snapshot(org_b.preference) == before
    assert not org_b.preference.muted_teams.exists()


# --- channels ---------------------------------------------------------------------------


def test_channels(client, org_b):
    url = f"/api/channels/{org_b.channel.pk}/"
    before = snapshot(org_b.channel)
    listed = client.get("/api/channels/")
    assert org_b.channel.pk not in ids_in(listed)
    assert "xoxb-org-b-secret" not in listed.content.decode()
    assert client.get(url).status_code == 404
    assert client.patch(url, {"secret": "xoxb-stolen"}, format="json").status_code == 404
    assert client.delete(url).status_code == 404
    created = client.post(
        "/api/channels/",
        {
            "type": "slack",
            "name": "Spy",
            "organization": org_b.team.organization.pk,
            "secret": "xoxb-spy-token",
        },
        format="json",
    )
    assert created.status_code == 400 and "organization" in created.json()
    assert snapshot(org_b.channel) == before
    assert ChannelConfig.objects.filter(organization=org_b.team.organization).count() == 1


# --- deliveries -------------------------------------------------------------------------


def test_deliveries(client, org_b):
    assert org_b.delivery.pk not in ids_in(client.get("/api/deliveries/"))
    for params in ({"status": "failed"}, {"channel": "slack"}):
        assert org_b.delivery.pk not in ids_in(client.get("/api/deliveries/", params))


def test_a_trigger_owner_who_left_the_team_no_longer_sees_its_deliveries(api_client, org_b):
    org_b.admin.memberships.all().delete()
    api_client.force_authenticate(org_b.admin)
    assert org_b.delivery.pk not in ids_in(api_client.get("/api/deliveries/"))


# --- announcements ----------------------------------------------------------------------


def test_announcements(client, org_b):
    url = f"/api/announcements/{org_b.announcement.pk}/"
    assert org_b.announcement.pk not in ids_in(client.get("/api/announcements/"))
    assert client.get(url).status_code == 404
    assert client.patch(url, {"title": "x"}, format="json").status_code in (404, 405)
    assert client.delete(url).status_code in (404, 405)
    posted = client.post(
        "/api/announcements/",
        {"organization": org_b.team.organization.pk, "title": "Phish"},
        format="json",
    )
    assert posted.status_code == 400 and "organization" in posted.json()
    assert not Notification.objects.filter(recipient=org_b.admin, category="announcement").exists()
    assert Announcement.objects.get().title == "B's news"


# --- resources --------------------------------------------------------------------------

RESOURCES = ["dashboards", "insights", "feature-flags", "experiments", "surveys", "cohorts"]


@pytest.mark.parametrize("prefix", RESOURCES)
def test_resources(client, org_b, prefix):
    obj = org_b.resources[prefix]
    url = f"/api/{prefix}/{obj.pk}/"
    before = snapshot(obj)
    assert obj.pk not in ids_in(client.get(f"/api/{prefix}/"))
    assert client.get(url).status_code == 404
    assert client.patch(url, {"name": "defaced"}, format="json").status_code == 404
    assert client.delete(url).status_code == 404
    body = {"team": org_b.team.pk, "name": "planted", "key": "planted"}
    created = client.post(f"/api/{prefix}/", body, format="json")
    assert created.status_code == 400 and "team" in created.json()
    assert snapshot(obj) == before


def test_teams_and_me_show_only_the_callers_org(client, org_b, team_a):
    assert {t["id"] for t in client.get("/api/teams/").json()} == {team_a.pk}
    assert {m["team"] for m in client.get("/api/me/").json()["memberships"]} == {team_a.pk}


# --- anonymous --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/triggers/",
        "/api/notifications/",
        "/api/notifications/unread_count/",
        "/api/preferences/",
        "/api/channels/",
        "/api/deliveries/",
        "/api/announcements/",
        "/api/insights/",
        "/api/me/",
        "/api/teams/",
    ],
)
def test_anonymous_sees_nothing(api_client, org_b, path):
    assert api_client.get(path).status_code in (401, 403)


# --- rate limits ------------------------------------------------------------------------


TEST_IPS = ("203.0.113.7", "203.0.113.8")


@pytest.fixture
def fresh_throttles():
    """Forget only this test's counters (``cache.clear()`` would flush a shared Redis)."""
    keys = [IngestRateThrottle.cache_format % {"scope": "ingest", "ident": ip} for ip in TEST_IPS]
    cache.delete_many(keys)
    yield
    cache.delete_many(keys)


def test_ingestion_is_rate_limited_per_ip(api_client, settings, fresh_throttles):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"ingest": "2/min"},
    }
    body = {"api_key": "phc_nobody", "batch": [{"event": "x", "distinct_id": "d"}]}
    answers = [
        api_client.post("/api/ingest/", body, format="json", REMOTE_ADDR=TEST_IPS[0]).status_code
        for _ in range(3)
    ]
    assert 429 not in answers[:2] and answers[2] == 429
    other_ip = api_client.post("/api/ingest/", body, format="json", REMOTE_ADDR=TEST_IPS[1])
    assert other_ip.status_code != 429


def test_ingestion_has_a_generous_default_rate(api_client, settings, fresh_throttles):
    rest = {k: v for k, v in settings.REST_FRAMEWORK.items() if k != "DEFAULT_THROTTLE_RATES"}
    settings.REST_FRAMEWORK = rest
    assert IngestRateThrottle().get_rate() == "600/min"
