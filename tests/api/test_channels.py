"""/api/channels/: org admins configure Slack, webhook and Telegram; secrets are write-only
and stored encrypted; a webhook's generated secret is shown once; members only read."""

from __future__ import annotations

import pytest

from notifications.models import ChannelConfig
from notifications.secrets import decrypt, encrypt
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db

URL = "/api/channels/"
SLACK_TOKEN = "xoxb-1234-5678-abcdef"
TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def slack(organization, **overrides):
    body = {
        "type": "slack",
        "name": "Acme Slack",
        "organization": organization.pk,
        "config": {"default_target": "#alerts"},
        "secret": SLACK_TOKEN,
    }
    return {**body, **overrides}


@pytest.fixture
def org(team):
    return team.organization


@pytest.fixture
def admin(team, member_of):
    return member_of(team, role="admin")


@pytest.fixture
def client(api_client, admin):
    api_client.force_authenticate(admin)
    return api_client


def saved(organization, **fields) -> ChannelConfig:
    defaults = {"type": "slack", "name": "Saved", "secret_encrypted": encrypt(SLACK_TOKEN)}
    return ChannelConfig.objects.create(organization=organization, **{**defaults, **fields})


def test_an_admin_creates_a_slack_channel_and_never_sees_the_token_again(client, org, admin):
    response = client.post(URL, slack(org), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["has_secret"] is True
    assert SLACK_TOKEN not in response.content.decode()
    assert "secret" not in data and "secret_shown_once" not in data
    assert data["config"] == {"default_target": "#alerts"}
    row = ChannelConfig.objects.get(pk=data["id"])
    assert decrypt(row.secret_encrypted) == SLACK_TOKEN
    assert SLACK_TOKEN not in row.secret_encrypted
    assert row.created_by == admin

    listed = client.get(URL).content.decode()
    assert SLACK_TOKEN not in listed and row.secret_encrypted not in listed


def test_a_token_sent_inside_config_is_moved_out_and_encrypted(client, org):
    body = slack(org, config={"bot_token": SLACK_TOKEN})
    del body["secret"]
    data = client.post(URL, body, format="json").json()
    assert data["config"] == {} and data["has_secret"]
    row = ChannelConfig.objects.get(pk=data["id"])
    assert row.config == {} and decrypt(row.secret_encrypted) == SLACK_TOKEN


def test_a_webhook_gets_a_secret_shown_exactly_once(client, org):
    body = {
        "type": "webhook",
        "name": "Ops hook",
        "organization": org.pk,
        "config": {"url": "https://hooks.example.com/notiflow"},
    }
    created = client.post(URL, body, format="json")
    assert created.status_code == 201, created.json()
    shown = created.json()["secret_shown_once"]
    assert len(shown) >= 32
    row = ChannelConfig.objects.get(pk=created.json()["id"])
    assert decrypt(row.secret_encrypted) == shown
    assert row.config == {"default_target": "https://hooks.example.com/notiflow"}
    assert created.json()["config"]["url"] == "https://hooks.example.com/notiflow"

    again = client.get(f"{URL}{row.pk}/")
    assert shown not in again.content.decode()
    assert "secret_shown_once" not in again.json()
    assert shown not in client.get(URL).content.decode()

    chosen = client.post(
        URL, {**body, "name": "Chosen", "secret": "a-secret-of-my-own-choosing"}, format="json"
    )
    assert "secret_shown_once" not in chosen.json()


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"type": "webhook", "config": {"url": "ftp://example.com"}}, "config.url"),
        ({"type": "webhook", "config": {}}, "config.url"),
        ({"type": "slack", "secret": None}, "secret"),
        ({"type": "slack", "secret": "not-a-token"}, "secret"),
        ({"type": "slack", "config": {"default_target": "alerts"}}, "config.default_target"),
        # as a trigger's Slack target refuses it: one pattern, matched whole
        ({"type": "slack", "config": {"default_target": "#alerts\n"}}, "config.default_target"),
        ({"type": "slack", "config": {"channel": "#x"}}, "config.channel"),
        ({"type": "telegram", "secret": "nope", "config": {}}, "secret"),
        ({"type": "carrier_pigeon"}, "type"),
        ({"config": ["not", "an", "object"]}, "config"),
        # PostgreSQL's jsonb stores no NUL: a 400 naming the setting, not a 500
        ({"type": "webhook", "config": {"url": "https://example.com/\x00"}}, "config.url"),
        (
            {"type": "telegram", "secret": TELEGRAM_TOKEN, "config": {"default_target": "1\x00"}},
            "config.default_target",
        ),
    ],
)
def test_bad_bodies_name_the_field(client, org, body, key):
    data = {**slack(org), **body}
    if data.get("secret") is None:
        data.pop("secret")
    response = client.post(URL, data, format="json")
    assert response.status_code == 400
    assert key in response.json(), response.json()


def test_a_telegram_bot(client, org):
    response = client.post(
        URL,
        {
            "type": "telegram",
            "name": "Ops bot",
            "organization": org.pk,
            "config": {"default_target": "-1001234567890"},
            "secret": TELEGRAM_TOKEN,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert decrypt(ChannelConfig.objects.get().secret_encrypted) == TELEGRAM_TOKEN


def test_names_are_unique_per_organization_and_type(client, org):
    saved(org, name="Acme Slack")
    response = client.post(URL, slack(org), format="json")
    assert response.json() == {
        "name": ["this organization already has a slack channel named 'Acme Slack'"]
    }


def test_update_keeps_the_secret_unless_given_and_reenabling_resets_failures(client, org):
    row = saved(org, enabled=False, consecutive_failures=5, disabled_reason="401 invalid_auth")
    response = client.patch(f"{URL}{row.pk}/", {"name": "Renamed", "enabled": True}, format="json")
    assert response.status_code == 200, response.json()
    row.refresh_from_db()
    assert (row.name, row.enabled, row.consecutive_failures, row.disabled_reason) == (
        "Renamed",
        True,
        0,
        "",
    )
    assert decrypt(row.secret_encrypted) == SLACK_TOKEN

    client.patch(f"{URL}{row.pk}/", {"secret": "xoxb-new-token"}, format="json")
    row.refresh_from_db()
    assert decrypt(row.secret_encrypted) == "xoxb-new-token"

    moved = client.patch(f"{URL}{row.pk}/", {"type": "webhook"}, format="json")
    assert moved.status_code == 400 and "type" in moved.json()


@pytest.mark.parametrize("role", ["admin", "owner"])
def test_admins_and_owners_of_any_team_in_the_org_administer_it(api_client, org, member_of, role):
    other_team = TeamFactory(organization=org)
    api_client.force_authenticate(member_of(other_team, role=role))
    assert api_client.post(URL, slack(org), format="json").status_code == 201


def test_members_read_without_secrets_but_cannot_write(api_client, team, org, member_of):
    row = saved(org)
    api_client.force_authenticate(member_of(team))
    listed = api_client.get(URL)
    assert [c["id"] for c in listed.json()] == [row.pk]
    assert listed.json()[0]["has_secret"] is True
    assert SLACK_TOKEN not in listed.content.decode()

    assert api_client.post(URL, slack(org, name="Mine"), format="json").status_code == 403
    assert api_client.patch(f"{URL}{row.pk}/", {"name": "x"}, format="json").status_code == 403
    assert api_client.delete(f"{URL}{row.pk}/").status_code == 403
    row.refresh_from_db()
    assert row.name == "Saved"
    assert ChannelConfig.objects.count() == 1


def test_an_admin_elsewhere_cannot_configure_an_org_where_they_are_a_member(
    api_client, team, org, member_of
):
    user = member_of(team)  # a member here
    TeamFactory().memberships.create(user=user, role="admin")  # an admin in another org
    api_client.force_authenticate(user)
    response = api_client.post(URL, slack(org), format="json")
    assert response.status_code == 403
    assert not ChannelConfig.objects.exists()


def test_an_admin_deletes(client, org):
    row = saved(org)
    assert client.delete(f"{URL}{row.pk}/").status_code == 204
    assert not ChannelConfig.objects.exists()


def test_anonymous_is_refused(api_client, org):
    saved(org)
    assert api_client.get(URL).status_code in (401, 403)
