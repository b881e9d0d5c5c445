"""``manage.py seed_demo``: "Create (or refresh) the demo organization and print the demo
logins" (its help), and the README's "password ``notiflow-demo``: ``alice``
owner/superuser, ``bob``, ``carol``, ``dave``"."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from notifications.models import Trigger
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
