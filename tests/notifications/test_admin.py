"""The operators' admin actions on notifications, as staff through the Django test client:
retrying failed deliveries (they really go out again, to the local SMTP server) and
disabling triggers, and refusing the channels and delivery settings the API refuses."""

from __future__ import annotations

import json

import pytest

from notifications.models import DeliveryStatus, Trigger
from tests.digests.factories import DeliveryFactory
from tests.factories import TeamFactory, TriggerFactory, UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def act(client, changelist: str, action: str, rows):
    return client.post(
        changelist,
        {"action": action, "_selected_action": [str(row.pk) for row in rows]},
        follow=True,
    )


def test_retry_sends_failed_and_skipped_deliveries_again_and_leaves_sent_ones(
    staff_client, smtp_server, django_capture_on_commit_callbacks
):
    failed = DeliveryFactory(
        status=DeliveryStatus.FAILED,
        attempts=5,
        last_error="421 try later",
        message={"title": "Checkout errors spiked"},
    )
    skipped = DeliveryFactory(status=DeliveryStatus.SKIPPED, message={"title": "Signups dropped"})
    sent = DeliveryFactory(status=DeliveryStatus.SENT, message={"title": "Already out"})

    with django_capture_on_commit_callbacks(execute=True):
        response = act(
            staff_client, "/admin/notifications/delivery/", "retry", [failed, skipped, sent]
        )

    assert response.status_code == 200
    assert "Queued 2 deliveries again." in response.content.decode()
    assert sorted(mail.rcpt_tos[0] for mail in smtp_server.messages) == sorted(
        [failed.destination, skipped.destination]
    )
    subjects = " / ".join(str(mail.message["Subject"]) for mail in smtp_server.messages)
    assert "Checkout errors spiked" in subjects and "Signups dropped" in subjects
    for row in (failed, skipped):
        row.refresh_from_db()
        assert row.status == DeliveryStatus.SENT and row.attempts == 1
    sent.refresh_from_db()
    assert sent.status == DeliveryStatus.SENT


def test_disable_turns_the_selected_triggers_off(staff_client):
    on = TriggerFactory(name="Checkout errors")
    off = TriggerFactory(name="Old", enabled=False)
    untouched = TriggerFactory(name="Signups drop")

    response = act(staff_client, "/admin/notifications/trigger/", "disable", [on, off])

    assert "Disabled 1 trigger(s)." in response.content.decode()
    assert set(Trigger.objects.filter(enabled=True)) == {untouched}


def trigger_form(team, owner, **fields):
    return {
        "team": team.pk,
        "owner": owner.pk,
        "name": "Checkout errors",
        "kind": "event",
        "config": json.dumps({"event": "checkout_error"}),
        "channels": json.dumps([{"type": "in_app"}]),
        "delivery": json.dumps({"mode": "instant"}),
        "enabled": "on",
        "snoozed_until_0": "",
        "snoozed_until_1": "",
    } | {key: json.dumps(value) for key, value in fields.items()}


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"delivery": {"mode": "rollup", "window_seconds": 10**9}},
            "delivery.window_seconds: Ensure this value is less than or equal to 86400.",
        ),
        (
            {"delivery": {"mode": "instant", "max_items": 5}},
            "delivery.max_items: only applies to rollup, not instant",
        ),
        (
            {"channels": [{"type": "slack", "target": "everyone"}]},
            "channels[0].target: slack needs a channel like &#x27;#alerts&#x27;",
        ),
        (
            {"channels": [{"type": "in_app"}] * 11},
            "channels: Ensure this field has no more than 10 elements.",
        ),
        (
            {"channels": [{"type": "carrier_pigeon"}]},
            "channels[0].type: unknown channel type &#x27;carrier_pigeon&#x27;",
        ),
    ],
)
def test_the_admin_refuses_channels_and_delivery_the_api_refuses(staff_client, fields, error):
    team, owner = TeamFactory(), UserFactory()

    response = staff_client.post(
        "/admin/notifications/trigger/add/", trigger_form(team, owner, **fields)
    )

    assert response.status_code == 200  # the form again, with the error
    assert error in response.content.decode()
    assert not Trigger.objects.exists()


def test_the_admin_stores_a_rollup_the_api_accepts(staff_client):
    team, owner = TeamFactory(), UserFactory()
    delivery = {"mode": "rollup", "window_seconds": 300}

    response = staff_client.post(
        "/admin/notifications/trigger/add/",
        trigger_form(
            team, owner, delivery=delivery, channels=[{"type": "slack", "target": "#ops"}]
        ),
    )

    assert response.status_code == 302, response.content.decode()
    trigger = Trigger.objects.get()
    assert (trigger.delivery, trigger.channels) == (delivery, [{"type": "slack", "target": "#ops"}])
