"""Webhook URLs are checked when they are saved, not only when a delivery is sent.

A webhook channel's ``config.url`` and a trigger's webhook ``target`` whose host resolves to
a loopback, private, link-local or reserved address are refused with a 400 naming the field
and the address, unless ``NOTIFLOW_WEBHOOK_ALLOW_PRIVATE`` is on — the same check
(``notifications.channels.http``) the channel runs before each send. Nothing here
connects anywhere: the addresses are literals or ``localhost``.
"""

from __future__ import annotations

import pytest
from django.test import Client

from notifications.models import ChannelConfig, Trigger

pytestmark = pytest.mark.django_db

SECRET = "whsec-9f8e7d6c5b4a3210-secret"
PRIVATE_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "https://10.0.0.7/hook",
    "http://192.168.1.20/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
]
PUBLIC_URL = "https://93.184.215.14/hook"


@pytest.fixture
def admin(team, member_of) -> Client:
    client = Client()
    client.force_login(member_of(team, role="admin"))
    return client


@pytest.fixture
def private_refused(settings):
    settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = False


@pytest.fixture
def private_allowed(settings):
    settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True


def create_channel(client: Client, team, url: str):
    return client.post(
        "/api/channels/",
        {
            "type": "webhook",
            "name": "Hook",
            "organization": team.organization_id,
            "config": {"url": url},
            "secret": SECRET,
        },
        content_type="application/json",
    )


def create_trigger(client: Client, team, target: str):
    return client.post(
        "/api/triggers/",
        {
            "team": team.pk,
            "name": "Checkout errors",
            "kind": "event",
            "config": {"event": "checkout_error"},
            "channels": [{"type": "in_app"}, {"type": "webhook", "target": target}],
        },
        content_type="application/json",
    )


def assert_refused(response, field: str) -> None:
    assert response.status_code == 400, response.content
    [message] = response.json()[field]
    assert "private address" in message, message
    assert "NOTIFLOW_WEBHOOK_ALLOW_PRIVATE" in message


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_a_channel_url_on_a_private_address_is_refused_when_saved(
    admin, team, private_refused, url
):
    response = create_channel(admin, team, url)
    assert_refused(response, "config.url")
    assert not ChannelConfig.objects.exists()


def test_the_refusal_names_the_address_it_resolved_to(admin, team, private_refused):
    response = create_channel(admin, team, "http://localhost:8080/hook")
    assert_refused(response, "config.url")
    [message] = response.json()["config.url"]
    assert message.startswith("localhost resolves to a private address (")
    assert "127.0.0.1" in message or "::1" in message


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_the_setting_lets_a_private_channel_url_be_saved(admin, team, private_allowed, url):
    response = create_channel(admin, team, url)
    assert response.status_code == 201, response.content
    assert ChannelConfig.objects.get().config == {"default_target": url}


def test_a_public_address_is_saved_without_the_setting(admin, team, private_refused):
    assert create_channel(admin, team, PUBLIC_URL).status_code == 201
    assert create_trigger(admin, team, PUBLIC_URL).status_code == 201


def test_a_host_that_does_not_resolve_now_is_saved_and_checked_when_sending(
    admin, team, private_refused
):
    assert create_channel(admin, team, "https://hooks.invalid/notiflow").status_code == 201


def test_changing_a_channel_url_to_a_private_address_is_refused(admin, team, private_refused):
    created = create_channel(admin, team, PUBLIC_URL)
    assert created.status_code == 201
    url = f"/api/channels/{created.json()['id']}/"
    response = admin.patch(
        url, {"config": {"url": "http://10.1.2.3/hook"}}, content_type="application/json"
    )
    assert_refused(response, "config.url")
    assert ChannelConfig.objects.get().config == {"default_target": PUBLIC_URL}


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_a_trigger_webhook_target_on_a_private_address_is_refused(
    admin, team, private_refused, url
):
    response = create_trigger(admin, team, url)
    assert_refused(response, "channels[1].target")
    assert not Trigger.objects.exists()


def test_changing_a_trigger_webhook_target_to_a_private_address_is_refused(
    admin, team, private_refused
):
    created = create_trigger(admin, team, PUBLIC_URL)
    assert created.status_code == 201, created.content
    response = admin.patch(
        f"/api/triggers/{created.json()['id']}/",
        {"channels": [{"type": "webhook", "target": "http://127.0.0.1/hook"}]},
        content_type="application/json",
    )
    assert_refused(response, "channels[0].target")
    assert Trigger.objects.get().channels[1]["target"] == PUBLIC_URL


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_the_setting_lets_a_private_trigger_target_be_saved(admin, team, private_allowed, url):
    response = create_trigger(admin, team, url)
    assert response.status_code == 201, response.content
    assert Trigger.objects.get().channels[1] == {"type": "webhook", "target": url}


def test_a_trigger_webhook_target_must_be_an_http_url(admin, team, private_allowed):
    response = create_trigger(admin, team, "ftp://files.example.com/hook")
    assert response.status_code == 400
    assert "is not an http(s) URL" in response.json()["channels[1].target"][0]
