"""/api/triggers/: CRUD, validation errors keyed by body path, the test/snooze/enable
actions, who may change a trigger, and tenant isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from notifications.models import Notification, Trigger
from tests.factories import TeamFactory, TriggerFactory

pytestmark = pytest.mark.django_db

URL = "/api/triggers/"
AMOUNT_OVER_100 = {
    "event": "checkout_error",
    "filters": [{"property": "amount", "operator": "gt", "value": 100}],
}


def detail(trigger, action=""):
    return f"{URL}{trigger.pk}/{action + '/' if action else ''}"


def body(team, **overrides):
    data = {"team": team.pk, "name": "Big checkout errors", "kind": "event"}
    return {**data, "config": AMOUNT_OVER_100, **overrides}


@pytest.fixture
def user(team, member_of):
    return member_of(team)


@pytest.fixture
def client(api_client, user):
    api_client.force_authenticate(user)
    return api_client


@pytest.fixture
def outsider_client(api_client, member_of):
    """A member of a team in another organization."""
    api_client.force_authenticate(member_of(TeamFactory()))
    return api_client


# --- CRUD -------------------------------------------------------------------------------


def test_create_list_update_delete(client, team, user, member_of):
    teammate = member_of(team)
    created = client.post(
        URL,
        body(
            team,
            channels=[{"type": "slack", "target": "#alerts"}, {"type": "email"}],
            delivery={"mode": "rollup", "window_seconds": 60, "max_items": 5},
            subscribers=[teammate.pk, user.pk],
        ),
        format="json",
    )
    assert created.status_code == 201, created.data
    trigger = created.json()
    assert trigger["owner"] == user.pk
    assert trigger["subscribers"] == sorted([teammate.pk, user.pk])
    assert trigger["delivery"] == {"mode": "rollup", "window_seconds": 60, "max_items": 5}
    assert Trigger.objects.get().event_name == "checkout_error"

    assert [t["id"] for t in client.get(URL).json()] == [trigger["id"]]

    url = f"{URL}{trigger['id']}/"
    updated = client.patch(url, {"name": "Renamed", "subscribers": []}, format="json")
    assert updated.status_code == 200, updated.data
    assert (updated.json()["name"], updated.json()["subscribers"]) == ("Renamed", [])

    assert client.delete(url).status_code == 204
    assert client.get(URL).json() == []


def test_create_defaults_to_in_app_instant(client, team):
    trigger = client.post(URL, body(team), format="json").json()
    assert trigger["channels"] == [{"type": "in_app"}]
    assert trigger["delivery"] == {"mode": "instant"}
    assert (trigger["enabled"], trigger["subscribers"]) == (True, [])


# --- validation: 400, keyed by the path of what is wrong ---------------------------------


def with_filter(operator, value):
    config = {"event": "e", "filters": [{"property": "p", "operator": operator, "value": value}]}
    return {"config": config}


@pytest.mark.parametrize(
    ("overrides", "path", "says"),
    [
        (with_filter("like", "x"), "config.filters[0].operator", "unknown operator 'like'"),
        (with_filter("regex", "(unclosed"), "config.filters[0].value", "does not compile"),
        (
            with_filter("regex", r"^checkout(?!_test)"),
            "config.filters[0].value",
            "uses a negative lookahead (?!…), which RE2",
        ),
        (with_filter("regex", r"(\w+)-\1"), "config.filters[0].value", r"a backreference \1"),
        (with_filter("gt", "lots"), "config.filters[0].value", "must be a number"),
        (
            {"kind": "insight_threshold", "config": {"insight_id": 1, "upper": "lots"}},
            "config.upper",
            "must be a number",
        ),
        ({"kind": "sms_blast"}, "kind", "unknown kind 'sms_blast'"),
        (
            {"kind": "activity", "config": {"filters": [{"property": "p", "operator": "like"}]}},
            "config.filters",
            "only event and event_count",
        ),
        (
            {"channels": [{"type": "in_app"}, {"type": "carrier_pigeon"}]},
            "channels[1].type",
            "unknown channel type 'carrier_pigeon'",
        ),
        ({"channels": [{"type": "slack"}]}, "channels[0].target", "#alerts"),
        ({"delivery": {"mode": "rollup"}}, "delivery.window_seconds", "required for rollup"),
        ({"delivery": {"mode": "rollup", "window_seconds": 5}}, "delivery.window_seconds", "10"),
        (
            {"delivery": {"mode": "rollup", "window_seconds": 60, "max_window_seconds": 30}},
            "delivery.max_window_seconds",
            "at least window_seconds",
        ),
    ],
)
def test_invalid_body_is_400_naming_the_field(client, team, overrides, path, says):
    response = client.post(URL, body(team, **overrides), format="json")
    assert response.status_code == 400
    errors = response.json()
    assert says in " ".join(errors[path]), errors
    assert not Trigger.objects.exists()


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"event": "checkout\x00error"}, "config.event"),
        (
            {"event": "e", "filters": [{"property": "p\x00", "operator": "exact", "value": 1}]},
            "config.filters[0].property",
        ),
        (
            {"event": "e", "filters": [{"property": "p", "operator": "in", "value": ["\x00"]}]},
            "config.filters[0].value[0]",
        ),
    ],
)
def test_a_nul_character_in_config_is_400_not_500(client, team, user, config, path):
    """PostgreSQL stores no NUL in jsonb: the config's check names it, as ingestion does."""
    created = client.post(URL, body(team, config=config), format="json")
    assert created.status_code == 400, created.content
    assert "NUL" in " ".join(created.json()[path])
    trigger = TriggerFactory(team=team, owner=user)
    patched = client.patch(detail(trigger), {"config": config}, format="json")
    assert patched.status_code == 400, patched.content
    assert "NUL" in " ".join(patched.json()[path])


def test_subscriber_from_another_team_is_400_naming_the_user(client, team, member_of):
    stranger = member_of(TeamFactory(organization=team.organization))
    response = client.post(URL, body(team, subscribers=[stranger.pk]), format="json")
    assert response.status_code == 400
    assert response.json() == {
        "subscribers[0]": [f"user {stranger.pk} is not a member of this team"]
    }


def test_a_user_id_that_does_not_exist_is_refused_like_another_tenants(client, team, member_of):
    """Tenant isolation: a member of another organization and an id nobody has get the same
    answer, so the answer tells nothing about who exists elsewhere."""
    foreign = member_of(TeamFactory())
    missing = foreign.pk + 10_000
    response = client.post(URL, body(team, subscribers=[foreign.pk, missing]), format="json")
    assert response.status_code == 400
    errors = response.json()
    assert errors == {
        "subscribers[0]": [f"user {foreign.pk} is not a member of this team"],
        "subscribers[1]": [f"user {missing} is not a member of this team"],
    }
    assert not Trigger.objects.exists()


EVENT_COUNT = {"kind": "event_count", "config": {"event": "e", "count": 5, "window_minutes": 10}}


def with_config(kind="event_count", **config):
    return {"kind": kind, "config": {**EVENT_COUNT["config"], **config}}


@pytest.mark.parametrize(
    ("overrides", "path", "says"),
    [
        (with_config(window_minutes=10_081), "config.window_minutes", "at most 10080"),
        (with_config(window_minutes=10**12), "config.window_minutes", "at most 10080"),
        (with_config(count=1_000_001), "config.count", "at most 1000000"),
        (
            {"kind": "cohort_membership", "config": {"cohort_id": 1, "interval_minutes": 10**9}},
            "config.interval_minutes",
            "at most 10080",
        ),
        (
            {"kind": "insight_threshold", "config": {"insight_id": 1, "upper": 10**16}},
            "config.upper",
            "at most 1000000000000000",
        ),
        (
            {"kind": "insight_threshold", "config": {"insight_id": 2**63}},
            "config.insight_id",
            "at most",
        ),
        (with_filter("gt", -(10**400)), "config.filters[0].value", "at most 1000000000000000"),
        (with_filter("in", list(range(101))), "config.filters[0].value", "at most 100 values"),
        (with_filter("icontains", "x" * 1001), "config.filters[0].value", "1000 characters"),
        (with_filter("exact", "x" * 1001), "config.filters[0].value", "1000 characters"),
        (with_filter("regex", "x" * 301), "config.filters[0].value", "300 characters"),
        (
            {"config": {"event": "e", "filters": [{"property": "p" * 201, "operator": "is_set"}]}},
            "config.filters[0].property",
            "200 characters",
        ),
        (
            {"config": {"event": "e", "filters": [{"property": "p", "operator": "is_set"}] * 21}},
            "config.filters",
            "at most 20",
        ),
        (
            {"kind": "activity", "config": {"resource_types": ["insight"] * 21}},
            "config.resource_types",
            "at most 20",
        ),
        ({"config": {"event": "activity.insight.deleted"}}, "config.event", "system"),
        ({"config": {"event": "check.cohort_membership"}}, "config.event", "system"),
        (
            {"delivery": {"mode": "rollup", "window_seconds": 86_401}},
            "delivery.window_seconds",
            "86400",
        ),
        (
            {"delivery": {"mode": "rollup", "window_seconds": 60, "max_items": 1_000_001}},
            "delivery.max_items",
            "1000000",
        ),
        (
            {"channels": [{"type": "email", "target": f"a{i}@example.com"} for i in range(11)]},
            "channels",
            "10",
        ),
        ({"subscribers": list(range(1, 1002))}, "subscribers", "1000"),
    ],
)
def test_every_number_and_list_a_user_sets_has_a_bound_named_in_the_400(
    client, team, overrides, path, says
):
    response = client.post(URL, body(team, **overrides), format="json")
    assert response.status_code == 400
    errors = response.json()
    assert says in " ".join(errors.get(path, [])), errors
    assert not Trigger.objects.exists()


def test_the_bounds_themselves_are_accepted(client, team):
    config = {"event": "e", "count": 1_000_000, "window_minutes": 10_080}
    response = client.post(URL, body(team, kind="event_count", config=config), format="json")
    assert response.status_code == 201, response.json()


def test_partial_update_validates_config_against_new_kind(client, team, user):
    trigger = TriggerFactory(team=team, owner=user)
    response = client.patch(detail(trigger), {"kind": "event_count"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"config.count", "config.window_minutes"}


# --- actions ----------------------------------------------------------------------------


def test_test_action_reports_which_samples_match(client, team, user):
    trigger = TriggerFactory(team=team, owner=user, config=AMOUNT_OVER_100)
    samples = [
        {"event": "checkout_error", "properties": {"amount": 150}},
        {"event": "checkout_error", "properties": {"amount": 50}},
        {"event": "pageview", "properties": {"amount": 150}},
    ]
    response = client.post(detail(trigger, "test"), {"events": samples}, format="json")
    assert response.status_code == 200, response.data
    assert response.json() == [
        {"index": 0, "matches": True},
        {"index": 1, "matches": False},
        {"index": 2, "matches": False},
    ]
    single = {"event": "checkout_error", "properties": {"amount": "101"}}
    assert client.post(detail(trigger, "test"), single, format="json").json() == [
        {"index": 0, "matches": True}
    ]
    assert not Notification.objects.exists()


def test_test_action_refuses_scheduled_kinds(client, team, user):
    trigger = TriggerFactory(
        team=team, owner=user, kind="insight_threshold", config={"insight_id": 1, "upper": 5}
    )
    response = client.post(detail(trigger, "test"), {"event": "x"}, format="json")
    assert response.status_code == 400
    assert "checked on a schedule" in response.json()["kind"][0]


def test_snooze_sets_and_clears(client, team, user):
    trigger = TriggerFactory(team=team, owner=user)
    until = timezone.now() + timedelta(hours=2)
    response = client.post(detail(trigger, "snooze"), {"until": until.isoformat()}, format="json")
    assert response.status_code == 200, response.data
    assert parse_datetime(response.json()["snoozed_until"]) == until
    trigger.refresh_from_db()
    assert trigger.snoozed_until == until

    assert client.post(detail(trigger, "snooze"), {"until": None}, format="json").status_code == 200
    trigger.refresh_from_db()
    assert trigger.snoozed_until is None

    bad = client.post(detail(trigger, "snooze"), {"until": "soon"}, format="json")
    assert bad.status_code == 400 and "until" in bad.json()


def test_disable_and_enable(client, team, user):
    trigger = TriggerFactory(team=team, owner=user)
    assert client.post(detail(trigger, "disable")).json()["enabled"] is False
    assert client.post(detail(trigger, "enable")).json()["enabled"] is True


# --- who may do what --------------------------------------------------------------------


def test_other_organization_sees_nothing(outsider_client, team):
    trigger = TriggerFactory(team=team)
    assert outsider_client.get(URL).json() == []
    assert outsider_client.get(detail(trigger)).status_code == 404
    assert outsider_client.patch(detail(trigger), {"name": "x"}, format="json").status_code == 404
    assert outsider_client.delete(detail(trigger)).status_code == 404
    assert outsider_client.post(detail(trigger, "test"), {"event": "e"}).status_code == 404
    assert outsider_client.post(detail(trigger, "disable")).status_code == 404
    trigger.refresh_from_db()
    assert trigger.enabled and trigger.name != "x"


def test_cannot_create_in_a_team_one_does_not_belong_to(outsider_client, team):
    response = outsider_client.post(URL, body(team), format="json")
    assert response.status_code == 400
    assert "team" in response.json()
    assert not Trigger.objects.exists()


def test_plain_member_cannot_change_a_teammates_trigger_but_an_admin_can(client, team, member_of):
    trigger = TriggerFactory(team=team, owner=member_of(team))
    assert client.get(detail(trigger)).status_code == 200
    assert client.post(detail(trigger, "test"), {"event": "checkout_error"}).status_code == 200
    assert client.patch(detail(trigger), {"name": "mine"}, format="json").status_code == 403
    assert client.post(detail(trigger, "disable")).status_code == 403
    assert client.delete(detail(trigger)).status_code == 403

    client.force_authenticate(member_of(team, role="admin"))
    assert client.patch(detail(trigger), {"name": "ok"}, format="json").status_code == 200
    assert client.delete(detail(trigger)).status_code == 204


def test_schema_documents_the_actions(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    test_op = schema["paths"]["/api/triggers/{id}/test/"]["post"]
    assert "TriggerTest" in str(test_op["requestBody"])
    assert "TriggerTestResult" in str(test_op["responses"]["200"])
    snooze_op = schema["paths"]["/api/triggers/{id}/snooze/"]["post"]
    assert "TriggerSnooze" in str(snooze_op["requestBody"])
