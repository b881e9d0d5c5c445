"""Integration: the notification center's "Stop notifying me from this trigger" → "Done:
this trigger will not notify you any more" holds for a roll-up window already open — no
summary reaches the person who muted, through the API, the consumer and aiosmtpd."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import rollup
from notifications.tasks import deliver
from tests.notifications.test_form_promises import create_trigger, ingest

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_muting_during_an_open_roll_up_window_sends_no_summary_to_the_muter(
    api_client, team, member_of, drain, smtp_server
):
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

    api_client.force_authenticate(sam)
    [note] = api_client.get("/api/notifications/").json()["results"]
    muted = api_client.post(f"/api/notifications/{note['id']}/mute_trigger/")
    assert muted.status_code == 200, muted.content

    for delivery_id in rollup.flush_due(now=timezone.now() + timedelta(seconds=11)):
        deliver(delivery_id)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["olive@example.com"]]
    ingest(api_client, team, {"amount": 3})
    drain(expected=1)
    api_client.force_authenticate(sam)
    assert [n["count"] for n in api_client.get("/api/notifications/").json()["results"]] == [2]
