"""What the notification center says about who did something, rendered by the server from
a notification the real pipeline wrote (API edit → activity → Kafka → consumer)."""

from __future__ import annotations

import re

import pytest

from notifications.models import Category
from tests.factories import InsightFactory, MembershipFactory, UserFactory
from tests.frontend.conftest import NotificationFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _item_text(html: str) -> str:
    """The first inbox row's title line as a person reads it (tags dropped, spaces folded)."""
    title = re.search(r'<p class="title">(.*?)</p>', html, re.S)
    assert title, html
    return " ".join(re.sub(r"<[^>]+>", " ", title.group(1)).split())


def test_the_actor_is_named_once(client, team, member_of, api_client, drain):
    ada = member_of(team, username="ada")
    insight = InsightFactory(team=team, created_by=ada, name="Weekly revenue")
    bob = MembershipFactory(
        user=UserFactory(username="bob", first_name="Bob", last_name="Admin"), team=team
    ).user
    api_client.force_authenticate(bob)
    response = api_client.patch(
        f"/api/insights/{insight.pk}/", {"name": "Weekly revenue (EUR)"}, format="json"
    )
    assert response.status_code == 200, response.content
    drain(expected=2)  # the insight's "created" and Bob's edit

    client.force_login(ada)
    text = _item_text(client.get("/").content.decode())
    assert text.startswith("Unread: Bob Admin edited insight"), text
    assert text.count("Bob Admin") == 1, text


def test_an_announcement_names_its_author_once(client, team, member_of):
    ada = member_of(team, username="ada")
    NotificationFactory(
        recipient=ada,
        team=team,
        category=Category.ANNOUNCEMENT,
        title="Maintenance on Sunday",
        actor_name="Bob Admin",
        url="",
    )
    client.force_login(ada)
    html = client.get("/").content.decode()
    assert _item_text(html) == "Unread: Maintenance on Sunday"
    assert html.count("Bob Admin") == 1
