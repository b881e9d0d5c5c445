"""Integration: quiet hours, do-not-disturb and critical passes, through the public path —
preferences set with the API, events ingested with ``POST /api/ingest/`` and drained by the
real consumer, mail at the aiosmtpd server, the release task run by hand with ``now``.

The consumer's clock is pinned (``EventProcessor(clock=…)``); sending and claims use the
real clock, as in production.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from notifications import rollup, stream
from notifications.attention import release_due
from notifications.delivery import delivery_send
from notifications.models import Delivery, DeliveryStatus, Notification
from notifications.processing import EventProcessor
from notifications.tasks import deliver, recover_deliveries, release_held
from tests.factories import MembershipFactory, TeamFactory, TriggerFactory, UserFactory
from tests.notifications.test_consumer import checkout_errors

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# 23:30 in Berlin on a winter night (UTC+1); quiet hours 22:00–07:00 end at 06:00 UTC.
NIGHT = datetime(2026, 12, 8, 22, 30, tzinfo=UTC)
MORNING = datetime(2026, 12, 9, 6, 0, 30, tzinfo=UTC)


def quiet_hours(api_client, user, start="22:00", end="07:00", zone="Europe/Berlin"):
    api_client.force_authenticate(user)
    response = api_client.put(
        "/api/preferences/",
        {"quiet_hours_start": start, "quiet_hours_end": end, "timezone": zone},
        format="json",
    )
    assert response.status_code == 200, response.content
    api_client.force_authenticate(None)


def ingest(api_client, team, name, n):
    batch = [{"event": name, "distinct_id": f"u{i}", "properties": {"i": i}} for i in range(n)]
    response = api_client.post(
        "/api/ingest/", {"api_key": team.api_token, "batch": batch}, format="json"
    )
    assert response.status_code == 202, response.content


def email_trigger(team, owner, event, **fields):
    return TriggerFactory(
        team=team,
        owner=owner,
        name=f"{event} alerts",
        config={"event": event},
        channels=[{"type": "in_app"}, {"type": "email"}],
        subscribers=[owner],
        **fields,
    )


def history(api_client, user):
    api_client.force_authenticate(user)
    response = api_client.get("/api/deliveries/")
    api_client.force_authenticate(None)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_pushes_inside_quiet_hours_are_held_and_released_as_one_summary(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    quiet_hours(api_client, alice)
    email_trigger(team, alice, "checkout_error")
    email_trigger(team, alice, "payment_failed", delivery={"mode": "rollup", "window_seconds": 60})
    ingest(api_client, team, "checkout_error", 9)
    ingest(api_client, team, "payment_failed", 5)
    drain(expected=14, processor=EventProcessor(clock=lambda: NIGHT))
    for delivery_id in rollup.flush_due(now=NIGHT + timedelta(seconds=61)):
        deliver(delivery_id)

    assert smtp_server.messages == []  # nothing pushed during the night
    assert Notification.objects.filter(recipient=alice).count() == 10  # in-app at once
    held = Delivery.objects.filter(recipient=alice, status=DeliveryStatus.HELD)
    assert held.count() == 10  # nine instant mails and one roll-up summary
    rows = history(api_client, alice)
    assert {r["status"] for r in rows} == {"held"}
    assert {r["reason"] for r in rows} == {"held: quiet hours until 07:00 Europe/Berlin"}

    recover_deliveries()  # the periodic re-enqueue does not send held rows either
    release_held(now=(MORNING - timedelta(minutes=1)).isoformat())  # 06:59: still quiet
    assert smtp_server.messages == []
    for _ in range(2):  # beat running twice sends one summary
        release_held(now=MORNING.isoformat())

    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["alice@example.com"]
    subject = mail.message["Subject"]
    assert "While you were away: 14 notifications — 9 × checkout_error, 5 × payment_failed" in (
        subject
    )
    text = mail.part("text/plain")
    assert "9 × checkout_error" in text and "5 × payment_failed" in text
    summary = Delivery.objects.get(recipient=alice, idempotency_key__startswith="release:")
    assert summary.status == DeliveryStatus.SENT
    assert set(Delivery.objects.filter(recipient=alice).values_list("status", flat=True)) == {
        DeliveryStatus.RELEASED,
        DeliveryStatus.SENT,
    }
    rows = {r["id"]: r for r in history(api_client, alice)}
    assert rows[summary.pk]["reason"].startswith("released: 10 held")
    released = [r for r in rows.values() if r["status"] == "released"]
    assert len(released) == 10 and {r["released_in"] for r in released} == {summary.pk}


def test_two_release_runs_at_once_and_a_run_killed_before_sending_send_one_summary(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    bob = member_of(team, email="bob@example.com")
    for user in (alice, bob):
        quiet_hours(api_client, user)
    trigger = email_trigger(team, alice, "checkout_error")
    trigger.subscribers.set([alice, bob])
    ingest(api_client, team, "checkout_error", 3)
    drain(expected=3, processor=EventProcessor(clock=lambda: NIGHT))

    start = threading.Barrier(2)
    made: list[list[int]] = []

    def run():
        start.wait()
        made.append(release_due(now=MORNING))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The runs committed their summaries and "died" before enqueueing a send: nothing went.
    assert sorted(i for ids in made for i in ids) == sorted(
        Delivery.objects.filter(idempotency_key__startswith="release:").values_list("id", flat=True)
    )
    assert smtp_server.messages == []
    assert release_due(now=MORNING + timedelta(minutes=5)) == []  # a third run: nothing left
    recover_deliveries()  # the periodic re-enqueue sends what the dead runs left queued
    recover_deliveries()
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "alice@example.com",
        "bob@example.com",
    ]
    assert all("3 × checkout_error" in m.message["Subject"] for m in smtp_server.messages)


@pytest.mark.parametrize(
    ("inside", "end", "outside"),
    [
        # Spring forward (29 March 2026): 07:00 CEST is 05:00 UTC, not 06:00.
        (
            datetime(2026, 3, 29, 4, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 5, 0, tzinfo=UTC),
            datetime(2026, 3, 28, 20, 30, tzinfo=UTC),  # 21:30 CET, before the night
        ),
        # Fall back (25 October 2026): 07:00 CET is 06:00 UTC, not 05:00.
        (
            datetime(2026, 10, 25, 5, 30, tzinfo=UTC),
            datetime(2026, 10, 25, 6, 0, tzinfo=UTC),
            datetime(2026, 10, 24, 19, 30, tzinfo=UTC),  # 21:30 CEST
        ),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_quiet_hours_follow_the_clock_across_a_dst_change(
    team, member_of, drain, smtp_server, api_client, inside, end, outside
):
    alice = member_of(team, email="alice@example.com")
    quiet_hours(api_client, alice)
    email_trigger(team, alice, "checkout_error")
    ingest(api_client, team, "checkout_error", 1)
    drain(expected=1, processor=EventProcessor(clock=lambda: outside))
    assert len(smtp_server.messages) == 1  # before 22:00 it goes at once

    ingest(api_client, team, "checkout_error", 1)
    drain(expected=1, processor=EventProcessor(clock=lambda: inside))
    [held] = Delivery.objects.filter(status=DeliveryStatus.HELD)
    assert held.held_until == end
    assert held.reason == "held: quiet hours until 07:00 Europe/Berlin"
    release_held(now=(end - timedelta(seconds=1)).isoformat())
    assert len(smtp_server.messages) == 1
    release_held(now=end.isoformat())
    assert len(smtp_server.messages) == 2
    assert "While you were away: 1 notification" in smtp_server.messages[1].message["Subject"]


def test_a_window_across_midnight_holds_before_and_after_midnight_until_its_end(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    quiet_hours(api_client, alice, start="23:00", end="06:30", zone="America/New_York")
    email_trigger(team, alice, "checkout_error")
    before_midnight = datetime(2026, 12, 9, 4, 30, tzinfo=UTC)  # 23:30 EST on the 8th
    after_midnight = datetime(2026, 12, 9, 7, 0, tzinfo=UTC)  # 02:00 EST on the 9th
    end = datetime(2026, 12, 9, 11, 30, tzinfo=UTC)  # 06:30 EST on the 9th
    for clock in (before_midnight, after_midnight):
        ingest(api_client, team, "checkout_error", 1)
        drain(expected=1, processor=EventProcessor(clock=lambda clock=clock: clock))
    assert smtp_server.messages == []
    assert set(Delivery.objects.values_list("held_until", flat=True)) == {end}
    ingest(api_client, team, "checkout_error", 1)
    drain(expected=1, processor=EventProcessor(clock=lambda: end))  # 06:30: over
    assert len(smtp_server.messages) == 1
    release_held(now=end.isoformat())
    assert len(smtp_server.messages) == 2
    assert "2 × checkout_error" in smtp_server.messages[1].message["Subject"]


def test_do_not_disturb_from_the_api_holds_lets_critical_through_and_ends_by_itself(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    admin = member_of(team, role="admin")
    email_trigger(team, alice, "checkout_error")
    outage = email_trigger(team, alice, "site_down")
    api_client.force_authenticate(admin)
    response = api_client.patch(f"/api/triggers/{outage.pk}/", {"critical": True}, format="json")
    assert response.status_code == 200 and response.json()["critical"] is True

    api_client.force_authenticate(alice)
    response = api_client.put("/api/preferences/dnd/", {"preset": "hour"}, format="json")
    assert response.status_code == 200, response.content
    until = datetime.fromisoformat(response.json()["dnd_until"])
    assert timedelta(minutes=59) < until - timezone.now() <= timedelta(hours=1)
    assert api_client.get("/api/preferences/").json()["dnd_until"] is not None
    api_client.force_authenticate(None)

    ingest(api_client, team, "checkout_error", 2)
    ingest(api_client, team, "site_down", 1)
    drain(expected=3)
    [critical] = smtp_server.messages  # the critical alert arrives at once, and says why
    assert "site_down" in critical.message["Subject"]
    assert "Critical: sent during your do not disturb" in critical.part("text/plain")
    rows = history(api_client, alice)
    shown = f"{until:%H:%M} UTC"  # alice has no zone of her own
    assert sorted(r["reason"] for r in rows) == [
        f"critical: sent during do not disturb (until {shown})",
        f"held: do not disturb until {shown}",
        f"held: do not disturb until {shown}",
    ]

    release_held(now=(until - timedelta(seconds=1)).isoformat())
    assert len(smtp_server.messages) == 1
    release_held(now=until.isoformat())  # it ends by itself
    assert len(smtp_server.messages) == 2
    assert "2 × checkout_error" in smtp_server.messages[1].message["Subject"]
    api_client.force_authenticate(alice)
    assert api_client.get("/api/preferences/dnd/").json()["dnd_until"] is not None  # not yet


def test_turning_do_not_disturb_off_releases_at_the_next_run(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    email_trigger(team, alice, "checkout_error")
    api_client.force_authenticate(alice)
    assert (
        api_client.put("/api/preferences/dnd/", {"preset": "morning"}, format="json").status_code
        == 200
    )
    ingest(api_client, team, "checkout_error", 1)
    drain(expected=1)
    assert smtp_server.messages == []
    response = api_client.delete("/api/preferences/dnd/")
    assert response.status_code == 200 and response.json()["dnd_until"] is None
    release_held()
    [mail] = smtp_server.messages
    assert "While you were away: 1 notification" in mail.message["Subject"]


def test_a_category_the_person_marks_critical_passes_quiet_hours(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    quiet_hours(api_client, alice)
    api_client.force_authenticate(alice)
    response = api_client.put(
        "/api/preferences/", {"critical_categories": ["alert"]}, format="json"
    )
    assert response.status_code == 200 and response.json()["critical_categories"] == ["alert"]
    email_trigger(team, alice, "checkout_error")
    ingest(api_client, team, "checkout_error", 1)
    drain(expected=1, processor=EventProcessor(clock=lambda: NIGHT))
    [mail] = smtp_server.messages
    assert "Critical: sent during your quiet hours (until 07:00 Europe/Berlin)" in mail.part(
        "text/plain"
    )


def test_only_an_admin_of_the_organization_marks_a_trigger_critical(team, member_of, api_client):
    owner = member_of(team)
    trigger = email_trigger(team, owner, "checkout_error")
    other_org_admin = MembershipFactory(team=TeamFactory(), role="admin").user

    api_client.force_authenticate(owner)  # the trigger's owner, a plain member
    response = api_client.patch(f"/api/triggers/{trigger.pk}/", {"critical": True}, format="json")
    assert response.status_code == 400
    assert "critical" in response.json()
    response = api_client.post(
        "/api/triggers/",
        {
            "team": team.pk,
            "name": "Mine",
            "kind": "event",
            "config": {"event": "x"},
            "critical": True,
        },
        format="json",
    )
    assert response.status_code == 400 and "critical" in response.json()
    api_client.force_authenticate(other_org_admin)
    response = api_client.patch(f"/api/triggers/{trigger.pk}/", {"critical": True}, format="json")
    assert response.status_code == 404
    trigger.refresh_from_db()
    assert trigger.critical is False


def test_nobody_else_sees_a_persons_held_items_or_why(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    owner = member_of(team)
    quiet_hours(api_client, alice)
    trigger = email_trigger(team, owner, "checkout_error")
    trigger.subscribers.set([alice])
    stranger = MembershipFactory(team=TeamFactory(), user=UserFactory()).user
    ingest(api_client, team, "checkout_error", 1)
    drain(expected=1, processor=EventProcessor(clock=lambda: NIGHT))

    assert history(api_client, stranger) == []
    [seen_by_owner] = history(api_client, owner)  # the trigger's owner sees it was held
    assert seen_by_owner["status"] == "held"
    assert seen_by_owner["reason"] == "held for the recipient's quiet time"
    assert seen_by_owner["held_until"] is None and seen_by_owner["destination"] == ""
    release_held(now=MORNING.isoformat())
    assert [r["status"] for r in history(api_client, owner)] == ["released"]  # no summary
    assert len(history(api_client, alice)) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"until": "2020-01-01T00:00:00Z"}, "until"),
        ({"until": (datetime.now(UTC) + timedelta(days=31)).isoformat()}, "until"),
        ({"preset": "hour", "until": "2030-01-01T00:00:00Z"}, "until"),
        ({}, "until"),
        ({"preset": "forever"}, "preset"),
    ],
)
def test_do_not_disturb_refuses_the_past_beyond_30_days_and_unknown_presets(
    member_of, team, api_client, body, field
):
    api_client.force_authenticate(member_of(team))
    response = api_client.put("/api/preferences/dnd/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_critical_categories_name_a_bad_entry(member_of, team, api_client):
    api_client.force_authenticate(member_of(team))
    response = api_client.put(
        "/api/preferences/", {"critical_categories": ["alert", "digest"]}, format="json"
    )
    assert response.status_code == 400
    assert "critical_categories[1]" in response.json() or "critical_categories" in str(
        response.json()
    )


def test_do_not_disturb_until_a_picked_time(member_of, team, api_client):
    user = member_of(team)
    api_client.force_authenticate(user)
    picked = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    response = api_client.put("/api/preferences/dnd/", {"until": picked.isoformat()}, format="json")
    assert response.status_code == 200
    assert datetime.fromisoformat(response.json()["dnd_until"]) == picked


def test_a_trigger_muted_while_its_pushes_are_held_is_not_in_the_summary(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    owner = member_of(team)
    quiet_hours(api_client, alice)
    noisy = email_trigger(team, owner, "checkout_error")
    noisy.subscribers.set([owner, alice])
    email_trigger(team, alice, "payment_failed")
    ingest(api_client, team, "checkout_error", 2)
    ingest(api_client, team, "payment_failed", 1)
    drain(expected=3, processor=EventProcessor(clock=lambda: NIGHT))

    api_client.force_authenticate(alice)
    note = Notification.objects.filter(recipient=alice, trigger=noisy).first()
    assert api_client.post(f"/api/notifications/{note.pk}/mute_trigger/").status_code == 200
    release_held(now=MORNING.isoformat())
    [mail] = [m for m in smtp_server.messages if m.rcpt_tos == ["alice@example.com"]]
    assert "While you were away: 1 notification — 1 × payment_failed" in mail.message["Subject"]
    reasons = {r["reason"] for r in history(api_client, alice) if r["status"] == "skipped"}
    assert reasons == {"skipped: you stopped this trigger notifying you while it was held"}


def test_what_the_person_switched_off_or_muted_while_held_is_not_in_the_summary(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    other = TeamFactory(organization=team.organization, name="Other")
    MembershipFactory(team=other, user=alice)
    quiet_hours(api_client, alice)
    email_trigger(team, alice, "checkout_error")
    elsewhere = email_trigger(other, alice, "payment_failed")
    ingest(api_client, team, "checkout_error", 2)
    ingest(api_client, other, "payment_failed", 1)
    drain(expected=3, processor=EventProcessor(clock=lambda: NIGHT))
    assert Delivery.objects.filter(status=DeliveryStatus.HELD).count() == 3

    api_client.force_authenticate(alice)
    response = api_client.put("/api/preferences/", {"muted_teams": [other.pk]}, format="json")
    assert response.status_code == 200, response.content
    release_held(now=MORNING.isoformat())
    [mail] = smtp_server.messages
    assert "While you were away: 2 notifications — 2 × checkout_error" in mail.message["Subject"]
    [skipped] = [r for r in history(api_client, alice) if r["status"] == "skipped"]
    assert skipped["trigger"] == elsewhere.pk
    assert skipped["reason"] == "skipped: you muted Other while it was held"


def test_an_email_unsubscribe_while_held_drops_that_category_from_the_summary(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    quiet_hours(api_client, alice)
    email_trigger(team, alice, "checkout_error")
    ingest(api_client, team, "checkout_error", 2)
    drain(expected=2, processor=EventProcessor(clock=lambda: NIGHT))
    api_client.force_authenticate(alice)
    response = api_client.put(
        "/api/preferences/", {"channels": {"alert": {"email": False}}}, format="json"
    )
    assert response.status_code == 200, response.content
    release_held(now=MORNING.isoformat())
    assert smtp_server.messages == []
    assert {r["reason"] for r in history(api_client, alice)} == {
        "skipped: you switched alert by email off while it was held"
    }


def test_a_critical_push_replayed_before_it_was_sent_says_critical_once(
    team, member_of, drain, smtp_server, api_client
):
    alice = member_of(team, email="alice@example.com")
    quiet_hours(api_client, alice)
    api_client.force_authenticate(alice)
    api_client.put("/api/preferences/", {"critical_categories": ["alert"]}, format="json")
    email_trigger(team, alice, "checkout_error")
    events = checkout_errors(team, [500])
    smtp_server.answer_next("451 4.3.0 try again later")  # not sent yet: queued for a retry
    for _ in range(2):  # the batch replayed (a rebalance) while the retry waits
        stream.publish_events(events)
        drain(expected=1, processor=EventProcessor(clock=lambda: NIGHT))
    [delivery] = Delivery.objects.filter(recipient=alice)
    assert delivery.status == DeliveryStatus.QUEUED
    later = timezone.now() + timedelta(hours=2)
    assert delivery_send(delivery_id=delivery.pk, now=later).status == DeliveryStatus.SENT
    [mail] = smtp_server.messages
    assert mail.part("text/plain").count("Critical: sent during your quiet hours") == 1
