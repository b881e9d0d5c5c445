"""/api/me/ and /api/teams/ give each organization's id and the caller's role in it, so a
client can find what ``POST /api/channels/`` and ``POST /api/announcements/`` take as
``organization`` and whether it may."""

from __future__ import annotations

import pytest

from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """Ada is a member of Acme's Web team and an admin of its Data team, an owner in Beta,
    and nothing in Gamma (whose Ops team Bob owns)."""
    ada = UserFactory(username="ada")
    acme = OrganizationFactory(name="Acme")
    beta = OrganizationFactory(name="Beta")
    gamma = OrganizationFactory(name="Gamma")
    web = TeamFactory(organization=acme, name="Web")
    data = TeamFactory(organization=acme, name="Data")
    beta_app = TeamFactory(organization=beta, name="App")
    MembershipFactory(user=ada, team=web, role="member")
    MembershipFactory(user=ada, team=data, role="admin")
    MembershipFactory(user=ada, team=beta_app, role="owner")
    MembershipFactory(user=UserFactory(username="bob"), team=TeamFactory(organization=gamma))
    return {"ada": ada, "acme": acme, "beta": beta, "gamma": gamma, "web": web, "data": data}


@pytest.fixture
def ada(api_client, world):
    api_client.force_authenticate(world["ada"])
    return api_client


def test_me_lists_each_organization_once_with_its_id_and_the_highest_role(ada, world):
    body = ada.get("/api/me/").json()
    assert body["organizations"] == [
        {"id": world["acme"].pk, "name": "Acme", "role": "admin"},
        {"id": world["beta"].pk, "name": "Beta", "role": "owner"},
    ]
    by_team = {m["team_name"]: m for m in body["memberships"]}
    assert by_team["Web"]["organization_id"] == world["acme"].pk
    assert by_team["Web"]["role"] == "member"
    assert by_team["App"]["organization_id"] == world["beta"].pk


def test_teams_give_the_organization_id_and_role_beside_the_team_role(ada, world):
    teams = {t["name"]: t for t in ada.get("/api/teams/").json()}
    assert set(teams) == {"Web", "Data", "App"}  # nothing of Gamma's
    web = teams["Web"]
    assert (web["organization"], web["organization_id"]) == ("Acme", world["acme"].pk)
    assert (web["role"], web["organization_role"]) == ("member", "admin")
    assert teams["App"]["organization_role"] == "owner"


def test_the_id_from_me_is_what_creating_a_channel_takes(ada, world):
    acme = ada.get("/api/me/").json()["organizations"][0]
    body = {
        "type": "webhook",
        "name": "Hooks",
        "organization": acme["id"],
        "config": {"url": "https://hooks.example.com/notiflow"},
    }
    created = ada.post("/api/channels/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["organization"] == world["acme"].pk


def test_the_role_shown_is_what_the_api_lets_one_do(api_client, world):
    """A plain member of every Acme team is shown ``member`` and may not create Acme's
    channels or announcements; an admin of any one of its teams is shown ``admin`` and may."""
    carol = MembershipFactory(user=UserFactory(username="carol"), team=world["web"]).user
    MembershipFactory(user=carol, team=world["data"], role="member")
    api_client.force_authenticate(carol)
    assert [o["role"] for o in api_client.get("/api/me/").json()["organizations"]] == ["member"]
    channel = {
        "type": "webhook",
        "name": "Hooks",
        "organization": world["acme"].pk,
        "config": {"url": "https://hooks.example.com/notiflow"},
    }
    announcement = {"organization": world["acme"].pk, "title": "Maintenance tonight"}
    assert api_client.post("/api/channels/", channel, format="json").status_code == 403
    assert api_client.post("/api/announcements/", announcement, format="json").status_code == 403

    api_client.force_authenticate(world["ada"])
    assert api_client.post("/api/channels/", channel, format="json").status_code == 201
    assert api_client.post("/api/announcements/", announcement, format="json").status_code == 201


def test_the_schema_names_the_organization_fields(ada):
    schemas = ada.get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"][
        "schemas"
    ]
    assert set(schemas["OrganizationRole"]["properties"]) == {"id", "name", "role"}
    assert {"organization_id", "organization_role"} <= set(schemas["Team"]["properties"])
    assert "organization_id" in schemas["Membership"]["properties"]
    assert schemas["RoleEnum"]["enum"] == ["member", "admin", "owner"]
