"""Secrets and credentials.

- The Slack bot token, the webhook signing secret and a team's ingestion ``api_token`` never
  appear in API responses (to a non-admin, for the api_token), in what is logged while a
  delivery fails, or in the Django admin's ChannelConfig form after saving.
- CSRF is enforced on writes made with a session cookie (not on token-authenticated ones).
- A wrong ingestion key is refused however close it is to the real one.
- The unsubscribe token cannot be forged, edited to name another user, or replayed as
  someone else.
- Webhook URLs that resolve to loopback or private addresses are refused unless
  ``NOTIFLOW_WEBHOOK_ALLOW_PRIVATE`` is on. Only loopback is ever connected to here; the
  private ranges are checked without a connection.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import zlib
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core import signing
from django.test import Client

from notifications import unsubscribe
from notifications.channels.base import Destination, Message, Result
from notifications.channels.http import non_public_address
from notifications.channels.webhook import WebhookChannel
from notifications.delivery import delivery_send
from notifications.models import ChannelConfig, Delivery, Notification, Preference, Trigger
from notifications.secrets import decrypt
from tests.factories import TeamFactory, TriggerFactory, UserFactory
from tests.servers.http_sink import Reply

pytestmark = pytest.mark.django_db

SLACK_TOKEN = "xoxb-notiflow-test"  # the only token tests.servers.slack accepts
WEBHOOK_SECRET = "whsec-9f8e7d6c5b4a3210-secret"
TELEGRAM_TOKEN = "123456:AAE-telegram-secret-token_xyz"


def api(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def org(team, member_of):
    """Team A with an owner, an admin and a member; its Slack, webhook and Telegram channels
    created through the API (as the admin does), with the secrets above."""
    owner, admin, member = (member_of(team, role=r) for r in ("owner", "admin", "member"))
    admin_client = api(admin)
    created = {}
    for body in (
        {
            "type": "slack",
            "name": "Slack",
            "config": {"default_target": "#alerts"},
            "secret": SLACK_TOKEN,
        },
        {
            "type": "webhook",
            "name": "Hook",
            "config": {"url": "https://hooks.example.com/hook"},
            "secret": WEBHOOK_SECRET,
        },
        {
            "type": "telegram",
            "name": "Bot",
            "config": {"default_target": "-1001"},
            "secret": TELEGRAM_TOKEN,
        },
    ):
        response = admin_client.post(
            "/api/channels/",
            {**body, "organization": team.organization_id},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        assert_no_secret(response.content, team)
        created[body["type"]] = ChannelConfig.objects.get(pk=response.json()["id"])
    trigger = TriggerFactory(
        team=team,
        owner=member,
        subscribers=[member],
        channels=[
            {"type": "slack", "target": "#alerts"},
            {"type": "webhook"},
            {"type": "telegram"},
        ],
    )
    return {
        "owner": owner,
        "admin": admin,
        "member": member,
        "channels": created,
        "trigger": trigger,
    }


def secrets_of(team) -> list[str]:
    return [SLACK_TOKEN, WEBHOOK_SECRET, TELEGRAM_TOKEN, team.api_token]


def assert_no_secret(content: bytes | str, team, *, allow_api_token: bool = False) -> None:
    text = content.decode() if isinstance(content, bytes) else content
    for secret in secrets_of(team):
        if allow_api_token and secret == team.api_token:
            continue
        assert secret not in text, f"{secret[:8]}… leaked"
    # …nor its ciphertext, which anyone holding SECRET_KEY can decrypt.
    for config in ChannelConfig.objects.filter(organization=team.organization):
        if config.secret_encrypted:
            assert config.secret_encrypted not in text


# --- API responses ----------------------------------------------------------------------


def test_secrets_are_stored_encrypted_and_work(org, team):
    for kind, secret in (
        ("slack", SLACK_TOKEN),
        ("webhook", WEBHOOK_SECRET),
        ("telegram", TELEGRAM_TOKEN),
    ):
        config = org["channels"][kind]
        assert secret not in json.dumps(config.config)
        assert secret not in config.secret_encrypted
        assert decrypt(config.secret_encrypted) == secret


def test_a_secret_sent_inside_config_is_moved_out_and_not_returned(org, team):
    response = api(org["admin"]).post(
        "/api/channels/",
        {
            "type": "slack",
            "name": "Second",
            "organization": team.organization_id,
            "config": {"default_target": "#ops", "bot_token": SLACK_TOKEN},
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert_no_secret(response.content, team)
    config = ChannelConfig.objects.get(pk=response.json()["id"])
    assert "bot_token" not in config.config
    assert decrypt(config.secret_encrypted) == SLACK_TOKEN


@pytest.mark.parametrize("role", ["member", "admin", "owner"])
def test_no_api_response_shows_a_secret(org, team, role):
    client = api(org[role])
    slack = org["channels"]["slack"]
    urls = [
        "/api/channels/",
        f"/api/channels/{slack.pk}/",
        "/api/triggers/",
        f"/api/triggers/{org['trigger'].pk}/",
        "/api/deliveries/",
        "/api/me/",
        "/api/notifications/",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert_no_secret(response.content, team)
    teams = client.get("/api/teams/")
    assert teams.status_code == 200
    if role == "member":
        assert_no_secret(teams.content, team)
        assert [t["api_token"] for t in teams.json()] == [None]
    else:  # admins and owners copy it into their SDK setup
        assert_no_secret(teams.content, team, allow_api_token=True)
        assert [t["api_token"] for t in teams.json()] == [team.api_token]


def test_updating_a_channel_returns_no_secret_and_keeps_it(org, team):
    slack = org["channels"]["slack"]
    client = api(org["admin"])
    for body in (
        {"name": "Renamed"},
        {"config": {"default_target": "#other"}},
        {"secret": "xoxb-rotated-1"},
    ):
        response = client.patch(f"/api/channels/{slack.pk}/", body, content_type="application/json")
        assert response.status_code == 200, response.content
        assert_no_secret(response.content, team)
        assert "xoxb-rotated-1" not in response.content.decode()
        assert response.json()["has_secret"] is True
    slack.refresh_from_db()
    assert decrypt(slack.secret_encrypted) == "xoxb-rotated-1"


# --- failing deliveries: logs, last_error, the API and the admins' notice -------------------


@pytest.mark.integration
def test_failing_deliveries_log_and_record_no_secret(
    org, team, slack_server, http_sink, telegram_server, settings, caplog
):
    """Slack answering 500 then ``channel_not_found``, the webhook 500 and 403, Telegram
    401: every failure path runs, logged at DEBUG from every logger (slack-sdk logs its
    requests there), and no secret is in the log, the rows or the API."""
    settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True  # the sink is on loopback
    hook = org["channels"]["webhook"]
    hook.config = {"default_target": f"{http_sink.url}/hook"}
    hook.save()
    slack_server.fail_next(500)
    http_sink.fail_next(500, b"upstream down")
    telegram_server.answer_next(
        Reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    )

    def delivery(channel, destination, n):
        return Delivery.objects.create(
            idempotency_key=f"secrets:{channel}:{n}",
            channel=channel,
            destination=destination,
            team=team,
            trigger=org["trigger"],
            message={"title": "Checkout errors", "body": "42 in 5 minutes", "category": "alert"},
        )

    deliveries = [
        delivery("slack", "#alerts", 1),  # 500 → retry
        delivery("slack", "#does-not-exist", 2),  # channel_not_found → failed
        delivery("webhook", "", 3),  # 500 → retry
        delivery("telegram", "", 4),  # 401 → failed
    ]
    with caplog.at_level(logging.DEBUG):
        results = [delivery_send(delivery_id=d.pk) for d in deliveries]
        http_sink.fail_next(403, b"forbidden")
        results.append(delivery_send(delivery_id=delivery("webhook", "", 5).pk))
    assert [r.status for r in results] == ["queued", "failed", "queued", "failed", "failed"]
    assert slack_server.posts and slack_server.posts[0].token == SLACK_TOKEN  # it was used
    assert caplog.records, "nothing was logged at DEBUG: the check would prove nothing"

    assert_no_secret(caplog.text, team)
    for row in Delivery.objects.filter(team=team):
        assert row.last_error, row.channel
        assert_no_secret(row.last_error, team)
    for config in ChannelConfig.objects.filter(organization=team.organization):
        assert_no_secret(config.disabled_reason, team)
    for notification in Notification.objects.filter(team=team):
        assert_no_secret(notification.title + notification.body, team)
    for role in ("member", "admin"):
        response = api(org[role]).get("/api/deliveries/")
        assert response.status_code == 200
        assert_no_secret(response.content, team)


# --- the Django admin ---------------------------------------------------------------------


@pytest.fixture
def superuser():
    return UserFactory(is_staff=True, is_superuser=True)


def admin_form_data(channel: ChannelConfig, **changes) -> dict:
    data = {
        "organization": channel.organization_id,
        "type": channel.type,
        "name": channel.name,
        "config": json.dumps(channel.config),
        "enabled": "on" if channel.enabled else "",
        "created_by": channel.created_by_id or "",
        "_save": "Save",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


@pytest.mark.parametrize("kind", ["slack", "webhook", "telegram"])
def test_the_admin_change_form_never_shows_the_secret_even_after_saving(org, team, superuser, kind):
    config = org["channels"][kind]
    client = api(superuser)
    url = f"/admin/notifications/channelconfig/{config.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    assert_no_secret(page.content, team)

    saved = client.post(url, admin_form_data(config, name=f"{config.name} (renamed)"))
    assert saved.status_code == 302, saved.content.decode()[:2000]
    config.refresh_from_db()
    assert config.name.endswith("(renamed)")
    assert (
        decrypt(config.secret_encrypted)
        == {"slack": SLACK_TOKEN, "webhook": WEBHOOK_SECRET, "telegram": TELEGRAM_TOKEN}[kind]
    )
    for page_url in (
        url,
        "/admin/notifications/channelconfig/",
        f"{url.removesuffix('change/')}history/",
    ):
        page = client.get(page_url)
        assert page.status_code == 200, page_url
        assert_no_secret(page.content, team)


def test_a_secret_typed_into_the_admin_config_is_not_kept_in_clear(org, team, superuser):
    """An admin who pastes the token into the JSON config (there is no secret field) gets it
    encrypted like the API does, not stored and shown in clear."""
    config = org["channels"]["slack"]
    client = api(superuser)
    url = f"/admin/notifications/channelconfig/{config.pk}/change/"
    new_config = json.dumps({"default_target": "#alerts", "bot_token": "xoxb-pasted-in-admin"})
    saved = client.post(url, admin_form_data(config, config=new_config))
    assert saved.status_code == 302, saved.content.decode()[:2000]
    config.refresh_from_db()
    assert "bot_token" not in config.config
    assert decrypt(config.secret_encrypted) == "xoxb-pasted-in-admin"
    assert "xoxb-pasted-in-admin" not in client.get(url).content.decode()


# --- CSRF -----------------------------------------------------------------------------------


def csrf_client(user) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/")  # the page the scripts run on; it sets the csrftoken cookie
    assert page.status_code == 200
    token = client.cookies["csrftoken"].value
    return client, token


def session_writes(org, team) -> list[tuple[str, str, dict]]:
    slack = org["channels"]["slack"]
    return [
        (
            "post",
            "/api/triggers/",
            {"team": team.pk, "name": "t", "kind": "event", "config": {"event": "x"}},
        ),
        ("patch", f"/api/triggers/{org['trigger'].pk}/", {"name": "renamed"}),
        ("post", f"/api/triggers/{org['trigger'].pk}/disable/", {}),
        ("patch", f"/api/channels/{slack.pk}/", {"name": "renamed"}),
        ("put", "/api/preferences/", {"digest_hour": 7}),
        ("post", "/api/notifications/read_all/", {}),
        ("post", "/api/dashboards/", {"team": team.pk, "name": "d"}),
        ("delete", f"/api/triggers/{org['trigger'].pk}/", {}),
    ]


@pytest.mark.parametrize("index", range(8))
def test_session_writes_without_the_csrf_token_are_refused(org, team, index):
    method, url, body = session_writes(org, team)[index]
    client, token = csrf_client(org["owner"])
    before = (Trigger.objects.count(), Trigger.objects.get(pk=org["trigger"].pk).name)
    kwargs = {"content_type": "application/json"}
    refused = getattr(client, method)(url, json.dumps(body), **kwargs)
    assert refused.status_code == 403, refused.content
    assert "CSRF" in refused.json()["detail"]
    wrong = getattr(client, method)(url, json.dumps(body), HTTP_X_CSRFTOKEN="x" * 64, **kwargs)
    assert wrong.status_code == 403
    assert (Trigger.objects.count(), Trigger.objects.get(pk=org["trigger"].pk).name) == before
    allowed = getattr(client, method)(url, json.dumps(body), HTTP_X_CSRFTOKEN=token, **kwargs)
    assert 200 <= allowed.status_code < 300, (url, allowed.status_code, allowed.content)


def test_token_authenticated_writes_need_no_csrf_token(org, team):
    from rest_framework.authtoken.models import Token

    key = Token.objects.create(user=org["member"]).key
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/triggers/",
        json.dumps({"team": team.pk, "name": "t", "kind": "event", "config": {"event": "x"}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {key}",
    )
    assert response.status_code == 201, response.content


def test_login_form_is_csrf_protected(member_of, team):
    user = member_of(team)
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": "pw-for-tests"}
    )
    assert response.status_code == 403


# --- the ingestion key ----------------------------------------------------------------------


def near_misses(key: str) -> list[str]:
    last = key[-1]
    swapped = "a" if last != "a" else "b"
    return [
        key[:-1] + swapped,  # same length, only the last character differs
        swapped + key[1:],  # same length, only the first differs
        key[:-1],
        key + "0",
        key.upper() if key.upper() != key else key.lower(),
        f" {key}",
        f"{key}\n",
        key[: len(key) // 2],
    ]


@pytest.mark.parametrize("index", range(8))
def test_an_ingestion_key_that_is_almost_right_is_401(client, team, index, monkeypatch):
    from api import ingest

    monkeypatch.setattr(ingest, "publish_events", lambda events: pytest.fail("published"))
    wrong = near_misses(team.api_token)[index]
    assert wrong != team.api_token
    if index < 2:
        assert len(wrong) == len(team.api_token)
    response = client.post(
        "/api/ingest/",
        {"api_key": wrong, "batch": [{"event": "e", "distinct_id": "u"}]},
        content_type="application/json",
    )
    assert response.status_code == 401
    assert team.api_token not in response.content.decode()


def test_another_teams_key_is_that_teams_not_this_ones(client, team, monkeypatch):
    from api import ingest

    other = TeamFactory()
    sent = []
    monkeypatch.setattr(ingest, "publish_events", lambda events: sent.extend(events) or len(sent))
    response = client.post(
        "/api/ingest/",
        {"api_key": other.api_token, "batch": [{"event": "e", "distinct_id": "u"}]},
        content_type="application/json",
    )
    assert response.status_code == 202
    assert [(e.team_id, e.org_id) for e in sent] == [(other.pk, other.organization_id)]


# --- the unsubscribe token ------------------------------------------------------------------


def token_for(user, category="alert", channel="email") -> str:
    return unsubscribe.unsubscribe_token(user_id=user.pk, category=category, channel=channel)


def channels_of(user) -> dict:
    preference = Preference.objects.filter(user=user).first()
    return preference.channels if preference else {}


def with_payload(token: str, **changes) -> str:
    """The token with its payload edited and its signature kept."""
    payload, rest = token.split(":", 1)
    compressed = payload.startswith(".")
    raw = base64.urlsafe_b64decode(payload.lstrip(".") + "=" * (-len(payload.lstrip(".")) % 4))
    data = json.loads(zlib.decompress(raw) if compressed else raw)
    data.update(changes)
    encoded = json.dumps(data, separators=(",", ":")).encode()
    encoded = zlib.compress(encoded) if compressed else encoded
    new_payload = base64.urlsafe_b64encode(encoded).decode().rstrip("=")
    return ("." if compressed else "") + new_payload + ":" + rest


def test_a_valid_token_unsubscribes_its_user_once_and_idempotently(member_of, team):
    user = member_of(team)
    token = token_for(user)
    for _ in range(2):
        assert Client().get(f"/unsubscribe/{token}/").status_code == 200
    assert channels_of(user) == {"alert": {"email": False}}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
        lambda t: t.rsplit(":", 1)[0] + ":" + "x" * 43,  # signature replaced
        lambda t: t.split(":", 1)[0],  # signature removed
        lambda t: "." + t,  # payload marked compressed twice
        lambda t: t + "x",
    ],
    ids=["flipped", "replaced", "unsigned", "prefixed", "appended"],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_token_is_400_and_changes_nothing(member_of, team, tamper, method):
    user = member_of(team)
    bad = tamper(token_for(user))
    response = getattr(Client(), method)(f"/unsubscribe/{bad}/")
    assert response.status_code == 400
    assert channels_of(user) == {}


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_token_edited_to_name_another_user_is_400(member_of, team, method):
    alice, bob = member_of(team), member_of(team)
    forged = with_payload(token_for(alice), u=bob.pk)
    assert forged != token_for(alice)
    response = getattr(Client(), method)(f"/unsubscribe/{forged}/")
    assert response.status_code == 400
    assert channels_of(alice) == {} and channels_of(bob) == {}
    edited = with_payload(token_for(alice), c="digest", ch="slack")
    assert getattr(Client(), method)(f"/unsubscribe/{edited}/").status_code == 400
    assert channels_of(alice) == {}


def test_tokens_signed_for_something_else_are_refused(member_of, team):
    user = member_of(team)
    payload = {"u": user.pk, "c": "alert", "ch": "email"}
    for token in (
        signing.dumps(payload, compress=True),  # no salt
        signing.dumps(payload, salt="notiflow.other", compress=True),
        signing.dumps(payload, salt=unsubscribe.SALT, key="not-the-secret-key", compress=True),
    ):
        assert Client().get(f"/unsubscribe/{token}/").status_code == 400
    assert channels_of(user) == {}


def test_an_expired_token_is_refused(member_of, team):
    user = member_of(team)
    long_ago = time.time() - unsubscribe.MAX_AGE_SECONDS - 60
    with mock.patch("django.core.signing.time.time", return_value=long_ago):
        old = token_for(user)
    assert Client().get(f"/unsubscribe/{old}/").status_code == 400
    assert channels_of(user) == {}


def test_someone_else_opening_a_token_changes_only_its_owner(member_of, team):
    """Bob, logged in, opens Alice's link: Alice is unsubscribed (it is her link), Bob is
    not, and Bob is not sent to his own preferences as if it were his."""
    alice, bob = member_of(team), member_of(team)
    response = api(bob).get(f"/unsubscribe/{token_for(alice)}/")
    assert response.status_code == 200
    assert channels_of(alice) == {"alert": {"email": False}}
    assert channels_of(bob) == {}
    assert alice.username not in response.content.decode()
    own = api(bob).get(f"/unsubscribe/{token_for(bob)}/")
    assert own.status_code == 302 and own["Location"].startswith("/preferences/")


# --- webhook addresses ----------------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "localhost",
    "127.1",
    "127.255.255.254",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "0.0.0.0",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[0:0:0:0:0:0:0:1]",
]


@pytest.fixture
def private_refused(settings):
    if hasattr(django_settings, "NOTIFLOW_WEBHOOK_ALLOW_PRIVATE"):
        settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = False


@pytest.mark.integration
@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_every_spelling_of_loopback_is_refused_by_default(http_sink, private_refused, host):
    url = f"http://{host}:{http_sink.port}/hook"
    outcome = WebhookChannel().send(
        Message(title="t"), Destination(url, {"secret": WEBHOOK_SECRET})
    )
    assert outcome.result is Result.FAILED, outcome
    assert (
        "private address" in outcome.detail
        or "not a valid host" in outcome.detail
        or "does not resolve" in outcome.detail
    )
    assert http_sink.requests == []


@pytest.mark.integration
def test_the_setting_lets_loopback_through(http_sink, settings):
    settings.NOTIFLOW_WEBHOOK_ALLOW_PRIVATE = True
    outcome = WebhookChannel().send(
        Message(title="t"),
        Destination(f"http://127.0.0.1:{http_sink.port}/hook", {"secret": WEBHOOK_SECRET}),
    )
    assert outcome.result is Result.SENT, outcome.detail
    assert len(http_sink.requests) == 1


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "198.18.0.1",
        "::1",
        "fc00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2001:db8::1",
    ],
)
def test_private_link_local_and_reserved_addresses_count_as_non_public(address):
    """Checked without connecting: the channel refuses before it opens a socket."""
    family = 10 if ":" in address else 2
    sockaddr = (address, 80, 0, 0) if family == 10 else (address, 80)
    assert non_public_address([(family, sockaddr)]), address


def test_a_public_address_passes_the_check():
    assert non_public_address([(2, ("93.184.216.34", 443))]) == ""
    assert non_public_address([(2, ("93.184.216.34", 443)), (2, ("127.0.0.1", 443))]) == "127.0.0.1"


@pytest.mark.integration
def test_a_delivery_to_a_loopback_webhook_fails_for_good_without_the_setting(
    org, team, http_sink, private_refused
):
    hook = org["channels"]["webhook"]
    hook.config = {"default_target": f"http://localhost:{http_sink.port}/hook"}
    hook.save()
    row = Delivery.objects.create(
        idempotency_key="private:1",
        channel="webhook",
        destination="",
        team=team,
        trigger=org["trigger"],
        message={"title": "t"},
    )
    assert delivery_send(delivery_id=row.pk).status == "failed"
    row.refresh_from_db()
    assert (
        "private address" in row.last_error and "NOTIFLOW_WEBHOOK_ALLOW_PRIVATE" in row.last_error
    )
    assert http_sink.requests == []
    assert re.search(r"\((127\.0\.0\.1|::1)\)", row.last_error)
