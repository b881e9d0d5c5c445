"""/api/preferences/: the category × channel grid, critical switches, digest cadence and
hour, quiet hours, timezone, muted teams and the next digest time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils.dateparse import parse_datetime

from digests.windows import next_due
from notifications.models import Preference
from notifications.unsubscribe import preference_unsubscribe, unsubscribe_token
from tests.factories import TeamFactory
from workspace.models import UserProfile

pytestmark = pytest.mark.django_db

URL = "/api/preferences/"
CHANNELS = {"in_app": True, "email": True, "slack": True, "telegram": True}


@pytest.fixture
def user(team, member_of):
    return member_of(team)


@pytest.fixture
def client(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def put(client, body):
    return client.put(URL, body, format="json")


def test_defaults_show_the_whole_grid_all_on(client):
    data = client.get(URL).json()
    assert data["channels"] == {
        "alert": CHANNELS,
        "activity": CHANNELS,
        "subscription": CHANNELS,
        "announcement": CHANNELS,
        "digest": {"email": True, "slack": True, "telegram": True},
        "personal-direct": CHANNELS,
    }
    assert data["critical"] == {"alert": ["in_app"]}
    assert (data["digest_cadence"], data["digest_hour"], data["timezone"]) == ("daily", 9, "UTC")
    assert (data["quiet_hours_start"], data["quiet_hours_end"], data["muted_teams"]) == (
        None,
        None,
        [],
    )
    assert parse_datetime(data["next_digest_at"]) > datetime.now(UTC)


def test_put_changes_one_switch_and_keeps_the_rest(client, user):
    response = put(client, {"channels": {"activity": {"email": False}}})
    assert response.status_code == 200, response.json()
    assert response.json()["channels"]["activity"] == {**CHANNELS, "email": False}
    preference = Preference.objects.get(user=user)
    assert preference.channels == {"activity": {"email": False}}
    assert not preference.allows("activity", "email")

    put(client, {"channels": {"alert": {"slack": False}}})
    grid = client.get(URL).json()["channels"]
    assert grid["activity"]["email"] is False and grid["alert"]["slack"] is False
    assert grid["alert"]["email"] is True


def test_a_critical_switch_cannot_be_turned_off(client, user):
    response = put(client, {"channels": {"alert": {"in_app": False, "email": False}}})
    assert response.status_code == 400
    assert response.json() == {
        "channels.alert.in_app": [
            "Alerts on your data in the app are critical and cannot be turned off"
        ]
    }
    assert not Preference.objects.filter(user=user).exclude(channels={}).exists()
    assert put(client, {"channels": {"alert": {"in_app": True}}}).status_code == 200


def test_unknown_categories_and_channels_name_their_path(client):
    response = put(
        client, {"channels": {"billing": {"email": False}, "alert": {"carrier_pigeon": True}}}
    )
    assert response.status_code == 400
    errors = response.json()
    assert "unknown category 'billing'" in errors["channels.billing"][0]
    assert "unknown channel 'carrier_pigeon'" in errors["channels.alert.carrier_pigeon"][0]
    assert put(client, {"channels": {"digest": {"in_app": False}}}).status_code == 400


def test_digest_cadence_hour_and_timezone(client, user):
    response = put(
        client, {"digest_cadence": "weekly", "digest_hour": 7, "timezone": "Europe/Berlin"}
    )
    assert response.status_code == 200, response.json()
    data = response.json()
    assert (data["digest_cadence"], data["digest_hour"], data["timezone"]) == (
        "weekly",
        7,
        "Europe/Berlin",
    )
    assert UserProfile.objects.get(user=user).timezone == "Europe/Berlin"
    when = parse_datetime(data["next_digest_at"])
    assert when == next_due("weekly", when - timedelta(seconds=1), "Europe/Berlin", 7)
    local = when.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.weekday(), local.hour) == (0, 7)  # the next Monday, 07:00 local

    off = put(client, {"digest_cadence": "off"}).json()
    assert off["next_digest_at"] is None


def test_bad_hour_cadence_and_timezone_are_400(client):
    errors = put(
        client, {"digest_hour": 24, "digest_cadence": "monthly", "timezone": "Mars/Olympus"}
    ).json()
    assert set(errors) == {"digest_hour", "digest_cadence", "timezone"}
    assert "IANA" in errors["timezone"][0]


def test_quiet_hours_need_both_ends(client, user):
    assert put(client, {"quiet_hours_start": "22:00"}).json() == {
        "quiet_hours_end": ["set both quiet_hours_start and quiet_hours_end, or neither"]
    }
    ok = put(client, {"quiet_hours_start": "22:00", "quiet_hours_end": "07:00"}).json()
    assert (ok["quiet_hours_start"], ok["quiet_hours_end"]) == ("22:00:00", "07:00:00")
    assert put(client, {"quiet_hours_end": "22:00"}).json() == {
        "quiet_hours_end": ["must differ from quiet_hours_start"]
    }
    cleared = put(client, {"quiet_hours_start": None, "quiet_hours_end": None}).json()
    assert (cleared["quiet_hours_start"], cleared["quiet_hours_end"]) == (None, None)


def test_muted_teams_only_take_the_callers_teams(client, user, team):
    second = TeamFactory(organization=team.organization)
    second.memberships.create(user=user)
    response = put(client, {"muted_teams": [second.pk, second.pk]})
    assert response.json()["muted_teams"] == [second.pk]

    foreign = TeamFactory()
    response = put(client, {"muted_teams": [team.pk, foreign.pk]})
    assert response.json() == {"muted_teams[1]": [f"team {foreign.pk} is not one of your teams"]}
    assert list(Preference.objects.get(user=user).muted_teams.all()) == [second]

    assert put(client, {"muted_teams": []}).json()["muted_teams"] == []


def test_a_one_click_unsubscribe_shows_in_the_grid(client, user):
    preference_unsubscribe(
        token=unsubscribe_token(user_id=user.pk, category="digest", channel="email")
    )
    assert client.get(URL).json()["channels"]["digest"]["email"] is False
    assert put(client, {"channels": {"digest": {"email": True}}}).json()["channels"]["digest"][
        "email"
    ]


def test_preferences_need_a_login(api_client):
    assert api_client.get(URL).status_code in (401, 403)
    assert api_client.put(URL, {}, format="json").status_code in (401, 403)
