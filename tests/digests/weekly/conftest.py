"""Fixtures for the weekly digest: a pinned week, a clean Redis keyspace for it, a world
of two organizations — one busy, one with nothing new — and a real ``celery -A config
worker`` subprocess with its own aiosmtpd server (``worker``, ``smtp``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from digests.weekly import activities, keys
from digests.weekly.types import Digest
from notifications.models import DigestCadence
from tests.digests.weekly.factories import (
    BackdatedDashboardFactory,
    CohortFactory,
    EventDefinitionFactory,
    ExperimentFactory,
    FeatureFlagFactory,
    PreferenceFactory,
    SurveyFactory,
)
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.servers.smtp import SMTPServer
from tests.servers.worker import celery_worker
from workspace.models import Experiment, Role, Team

NOW = datetime(2025, 3, 5, 10, 0, tzinfo=UTC)
"""A Wednesday in ISO week 2025-10: the digest covers Mon Feb 24 – Mon Mar 3 (exclusive)."""
DIGEST = Digest.for_week(NOW)
IN_WINDOW = datetime(2025, 2, 26, 12, 0, tzinfo=UTC)
BEFORE_WINDOW = datetime(2025, 2, 20, 12, 0, tzinfo=UTC)
AFTER_WINDOW = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The factories hash a password per user; PBKDF2's default cost dominates a world of
    a dozen users otherwise."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def week_keys(client) -> list[str]:
    return sorted(client.scan_iter(match=keys.key_pattern(DIGEST.key), count=1000))


@pytest.fixture
def weekly_redis():
    """The real Redis at ``REDIS_URL``, without any key of the pinned week before and
    after the test."""
    client = activities.redis_client()
    for key in week_keys(client):
        client.delete(key)
    yield client
    for key in week_keys(client):
        client.delete(key)


@dataclass
class World:
    busy_org: object
    quiet_org: object
    web: Team
    app: Team
    quiet: Team
    alice: object  # web + app, owns a trigger nowhere
    bob: object  # web only
    carol: object  # web + app, digest cadence off
    dave: object  # web + app, app muted
    erin: object  # quiet org
    frank: object  # quiet org

    @property
    def busy_recipients(self) -> set[str]:
        return {self.alice.email, self.bob.email, self.dave.email}


def member(team, user, role=Role.MEMBER):
    MembershipFactory(team=team, user=user, role=role)
    return user


@pytest.fixture
def world(db) -> World:
    busy_org = OrganizationFactory(name="Acme")
    quiet_org = OrganizationFactory(name="Sleepy")
    web = TeamFactory(organization=busy_org, name="Web")
    app = TeamFactory(organization=busy_org, name="App")
    quiet = TeamFactory(organization=quiet_org, name="Quiet")

    alice = UserFactory(first_name="Alice")
    bob = UserFactory(first_name="Bob")
    carol = UserFactory(first_name="Carol")
    dave = UserFactory(first_name="Dave")
    erin = UserFactory(first_name="Erin")
    frank = UserFactory(first_name="Frank")
    for team in (web, app):
        member(team, alice, Role.OWNER)
        member(team, carol)
        member(team, dave)
    member(web, bob)
    member(quiet, erin, Role.OWNER)
    member(quiet, frank)
    PreferenceFactory(user=carol, digest_cadence=DigestCadence.OFF)
    PreferenceFactory(user=dave, muted_teams=[app])

    # Web: a new dashboard, an experiment launched, a new flag — and older things.
    BackdatedDashboardFactory(team=web, name="Revenue", created_by=alice, created_at=IN_WINDOW)
    BackdatedDashboardFactory(
        team=web, name="Old board", created_by=alice, created_at=BEFORE_WINDOW
    )
    BackdatedDashboardFactory(team=web, name="Too new", created_by=alice, created_at=AFTER_WINDOW)
    ExperimentFactory(team=web, name="Checkout v2", start_date=IN_WINDOW)
    FeatureFlagFactory(team=web, name="New nav", key="new-nav", created_at=IN_WINDOW)
    EventDefinitionFactory(
        team=web, name="checkout_error", volume_30_day=900, created_at=BEFORE_WINDOW
    )
    # App: an experiment completed, a survey launched, a cohort and an event definition.
    ExperimentFactory(
        team=app,
        name="Pricing page",
        status=Experiment.Status.COMPLETE,
        start_date=BEFORE_WINDOW,
        end_date=IN_WINDOW,
    )
    SurveyFactory(team=app, name="NPS", launched_at=IN_WINDOW)
    CohortFactory(team=app, name="Power users", count=1204, created_at=IN_WINDOW)
    EventDefinitionFactory(team=app, name="signup_started", created_at=IN_WINDOW)
    # Sleepy: only things from before the window.
    BackdatedDashboardFactory(team=quiet, name="Ancient", created_at=BEFORE_WINDOW)
    FeatureFlagFactory(team=quiet, name="Legacy", created_at=BEFORE_WINDOW)
    ExperimentFactory(team=quiet, name="Draft", status=Experiment.Status.DRAFT)

    return World(
        busy_org=busy_org,
        quiet_org=quiet_org,
        web=web,
        app=app,
        quiet=quiet,
        alice=alice,
        bob=bob,
        carol=carol,
        dave=dave,
        erin=erin,
        frank=frank,
    )


# -- a real worker ----------------------------------------------------------------------


@pytest.fixture
def smtp():
    """An aiosmtpd server for the worker subprocess (passed as ``EMAIL_URL``)."""
    with SMTPServer() as server:
        yield server


@pytest.fixture
def worker_concurrency() -> int:
    """Prefork children of the ``worker`` fixture; override the fixture to change it."""
    return 2


@pytest.fixture
def worker(transactional_db, smtp, tmp_path, worker_concurrency):
    """A worker subprocess on this test's database, Redis and SMTP server; tasks are
    published for real (eager mode off) while it runs. Yields the path of its log."""
    with celery_worker(
        tmp_path,
        concurrency=worker_concurrency,
        include=("digests.weekly.tasks",),
        env={"EMAIL_URL": f"smtp://{smtp.host}:{smtp.port}"},
    ) as running:
        yield running.log_path
