"""The admin's "dry-run the digest now" action, through the Django test client as staff:
the page shows each selected user's digest (or why there is none); nothing reaches the
SMTP server and no row or Redis key changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from digests.models import Digest, DigestStatus
from digests.windows import due_window, previous_window
from tests.digests.factories import NotificationFactory
from tests.digests.test_command import redis_keys, snapshot
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def dry_run(client, changelist: str, ids):
    return client.post(
        changelist,
        {"action": "dry_run_now", "_selected_action": [str(pk) for pk in ids]},
    )


@pytest.fixture
def world(subscriber):
    """dana has an edit in the window due now; eli has nothing new; gus has a digest
    queued by an earlier run, due now; hal has digests off."""
    window = due_window("daily", timezone.now(), "UTC", 9)
    dana, team = subscriber(username="dana")
    NotificationFactory(
        recipient=dana,
        team=team,
        title="Ann edited dashboard “Revenue”",
        at=window.start + timedelta(hours=1),
    )
    eli, _ = subscriber(team=team, username="eli")
    gus, _ = subscriber(team=team, username="gus")
    earlier = previous_window(window)
    NotificationFactory(recipient=gus, team=team, title="Checkout errors spiked", at=earlier.start)
    built_at = earlier.end + timedelta(hours=10)  # after 09:00 the day it ended: due
    call_command("digests", "build", "--period", "daily", "--now", built_at.isoformat())
    hal, _ = subscriber(team=team, username="hal", cadence="off")
    return {"dana": dana, "eli": eli, "gus": gus, "hal": hal, "window": window}


def test_dry_run_on_users_shows_each_digest_and_changes_nothing(
    staff_client, world, smtp_server, settings
):
    queued = Digest.objects.get(user=world["gus"])
    assert queued.status == DigestStatus.QUEUED
    before, keys_before = snapshot(), redis_keys(settings)

    response = dry_run(
        staff_client,
        "/admin/auth/user/",
        [world[name].pk for name in ("dana", "eli", "gus", "hal")],
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Digest dry run" in page
    assert '<div class="breadcrumbs">' in page  # the admin's own layout
    dana = section(page, "dana")
    assert f"daily {world['window'].label()} (UTC) · 1 item</h3>" in dana
    assert "Subject:" in dana and "Ann edited dashboard “Revenue”" in dana
    # the HTML body, escaped into a sandboxed frame's srcdoc
    assert 'srcdoc="&lt;!doctype html&gt;' in dana
    assert "Nothing to send: nothing new for the daily window" in section(page, "eli")
    gus = section(page, "gus")
    assert "queued earlier, due now · to gus@example.com" in gus
    assert "Checkout errors spiked" in gus
    assert "Nothing to send: digests are switched off" in section(page, "hal")

    assert smtp_server.messages == []
    assert snapshot() == before
    assert redis_keys(settings) == keys_before


def test_dry_run_from_the_digest_list_covers_those_digests_users(staff_client, world, smtp_server):
    digest = Digest.objects.get(user=world["gus"])

    response = dry_run(staff_client, "/admin/digests/digest/", [digest.pk])

    page = response.content.decode()
    assert response.status_code == 200
    assert "Checkout errors spiked" in section(page, "gus")
    assert "dana" not in page
    assert smtp_server.messages == []
    digest.refresh_from_db()
    assert digest.status == DigestStatus.QUEUED and digest.attempts == 0


def test_a_digest_already_sent_for_the_window_is_named(staff_client, subscriber, smtp_server):
    user, team = subscriber(username="ivy")
    window = due_window("daily", timezone.now(), "UTC", 9)
    NotificationFactory(recipient=user, team=team, at=window.start)
    now = window.end + timedelta(hours=10)
    call_command("digests", "run", "--period", "daily", "--now", now.isoformat())
    assert len(smtp_server.messages) == 1

    page = dry_run(staff_client, "/admin/auth/user/", [user.pk]).content.decode()

    assert "Nothing to send: the digest for the daily window" in page
    assert "is already sent." in page
    assert len(smtp_server.messages) == 1


def section(page: str, username: str) -> str:
    """The part of the page about one user."""
    start = page.index(f"<h2>{username} ")
    end = page.find("<h2>", start + 1)
    return page[start : end if end != -1 else len(page)]
