"""The keys behind the secrets.

- With ``DJANGO_DEBUG=0`` notiflow refuses to start on the development ``DJANGO_SECRET_KEY``
  or without ``NOTIFLOW_SECRETS_KEYS``: one line naming the variable, exit 1.
- Channel secrets are encrypted with ``NOTIFLOW_SECRETS_KEYS`` (Fernet keys, the first
  encrypts, every one decrypts), not with ``SECRET_KEY``; ``manage.py rotate_secrets``
  re-encrypts every stored secret under the first key, so an old key can then be dropped.
  A local run without the variable keeps using the key earlier versions derived from
  ``SECRET_KEY``, so the secrets already saved there still decrypt.
- A secret no key decrypts fails its delivery with the reason (``failed``, not ``skipped``)
  and counts against the channel, which is turned off with that reason and its admins told.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from notifications.delivery import DISABLE_AFTER_FAILURES, delivery_send
from notifications.models import ChannelConfig, Delivery, Notification
from notifications.secrets import decrypt, encrypt

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
DEVELOPMENT_KEY = "notiflow-local-development-key-change-me"
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
SLACK_TOKEN = "xoxb-notiflow-test"


def _check(**variables: str) -> subprocess.CompletedProcess:
    base = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "a-real-production-secret-key-of-some-length",
        "NOTIFLOW_SECRETS_KEYS": NEW,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, **base, **variables},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- starting in production ------------------------------------------------------------


@pytest.mark.parametrize("value", ["", DEVELOPMENT_KEY], ids=["unset", "the development key"])
def test_production_refuses_the_development_secret_key(value):
    line = _one_line(_check(DJANGO_SECRET_KEY=value))
    assert "DJANGO_SECRET_KEY" in line and "DJANGO_DEBUG=0" in line


def test_production_needs_its_own_secrets_keys():
    line = _one_line(_check(NOTIFLOW_SECRETS_KEYS=""))
    assert "NOTIFLOW_SECRETS_KEYS" in line


def test_a_bad_secrets_key_is_named_by_position_and_not_printed():
    line = _one_line(_check(NOTIFLOW_SECRETS_KEYS=f"{NEW},not-a-fernet-key"))
    assert "NOTIFLOW_SECRETS_KEYS" in line and "key 2" in line
    assert "not-a-fernet-key" not in line and NEW not in line


def test_production_starts_with_both_set():
    result = _check()
    assert result.returncode == 0, result.stderr


def test_a_local_run_starts_on_the_defaults():
    result = _check(DJANGO_DEBUG="", DJANGO_SECRET_KEY="", NOTIFLOW_SECRETS_KEYS="")
    assert result.returncode == 0, result.stderr


# --- encryption keys and rotation ------------------------------------------------------


def _derived_from(secret_key: str) -> Fernet:
    """How channel secrets were encrypted before NOTIFLOW_SECRETS_KEYS existed."""
    digest = hashlib.sha256(f"notiflow-channel-secrets:{secret_key}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def test_without_the_variable_secrets_saved_earlier_still_decrypt(settings):
    settings.NOTIFLOW_SECRETS_KEYS = []
    saved_earlier = _derived_from(settings.SECRET_KEY).encrypt(b"xoxb-saved-earlier").decode()
    assert decrypt(saved_earlier) == "xoxb-saved-earlier"


def test_the_secrets_key_is_not_the_django_secret_key(settings):
    settings.NOTIFLOW_SECRETS_KEYS = [NEW]
    token = encrypt("xoxb-separate")
    assert Fernet(NEW.encode()).decrypt(token.encode()) == b"xoxb-separate"
    settings.SECRET_KEY = "rotated-django-secret-key"  # Django's key rotates on its own
    assert decrypt(token) == "xoxb-separate"


def _channel(team, token: str) -> ChannelConfig:
    return ChannelConfig.objects.create(
        organization=team.organization,
        type="slack",
        name="Slack",
        config={"default_target": "#alerts"},
        secret_encrypted=token,
    )


def test_rotation_first_key_encrypts_every_key_decrypts(settings, team):
    settings.NOTIFLOW_SECRETS_KEYS = [OLD]
    channel = _channel(team, encrypt(SLACK_TOKEN))

    settings.NOTIFLOW_SECRETS_KEYS = [NEW, OLD]  # step 1: the new key first, the old kept
    assert decrypt(channel.secret_encrypted) == SLACK_TOKEN
    assert Fernet(NEW.encode()).decrypt(encrypt("x").encode()) == b"x"

    call_command("rotate_secrets")  # step 2: re-encrypt under the first key
    channel.refresh_from_db()
    settings.NOTIFLOW_SECRETS_KEYS = [NEW]  # step 3: drop the old key
    assert decrypt(channel.secret_encrypted) == SLACK_TOKEN


def test_rotation_from_the_key_earlier_versions_derived(settings, team):
    channel = _channel(team, _derived_from(settings.SECRET_KEY).encrypt(b"xoxb-old").decode())
    settings.NOTIFLOW_SECRETS_KEYS = [NEW]
    call_command("rotate_secrets", "--from-secret-key")
    channel.refresh_from_db()
    assert Fernet(NEW.encode()).decrypt(channel.secret_encrypted.encode()) == b"xoxb-old"


def test_rotation_names_what_no_key_decrypts_and_fails(settings, team):
    settings.NOTIFLOW_SECRETS_KEYS = [OLD]
    lost = _channel(team, encrypt(SLACK_TOKEN))
    settings.NOTIFLOW_SECRETS_KEYS = [NEW]
    with pytest.raises(CommandError, match=rf"NOTIFLOW_SECRETS_KEYS.*channel {lost.pk} "):
        call_command("rotate_secrets")
    lost.refresh_from_db()
    settings.NOTIFLOW_SECRETS_KEYS = [OLD]
    assert decrypt(lost.secret_encrypted) == SLACK_TOKEN  # left as it was


# --- a secret no key decrypts ----------------------------------------------------------


def test_an_undecryptable_secret_fails_the_delivery_and_tells_the_admins(
    settings, team, member_of, api_client
):
    admin = member_of(team, role="admin")
    settings.SLACK_API_BASE_URL = "http://127.0.0.1:9/api/"  # nothing may reach Slack itself
    settings.NOTIFLOW_SECRETS_KEYS = [OLD]
    channel = _channel(team, encrypt(SLACK_TOKEN))
    settings.NOTIFLOW_SECRETS_KEYS = [NEW]  # the old key was dropped too soon
    rows = [
        Delivery.objects.create(
            idempotency_key=f"undecryptable:{i}",
            channel="slack",
            destination="#alerts",
            team=team,
            recipient=admin,
        )
        for i in range(DISABLE_AFTER_FAILURES)
    ]
    for row in rows:
        delivery_send(delivery_id=row.pk)
    api_client.force_authenticate(admin)
    listed = api_client.get("/api/deliveries/").json()["results"]
    assert {r["status"] for r in listed} == {"failed"}
    assert all("NOTIFLOW_SECRETS_KEYS" in r["last_error"] for r in listed), listed
    channel.refresh_from_db()
    assert not channel.enabled and "NOTIFLOW_SECRETS_KEYS" in channel.disabled_reason
    told = Notification.objects.get(recipient=admin, title__contains="was turned off")
    assert "NOTIFLOW_SECRETS_KEYS" in told.body
