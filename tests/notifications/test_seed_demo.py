"""``manage.py seed_demo``: "Create (or refresh) the demo organization and print the demo
logins" (its help), and the README's "password ``notiflow-demo``: ``alice``
owner/superuser, ``bob``, ``carol``, ``dave``"."""

from __future__ import annotations

import io
import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.models.signals import post_save
from django.test import Client
from rest_framework.test import APIClient

from notifications import stream
from notifications.models import Notification, Outbox, Trigger
from tests.notifications.test_delivery import wait_for
from workspace.models import Dashboard, Insight, Membership, Organization

pytestmark = pytest.mark.django_db

PEOPLE = ("alice", "bob", "carol", "dave")


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    models = (get_user_model(), Organization, Membership, Dashboard, Insight, Trigger)
    return {model.__name__: model.objects.count() for model in models}


def test_seeding_twice_refreshes_and_every_printed_login_signs_in():
    first = seed()
    before = counts()
    second = seed()
    assert counts() == before  # a refresh, not a second copy
    assert before["Organization"] == 1 and before["User"] == len(PEOPLE)
    assert "password 'notiflow-demo'" in second
    for username in PEOPLE:
        assert f"  {username} " in first and f"  {username} " in second
        browser = Client()
        response = browser.post(
            "/accounts/login/", {"username": username, "password": "notiflow-demo"}
        )
        assert response.status_code == 302, (username, response.status_code)
    alice = get_user_model().objects.get(username="alice")
    assert alice.is_superuser and alice.is_staff
    assert not get_user_model().objects.filter(is_superuser=True).exclude(pk=alice.pk).exists()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_first_login_shows_notifications_of_several_kinds_and_a_second_seed_adds_none(
    api_client, drain
):
    """The demo's history goes the real way — outbox, relay, Kafka, the consumer — and lands
    in each demo person's center; seeding again queues nothing and changes no notification."""
    seed()
    queued = Outbox.objects.count()
    stream.relay_outbox()  # the commit's own nudge (run inline here) may have published them
    assert not Outbox.objects.filter(published_at__isnull=True).exists()
    drain(expected=queued)

    people = get_user_model().objects.in_bulk(PEOPLE, field_name="username")
    centers = {}
    for username, user in people.items():
        api_client.force_authenticate(user)
        response = api_client.get("/api/notifications/")
        assert response.status_code == 200
        centers[username] = response.json()["results"]
    for username, items in centers.items():
        kinds = {item["category"] for item in items}
        assert {"activity", "alert"} <= kinds, (username, [i["title"] for i in items])
    burst = [i for i in centers["alice"] if i["category"] == "alert"]
    assert [i["count"] for i in burst] == [40]  # one rolled-up notification, not forty
    assert any("Signup spike" in i["title"] for i in centers["bob"])

    before = sorted(Notification.objects.values_list("dedup_key", "count", "read_at"))
    assert "Demo history" not in seed()
    assert Outbox.objects.count() == queued
    assert stream.relay_outbox() == 0
    assert sorted(Notification.objects.values_list("dedup_key", "count", "read_at")) == before


def backends_waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_refresh_beside_an_api_edit_of_its_triggers_is_no_deadlock():
    """``seed_demo`` refreshes its three triggers in one transaction while their owner edits
    the second through the API. The refresh is held after its first trigger until the edit
    waits for a lock; then both go on, and both finish: every trigger write takes the
    trigger revision's row before any trigger row."""
    seed()
    bob = get_user_model().objects.get(username="bob")
    spike = Trigger.objects.get(name="Signup spike")
    seeder_paused, edit_waits = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def hold_the_refresh(sender, instance, **kwargs):
        if threading.current_thread().name == "seed" and instance.name != spike.name:
            seeder_paused.set()
            edit_waits.wait(timeout=30)

    def refresh():
        try:
            seed()
            outcome["seed"] = "done"
        except Exception as exc:  # what the test reports
            outcome["seed"] = exc
        finally:
            connection.close()

    def edit():
        client = APIClient()
        client.force_authenticate(bob)
        try:
            outcome["edit"] = client.patch(
                f"/api/triggers/{spike.pk}/", {"enabled": False}, format="json"
            ).status_code
        except Exception as exc:
            outcome["edit"] = exc
        finally:
            connection.close()

    post_save.connect(hold_the_refresh, sender=Trigger, dispatch_uid="hold-the-refresh")
    try:
        seeder = threading.Thread(target=refresh, name="seed")
        seeder.start()
        assert seeder_paused.wait(timeout=30)
        editor = threading.Thread(target=edit, name="edit")
        editor.start()
        assert wait_for(lambda: backends_waiting_for_a_lock() >= 1)
        edit_waits.set()
        seeder.join(timeout=60)
        editor.join(timeout=60)
    finally:
        edit_waits.set()
        post_save.disconnect(dispatch_uid="hold-the-refresh", sender=Trigger)

    assert outcome == {"seed": "done", "edit": 200}
    assert not Trigger.objects.get(pk=spike.pk).enabled
