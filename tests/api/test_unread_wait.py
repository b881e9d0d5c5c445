"""The badge's long-poll: ``GET /api/notifications/unread_count/?wait=N`` with a current
ETag is held open until the count or the newest row changes — a notification the consumer
stores, a read in another tab — and answers at once then; nothing else wakes it.

The periodic re-check is set far beyond each test's wait, so only the change signal can
answer 200 in time: a test whose signal failed would get a 304 at the end of its wait."""

from __future__ import annotations

import threading

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from notifications import live
from notifications.models import Notification
from tests.factories import TriggerFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

URL = "/api/notifications/unread_count/"


@pytest.fixture(autouse=True)
def _no_recheck(monkeypatch):
    monkeypatch.setattr(live, "RECHECK_SECONDS", 600.0)


def tab(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


class Waiting(threading.Thread):
    """A page's long-poll, in flight while the test acts."""

    def __init__(self, user, etag: str, wait: int):
        super().__init__(daemon=True)
        self.user, self.etag, self.wait = user, etag, wait
        self.response = None

    def run(self):
        self.response = tab(self.user).get(f"{URL}?wait={self.wait}", HTTP_IF_NONE_MATCH=self.etag)

    def answer(self):
        self.join(timeout=self.wait + 30)
        assert not self.is_alive()
        return self.response


def unread_row(recipient, team) -> Notification:
    now = timezone.now()
    return Notification.objects.create(
        recipient=recipient,
        team=team,
        category="alert",
        title="x",
        dedup_key=f"k:{recipient.pk}",
        first_seen_at=now,
        last_seen_at=now,
    )


def subscribed(user) -> None:
    """Until the waiter listens, a signal would go to no one (the test must not race it)."""
    from django.conf import settings

    client = live._client(settings.REDIS_URL)
    for _ in range(200):
        if client.pubsub_numsub(live.channel(user.pk))[0][1]:
            return
        threading.Event().wait(0.05)
    pytest.fail("the long-poll never subscribed")


def test_a_notification_the_consumer_stores_answers_the_waiting_badge(team, member_of, drain):
    ada = member_of(team)
    TriggerFactory(team=team, owner=ada, subscribers=[ada])
    first = tab(ada).get(URL)
    assert first.json() == {"unread": 0}

    waiting = Waiting(ada, first["ETag"], wait=20)
    waiting.start()
    subscribed(ada)
    ingested = tab(ada).post(
        "/api/ingest/",
        {
            "api_key": team.api_token,
            "batch": [
                {
                    "event": "checkout_error",
                    "distinct_id": "u1",
                    "timestamp": timezone.now().isoformat(),
                }
            ],
        },
        format="json",
    )
    assert ingested.status_code == 202, ingested.content
    drain(expected=1)
    assert Notification.objects.filter(recipient=ada).count() == 1

    response = waiting.answer()
    assert (response.status_code, response.json()) == (200, {"unread": 1})
    assert response["ETag"] != first["ETag"]


def test_reading_in_another_tab_answers_the_waiting_badge(team, member_of):
    ada = member_of(team)
    row = unread_row(ada, team)
    first = tab(ada).get(URL)
    assert first.json() == {"unread": 1}
    waiting = Waiting(ada, first["ETag"], wait=20)
    waiting.start()
    subscribed(ada)
    assert tab(ada).post(f"/api/notifications/{row.pk}/read/").status_code == 204
    response = waiting.answer()
    assert (response.status_code, response.json()) == (200, {"unread": 0})


def test_another_persons_change_does_not_wake_me_and_the_wait_ends_in_304(team, member_of):
    ada, bob = member_of(team), member_of(team)
    row = unread_row(bob, team)
    first = tab(ada).get(URL)
    waiting = Waiting(ada, first["ETag"], wait=2)
    waiting.start()
    subscribed(ada)
    assert tab(bob).post(f"/api/notifications/{row.pk}/read/").status_code == 204
    response = waiting.answer()
    assert response.status_code == 304
    assert response["ETag"] == first["ETag"]


def test_a_stale_etag_answers_at_once_without_waiting(team, member_of):
    ada = member_of(team)
    response = tab(ada).get(f"{URL}?wait=25", HTTP_IF_NONE_MATCH='"unread-stale"')
    assert (response.status_code, response.json()) == (200, {"unread": 0})


@pytest.mark.timeout(15)
def test_with_redis_down_the_wait_answers_at_once(team, member_of, settings):
    ada = member_of(team)
    first = tab(ada).get(URL)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = tab(ada).get(f"{URL}?wait=25", HTTP_IF_NONE_MATCH=first["ETag"])
    assert response.status_code == 304


@pytest.mark.parametrize("wait", ["26", "-1", "abc", "99999999999999999999"])
def test_a_wait_out_of_bounds_is_a_400_naming_it(team, member_of, wait):
    response = tab(member_of(team)).get(f"{URL}?wait={wait}")
    assert response.status_code == 400
    assert list(response.json()) == ["wait"]
