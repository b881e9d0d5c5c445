"""Fixtures for the digest tests: a clean Redis namespace and people on a digest schedule.
The SMTP and Telegram servers come from ``tests.servers.fixtures`` (a plugin of the root
conftest)."""

from __future__ import annotations

import pytest

from tests.digests.factories import PreferenceFactory, UserProfileFactory
from tests.factories import MembershipFactory, TeamFactory, UserFactory


@pytest.fixture(autouse=True)
def _redis_namespace(settings):
    """Digest keys live under the test's own topic prefix (tests/conftest.py makes it
    unique); delete them afterwards so the shared Redis db does not fill up."""
    from digests.history import client_for

    url, prefix = settings.REDIS_URL, settings.NOTIFLOW_TOPIC_PREFIX
    yield
    client = client_for(url)
    for key in client.scan_iter(match=f"{prefix}:digest:*", count=500):
        client.delete(key)


@pytest.fixture
def subscriber(db):
    """A member of a team on a digest schedule: ``subscriber(tz="Europe/Berlin",
    cadence="daily", hour=9, team=None)`` → (user, team)."""

    def make(*, tz="UTC", cadence="daily", hour=9, team=None, **user_fields):
        team = team or TeamFactory()
        user = UserFactory(**user_fields)
        MembershipFactory(user=user, team=team)
        UserProfileFactory(user=user, timezone=tz)
        PreferenceFactory(user=user, digest_cadence=cadence, digest_hour=hour)
        return user, team

    return make
