"""Walking a list's ``next`` links visits every row exactly once and ends, however many rows
share a timestamp (a batch import, a replay, a fan-out written in one statement): the
cursor is a position in the list's unique order, not a timestamp plus a count of ties."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import Category, Delivery, Notification
from tests.factories import MembershipFactory, TeamFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

CROWD = 1_200  # more ties than DRF's CursorPagination counts (offset_cutoff = 1,000)
_keys = itertools.count()


def _walk(client, url: str, params: dict | None = None, *, link: str = "next") -> list[list]:
    """The pages a list gives, following ``link`` until it is null (bounded, so a cursor
    that never moves fails instead of looping): each page's ids, and the response last seen."""
    response = client.get(url, params or {})
    pages: list[list] = []
    for _ in range(200):
        assert response.status_code == 200, response.content
        page = response.json()
        pages.append([row["id"] for row in page["results"]])
        if page[link] is None:
            return pages
        response = client.get(page[link])
    seen = [i for ids in pages for i in ids]
    pytest.fail(f"a {link} link after 200 pages: {len(seen)} rows, {len(set(seen))} distinct")


def _ids(client, url: str, params: dict | None = None) -> list[int]:
    return [i for ids in _walk(client, url, params) for i in ids]


@pytest.fixture
def user(team, member_of):
    return member_of(team)


@pytest.fixture
def client(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def test_the_inbox_pages_through_a_crowd_at_one_timestamp(client, user, team):
    other_team = TeamFactory(organization=team.organization)
    MembershipFactory(user=user, team=other_team)
    at = timezone.now() - timedelta(hours=1)

    def row(i: int, when, **fields) -> Notification:
        return Notification(
            recipient=user,
            team=other_team if i % 3 == 0 else team,
            category=Category.ALERT if i % 2 else Category.ACTIVITY,
            title=f"imported #{i}",
            dedup_key=f"paging:{user.pk}:{next(_keys)}",
            first_seen_at=when,
            last_seen_at=when,
            read_at=when if i % 4 == 0 else None,
            **fields,
        )

    crowd = [row(i, at) for i in range(CROWD)]
    newer = [row(i, at + timedelta(seconds=i + 1)) for i in range(30)]
    older = [row(i, at - timedelta(seconds=i + 1)) for i in range(30)]
    Notification.objects.bulk_create(crowd + newer + older, batch_size=1_000)
    expected = list(
        Notification.objects.filter(recipient=user)
        .order_by("-last_seen_at", "-id")
        .values_list("id", flat=True)
    )

    pages = _walk(client, "/api/notifications/")
    assert [i for ids in pages for i in ids] == expected  # each once, newest first
    assert {len(ids) for ids in pages[:-1]} == {50}

    # …and back: from the last page, ``previous`` gives the same pages in reverse.
    last = client.get("/api/notifications/").json()
    while last["next"]:
        last = client.get(last["next"]).json()
    back = _walk(client, last["previous"], link="previous")
    assert back == pages[-2::-1]

    for params, rows in [
        ({"unread": "true"}, Notification.objects.filter(read_at__isnull=True)),
        ({"team": str(team.pk)}, Notification.objects.filter(team=team)),
        ({"category": Category.ALERT}, Notification.objects.filter(category=Category.ALERT)),
    ]:
        wanted = list(rows.order_by("-last_seen_at", "-id").values_list("id", flat=True))
        assert _ids(client, "/api/notifications/", params) == wanted, params


def test_deliveries_page_through_a_fan_out_written_at_once(client, user, team):
    Delivery.objects.bulk_create(
        Delivery(
            team=team,
            recipient=user,
            channel="email",
            destination=user.email,
            idempotency_key=f"paging:{next(_keys)}",
        )
        for _ in range(CROWD)
    )
    Delivery.objects.filter(recipient=user).update(created_at=timezone.now())
    expected = list(
        Delivery.objects.filter(recipient=user).order_by("-id").values_list("id", flat=True)
    )
    assert _ids(client, "/api/deliveries/") == expected


@pytest.mark.parametrize(
    "cursor",
    ["not-a-cursor", "e30=", "WzEsMl0=", "eyJwIjogWzFdfQ==", "eyJwIjogWyJ4IiwgMV19"],
    ids=["not base64 json", "{}", "[1,2]", "one value", "not a time"],
)
def test_a_cursor_that_is_not_one_is_a_404(client, cursor):
    response = client.get("/api/notifications/", {"cursor": cursor})
    assert response.status_code == 404, response.content
