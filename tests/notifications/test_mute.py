"""Integration: "Stop notifying me from this trigger" → "Done: this trigger will not notify
you any more" (the center) and "You will no longer receive alert notifications by email"
(the unsubscribe page) hold for a roll-up window already open — its summary does not reach
that person (``rollup._no_longer_hears``), through the API, the consumer and aiosmtpd."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import rollup
from notifications.tasks import deliver
from notifications.unsubscribe import unsubscribe_token
from tests.notifications.test_form_promises import create_trigger, ingest

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sam(api_client, team, member_of, drain):
    """Olive's roll-up trigger (10 s windows) to herself and sam, with a window open for
    each after two matching events; returns sam."""
    owner = member_of(team, email="olive@example.com")
    sam = member_of(team, email="sam@example.com")
    api_client.force_authenticate(owner)
    create_trigger(
        api_client,
        team,
        config={"event": "checkout_error"},
        channels=[{"type": "in_app"}, {"type": "email"}],
        delivery={"mode": "rollup", "window_seconds": 10},
        subscribers=[owner.pk, sam.pk],
    )
    ingest(api_client, team, {"amount": 1}, {"amount": 2})
    drain(expected=2)
    return sam


def close_the_windows():
    for delivery_id in rollup.flush_due(now=timezone.now() + timedelta(seconds=11)):
        deliver(delivery_id)


def test_muting_during_an_open_roll_up_window_sends_no_summary_to_the_muter(
    api_client, team, sam, drain, smtp_server
):

    api_client.force_authenticate(sam)
    [note] = api_client.get("/api/notifications/").json()["results"]
    muted = api_client.post(f"/api/notifications/{note['id']}/mute_trigger/")
    assert muted.status_code == 200, muted.content

    close_the_windows()
    assert [m.rcpt_tos for m in smtp_server.messages] == [["olive@example.com"]]
    ingest(api_client, team, {"amount": 3})
    drain(expected=1)
    api_client.force_authenticate(sam)
    assert [n["count"] for n in api_client.get("/api/notifications/").json()["results"]] == [2]


def test_an_email_unsubscribe_during_an_open_window_skips_its_summary_with_the_reason(
    api_client, sam, smtp_server
):
    """The unsubscribe page: "You will no longer receive alert notifications by email" —
    also not the summary of a window opened before the click; the person's delivery list
    says why it was not sent."""
    token = unsubscribe_token(user_id=sam.pk, category="alert", channel="email")
    api_client.logout()
    assert api_client.post(f"/unsubscribe/{token}/").status_code == 200

    close_the_windows()
    assert [m.rcpt_tos for m in smtp_server.messages] == [["olive@example.com"]]
    api_client.force_authenticate(sam)
    [row] = api_client.get("/api/deliveries/").json()["results"]
    assert (row["status"], row["last_error"]) == ("skipped", "you switched alerts off for email")
