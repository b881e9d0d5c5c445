"""/api/notifications/ actions beyond read: seen (the badge), archive, the unread count's
ETag, "why am I seeing this", "mute this trigger"; and /api/deliveries/ ("my deliveries")."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from api.notifications import NotificationSerializer
from notifications.models import Delivery, Notification
from tests.factories import TeamFactory, TriggerFactory

pytestmark = pytest.mark.django_db

URL = "/api/notifications/"
_keys = itertools.count()


def notify(recipient, team, **fields) -> Notification:
    """One in-app row with only what a test cares about set."""
    now = timezone.now()
    defaults = {
        "category": "alert",
        "title": "checkout_error",
        "dedup_key": f"test:{next(_keys)}",
        "first_seen_at": now,
        "last_seen_at": now,
    }
    return Notification.objects.create(recipient=recipient, team=team, **{**defaults, **fields})


def deliver(team, **fields) -> Delivery:
    defaults = {"idempotency_key": f"test:{next(_keys)}", "channel": "email", "destination": ""}
    return Delivery.objects.create(team=team, **{**defaults, **fields})


@pytest.fixture
def user(team, member_of):
    return member_of(team)


@pytest.fixture
def client(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def ids(response):
    return [row["id"] for row in response.json()["results"]]


# --- seen, archive ----------------------------------------------------------------------


def test_seen_marks_one_and_seen_all_the_rest(client, user, team):
    first, second, third = (notify(user, team) for _ in range(3))
    assert client.post(f"{URL}{first.pk}/seen/").status_code == 204
    first.refresh_from_db()
    assert first.seen_at is not None and first.read_at is None

    stamped = first.seen_at
    assert client.post(f"{URL}{first.pk}/seen/").status_code == 204  # idempotent
    first.refresh_from_db()
    assert first.seen_at == stamped

    assert client.post(f"{URL}seen_all/").json() == {"marked": 2}
    assert not Notification.objects.filter(seen_at__isnull=True).exists()
    assert client.get(f"{URL}unread_count/").json() == {"unread": 3}  # seen is not read
    assert {second.pk, third.pk} <= set(ids(client.get(URL)))


def test_archive_hides_from_the_list_and_the_count(client, user, team):
    kept, archived = notify(user, team), notify(user, team)
    assert client.post(f"{URL}{archived.pk}/archive/").status_code == 204
    assert ids(client.get(URL)) == [kept.pk]
    assert ids(client.get(URL, {"archived": "true"})) == [archived.pk]
    assert client.get(f"{URL}unread_count/").json() == {"unread": 1}


def test_actions_on_someone_elses_notification_are_404(client, team, member_of):
    theirs = notify(member_of(team), team)
    for action in ("seen", "archive", "read", "mute_trigger"):
        assert client.post(f"{URL}{theirs.pk}/{action}/").status_code == 404, action
    assert client.get(f"{URL}{theirs.pk}/why/").status_code == 404
    assert client.post(f"{URL}not-a-number/seen/").status_code == 404
    theirs.refresh_from_db()
    assert (theirs.seen_at, theirs.archived_at, theirs.read_at) == (None, None, None)


def test_list_rejects_malformed_filters(client):
    assert client.get(URL, {"team": "abc"}).json() == {"team": ["must be an id"]}
    assert client.get(URL, {"unread": "maybe"}).status_code == 400
    assert "category" in client.get(URL, {"category": "bogus\x00"}).json()


def test_list_rows_are_what_the_schema_documents(client, user, team):
    """The list builds its rows by hand; each must equal what the documented
    ``NotificationSerializer`` gives for the same row, every field set or null."""
    now = timezone.now()
    full = notify(
        user,
        team,
        body="Body",
        url="https://example.com/x",
        actor_name="Bob",
        trigger=TriggerFactory(team=team, owner=user),
        event_id=uuid.uuid4(),
        event_name="checkout_error",
        reason="You own it.",
        count=3,
        read_at=now,
        seen_at=now,
        snoozed_until=now - timedelta(minutes=1),
        last_seen_at=now + timedelta(microseconds=1),
    )
    bare = notify(user, team, last_seen_at=now - timedelta(hours=1))
    archived = notify(user, team, archived_at=now)
    expected = [NotificationSerializer(row).data for row in (full, bare)]
    assert client.get(URL).json()["results"] == expected
    assert client.get(URL, {"archived": "true"}).json()["results"] == [
        NotificationSerializer(archived).data
    ]


# --- the unread count's ETag ------------------------------------------------------------


def test_unread_count_answers_304_until_something_changes(client, user, team):
    first = notify(user, team)
    response = client.get(f"{URL}unread_count/")
    etag = response["ETag"]
    assert response.json() == {"unread": 1} and etag

    unchanged = client.get(f"{URL}unread_count/", HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304
    assert unchanged["ETag"] == etag

    notify(user, team)  # a new row changes it
    changed = client.get(f"{URL}unread_count/", HTTP_IF_NONE_MATCH=etag)
    assert (changed.status_code, changed.json()) == (200, {"unread": 2})

    client.post(f"{URL}{first.pk}/read/")  # reading changes it
    after_read = client.get(f"{URL}unread_count/", HTTP_IF_NONE_MATCH=changed["ETag"])
    assert (after_read.status_code, after_read.json()) == (200, {"unread": 1})

    # a rolled-up row growing moves last_seen_at, which changes it too
    Notification.objects.filter(pk=first.pk).update(
        count=5, last_seen_at=timezone.now() + timedelta(seconds=1)
    )
    assert (
        client.get(f"{URL}unread_count/", HTTP_IF_NONE_MATCH=after_read["ETag"]).status_code == 200
    )


def test_unread_count_etag_is_per_user(api_client, team, member_of):
    alice, bob = member_of(team), member_of(team)
    api_client.force_authenticate(alice)
    etag = api_client.get(f"{URL}unread_count/")["ETag"]
    api_client.force_authenticate(bob)
    assert api_client.get(f"{URL}unread_count/", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_unread_count_runs_a_constant_number_of_queries(
    client, user, team, django_assert_max_num_queries
):
    for _ in range(30):
        notify(user, team)
    with django_assert_max_num_queries(4):  # teams, then count + newest row; the savepoint
        assert client.get(f"{URL}unread_count/").json() == {"unread": 30}


# --- why --------------------------------------------------------------------------------


def test_why_names_the_trigger_its_rule_and_the_event(client, user, team):
    trigger = TriggerFactory(
        team=team,
        owner=user,
        name="Big checkouts",
        config={
            "event": "checkout_error",
            "filters": [{"property": "amount", "operator": "gt", "value": 100}],
        },
    )
    event_id = uuid.uuid4()
    row = notify(
        user,
        team,
        trigger=trigger,
        event_id=event_id,
        event_name="checkout_error",
        reason="You subscribe to the trigger “Big checkouts”.",
    )
    why = client.get(f"{URL}{row.pk}/why/").json()
    assert why == {
        "trigger": {
            "id": trigger.pk,
            "name": "Big checkouts",
            "kind": "event",
            "config": trigger.config,
        },
        "rule": "When “checkout_error” is seen where amount > 100",
        "event": {"id": str(event_id), "name": "checkout_error"},
        "reason": "You subscribe to the trigger “Big checkouts”.",
    }


def test_why_for_activity_has_no_trigger(client, user, team):
    row = notify(user, team, category="activity", reason="You own this resource.")
    why = client.get(f"{URL}{row.pk}/why/").json()
    assert why["trigger"] is None
    assert "something you own or follow" in why["rule"]
    assert why["reason"] == "You own this resource."


def test_why_for_a_deleted_trigger_or_an_announcement_has_no_trigger(client, user, team):
    """The schema's promise: null for built-in activity, announcements and deleted triggers."""
    trigger = TriggerFactory(team=team, owner=user, config={"event": "checkout_error"})
    fired = notify(user, team, trigger=trigger, reason="You subscribe to the trigger.")
    announced = notify(user, team, category="announcement", reason="Sent to your organization.")
    trigger.delete()
    for row in (fired, announced):
        why = client.get(f"{URL}{row.pk}/why/").json()
        assert why["trigger"] is None, why
        assert why["rule"] and why["reason"] == row.reason


def test_why_is_not_found_for_a_team_the_caller_left(client, user):
    other_team = TeamFactory()
    trigger = TriggerFactory(team=other_team, config={"event": "secret_event"})
    row = notify(user, other_team, trigger=trigger)
    response = client.get(f"{URL}{row.pk}/why/")
    assert response.status_code == 404
    assert "secret_event" not in response.content.decode()


@pytest.mark.parametrize(
    ("kind", "config", "rule"),
    [
        (
            "event_count",
            {"event": "signup", "count": 5, "window_minutes": 10},
            "When “signup” is seen 5 times within 10 minutes",
        ),
        (
            "insight_threshold",
            {"insight_id": 7, "upper": 100, "lower": 10},
            "When insight #7 goes above 100 or goes below 10",
        ),
        (
            "cohort_membership",
            {"cohort_id": 3, "direction": "exit"},
            "When someone leaves cohort #3",
        ),
    ],
)
def test_why_describes_every_kind(client, user, team, kind, config, rule):
    trigger = TriggerFactory(team=team, owner=user, kind=kind, config=config)
    row = notify(user, team, trigger=trigger)
    assert client.get(f"{URL}{row.pk}/why/").json()["rule"] == rule


# --- mute this trigger ------------------------------------------------------------------


def test_mute_trigger_unsubscribes_the_caller_only(client, user, team, member_of):
    owner, teammate = member_of(team), member_of(team)
    trigger = TriggerFactory(team=team, owner=owner, subscribers=[user, teammate])
    row = notify(user, team, trigger=trigger)

    response = client.post(f"{URL}{row.pk}/mute_trigger/")
    assert response.json() == {"trigger": trigger.pk, "muted": True}
    assert set(trigger.subscribers.all()) == {teammate}
    assert client.post(f"{URL}{row.pk}/mute_trigger/").status_code == 200  # twice is fine


def test_the_owner_alone_cannot_mute_their_trigger(client, user, team):
    trigger = TriggerFactory(team=team, owner=user)  # no subscribers: the owner alone
    row = notify(user, team, trigger=trigger)
    response = client.post(f"{URL}{row.pk}/mute_trigger/")
    assert response.status_code == 400
    assert "disable or snooze" in response.json()["trigger"][0]
    trigger.refresh_from_db()
    assert trigger.enabled

    only_me = TriggerFactory(team=team, owner=user, subscribers=[user])
    sole = notify(user, team, trigger=only_me)
    assert client.post(f"{URL}{sole.pk}/mute_trigger/").status_code == 400


def test_mute_trigger_without_a_trigger_is_400(client, user, team):
    row = notify(user, team, category="activity")
    response = client.post(f"{URL}{row.pk}/mute_trigger/")
    assert response.status_code == 400
    assert "preferences" in response.json()["trigger"][0]


# --- my deliveries ----------------------------------------------------------------------


def test_my_deliveries_are_mine_and_my_triggers_newest_first(client, user, team, member_of):
    teammate = member_of(team)
    mine_trigger = TriggerFactory(team=team, owner=user)
    their_trigger = TriggerFactory(team=team, owner=teammate)
    to_me = deliver(team, recipient=user, destination=user.email, status="failed", last_error="550")
    slack = deliver(team, trigger=mine_trigger, channel="slack", destination="#alerts")
    email_to_teammate = deliver(
        team, trigger=mine_trigger, recipient=teammate, destination=teammate.email
    )
    deliver(team, trigger=their_trigger, recipient=teammate, destination=teammate.email)

    rows = client.get("/api/deliveries/").json()["results"]
    assert [r["id"] for r in rows] == [email_to_teammate.pk, slack.pk, to_me.pk]
    by_id = {r["id"]: r for r in rows}
    assert by_id[to_me.pk]["last_error"] == "550"
    assert by_id[to_me.pk]["destination"] == user.email
    assert by_id[slack.pk]["destination"] == "#alerts"
    assert by_id[email_to_teammate.pk]["destination"] == ""  # not my address to see
    assert by_id[email_to_teammate.pk]["recipient_name"] == teammate.username

    failed = client.get("/api/deliveries/", {"status": "failed"}).json()["results"]
    assert [r["id"] for r in failed] == [to_me.pk]
    assert client.get("/api/deliveries/", {"status": "lost"}).status_code == 400


def test_deliveries_are_cursor_paginated(client, user, team):
    for _ in range(55):
        deliver(team, recipient=user)
    first = client.get("/api/deliveries/").json()
    assert len(first["results"]) == 50 and first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 5


def test_deliveries_need_a_login(api_client):
    assert api_client.get("/api/deliveries/").status_code in (401, 403)


def test_a_snoozed_notification_leaves_the_list_and_the_badge_until_it_wakes(
    team, member_of, api_client
):
    from datetime import timedelta

    from django.utils import timezone

    from notifications.models import Notification

    user = member_of(team)
    now = timezone.now()
    note = Notification.objects.create(
        recipient=user,
        team=team,
        category="alert",
        title="Disk full",
        dedup_key="snooze-1",
        first_seen_at=now,
        last_seen_at=now,
    )
    api_client.force_authenticate(user)
    until = (now + timedelta(hours=2)).isoformat()
    assert (
        api_client.post(
            f"/api/notifications/{note.pk}/snooze/", {"until": until}, format="json"
        ).status_code
        == 204
    )
    assert api_client.get("/api/notifications/").json()["results"] == []
    assert api_client.get("/api/notifications/unread_count/").json() == {"unread": 0}
    past = (now - timedelta(minutes=1)).isoformat()
    bad = api_client.post(f"/api/notifications/{note.pk}/snooze/", {"until": past}, format="json")
    assert bad.status_code == 400 and "until" in bad.json()
    assert (
        api_client.post(
            f"/api/notifications/{note.pk}/snooze/", {"until": None}, format="json"
        ).status_code
        == 204
    )
    assert [n["id"] for n in api_client.get("/api/notifications/").json()["results"]] == [note.pk]


def test_notifications_of_a_team_you_left_disappear(team, member_of, api_client):
    from django.utils import timezone

    from notifications.models import Notification
    from workspace.models import Membership

    user = member_of(team)
    now = timezone.now()
    Notification.objects.create(
        recipient=user,
        team=team,
        category="alert",
        title="Old team",
        dedup_key="left-1",
        first_seen_at=now,
        last_seen_at=now,
    )
    api_client.force_authenticate(user)
    assert api_client.get("/api/notifications/unread_count/").json() == {"unread": 1}
    Membership.objects.filter(user=user, team=team).delete()
    assert api_client.get("/api/notifications/").json()["results"] == []
    assert api_client.get("/api/notifications/unread_count/").json() == {"unread": 0}
