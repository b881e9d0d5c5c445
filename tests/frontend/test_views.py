"""The page views without a browser: login required, tenant scoping, what the server renders
first (badge, day groups, ×1,000, paging) and the pure helpers behind them."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from frontend.templatetags.frontend_tags import thousands
from frontend.views import (
    PAGE_SIZE,
    day_label,
    delivery_summary,
    group_by_day,
    unsubscribed_message,
)
from tests.factories import TriggerFactory, UserFactory
from tests.frontend.conftest import NotificationFactory

PAGES = ["/", "/triggers/", "/triggers/new/", "/preferences/"]


@pytest.fixture
def ada(team, member_of):
    return member_of(team, username="ada")


@pytest.mark.django_db
@pytest.mark.parametrize("url", [*PAGES, "/triggers/1/"])
def test_pages_require_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGES)
def test_every_page_renders_the_badge_and_the_nav(client, ada, team, url):
    NotificationFactory(recipient=ada, team=team)
    NotificationFactory(recipient=ada, team=team, read_at=timezone.now())
    client.force_login(ada)
    html = client.get(url).content.decode()
    assert 'data-unread-count="1"' in html
    assert '<a href="/triggers/"' in html and '<a href="/preferences/"' in html
    assert 'href="/admin/"' not in html


@pytest.mark.django_db
def test_staff_see_the_admin_link(client, ada):
    ada.is_staff = True
    ada.save()
    client.force_login(ada)
    assert 'href="/admin/"' in client.get("/").content.decode()


@pytest.mark.django_db
def test_another_orgs_trigger_is_not_found(client, ada, team):
    theirs = TriggerFactory()  # another team, another organization
    mine = TriggerFactory(team=team, owner=ada)
    client.force_login(ada)
    assert client.get(f"/triggers/{theirs.pk}/").status_code == 404
    assert client.get(f"/triggers/{mine.pk}/").status_code == 200
    listing = client.get("/triggers/").content.decode()
    assert mine.name in listing and theirs.name not in listing


@pytest.mark.django_db
def test_center_shows_only_the_callers_notifications(client, ada, team):
    NotificationFactory(recipient=ada, team=team, title="Mine", count=1234)
    NotificationFactory(recipient=UserFactory(), team=team, title="Someone else's")
    client.force_login(ada)
    html = client.get("/").content.decode()
    assert "Mine" in html and "×1,234" in html
    assert "Someone else" not in html


@pytest.mark.django_db
def test_center_pages_back_without_repeating_rows(client, ada, team):
    now = timezone.now()
    for i in range(PAGE_SIZE + 5):
        # pairs share a timestamp, so the id breaks ties across the page boundary
        at = now - timedelta(minutes=i // 2)
        NotificationFactory(recipient=ada, team=team, title=f"n{i:03d}", last_seen_at=at)
    client.force_login(ada)
    first = client.get("/")
    older = first.context["older"]
    second = client.get(f"/?{older}")
    ids = [n.id for day in first.context["days"] for n in day.notifications]
    more = [n.id for day in second.context["days"] for n in day.notifications]
    assert len(ids) == PAGE_SIZE and len(more) == 5
    assert not set(ids) & set(more)
    assert second.context["older"] is None


def test_day_labels():
    today = date(2026, 3, 12)  # a Thursday
    assert day_label(today, today) == "Today"
    assert day_label(date(2026, 3, 11), today) == "Yesterday"
    assert day_label(date(2026, 3, 9), today) == "Monday"
    assert day_label(date(2026, 2, 1), today) == "Sunday, 1 February"
    assert day_label(date(2025, 12, 31), today) == "31 December 2025"


def test_days_follow_the_users_timezone():
    class Row:
        def __init__(self, at):
            self.last_seen_at = at

    now = datetime(2026, 3, 12, 10, 0, tzinfo=UTC)
    late = Row(datetime(2026, 3, 11, 23, 30, tzinfo=UTC))  # 00:30 in Berlin
    berlin = group_by_day([late], tz=zoneinfo.ZoneInfo("Europe/Berlin"), now=now)
    utc = group_by_day([late], tz=zoneinfo.ZoneInfo("UTC"), now=now)
    assert [d.label for d in berlin] == ["Today"]
    assert [d.label for d in utc] == ["Yesterday"]


def test_small_helpers():
    assert thousands(1000) == "1,000" and thousands(1234567) == "1,234,567"
    assert unsubscribed_message("alert:email") == "You're unsubscribed from alert emails."
    assert unsubscribed_message("digest:slack") == "You're unsubscribed from digest Slack messages."
    assert (
        unsubscribed_message("alert") is None
        and unsubscribed_message("alert:carrier_pigeon") is None
    )
    assert delivery_summary({"mode": "rollup", "window_seconds": 300}) == "Roll-up every 5 min"
    assert delivery_summary({"mode": "digest"}) == "Digest only"
    assert delivery_summary({}) == "Instant"


@pytest.mark.django_db
def test_center_pages_through_a_crowd_at_one_timestamp(client, ada, team):
    """The page's keyset (``before`` + ``before_id``) holds past DRF's 1,000 ties too."""
    at = timezone.now()
    made = NotificationFactory.create_batch(1_200, recipient=ada, team=team, last_seen_at=at)
    client.force_login(ada)
    seen: list[int] = []
    query = ""
    for _ in range(100):
        response = client.get(f"/?{query}")
        seen += [n.id for day in response.context["days"] for n in day.notifications]
        query = response.context["older"]
        if query is None:
            break
    assert seen == sorted((n.id for n in made), reverse=True)
