"""The build and send phases cost a fixed number of queries per chunk or batch, not per
user; the beat entries are installed by migrate."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import PeriodicTask

from digests.beat import PERIODIC
from digests.builder import digest_build
from digests.sender import digest_send
from digests.weekly.tasks import PERIODIC as WEEKLY_ORG_DIGEST
from digests.windows import Period
from notifications.sending import SendPolicy
from tests.digests.factories import NotificationFactory
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 29, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 30, 9, 30, tzinfo=UTC)


def queries(action) -> int:
    with CaptureQueriesContext(connection) as captured:
        action()
    return len(captured.captured_queries)


def build_and_send(now) -> tuple[int, int]:
    build = queries(lambda: digest_build(period=Period.DAILY, now=now))
    send = queries(lambda: digest_send(now=now, policy=SendPolicy(batch_size=100)))
    return build, send


@pytest.mark.integration
def test_queries_do_not_grow_with_users(subscriber, smtp_server):
    team = TeamFactory()
    users = [subscriber(team=team)[0] for _ in range(10)]
    for user in users:
        NotificationFactory.create_batch(2, recipient=user, team=team, at=DAY)
    small = build_and_send(NOW)

    users += [subscriber(team=team)[0] for _ in range(60)]
    for user in users:
        NotificationFactory.create_batch(2, recipient=user, team=team, at=DAY + timedelta(days=1))
    large = build_and_send(NOW + timedelta(days=1))

    assert large == small
    assert len(smtp_server.messages) == 10 + 70


def test_migrate_installs_the_beat_entries():
    installed = dict(PeriodicTask.objects.values_list("name", "task"))
    for item in (*PERIODIC, *WEEKLY_ORG_DIGEST):
        assert installed[item.name] == item.task


def test_workers_know_every_digest_task():
    from config.celery import app

    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    for item in (*PERIODIC, *WEEKLY_ORG_DIGEST):
        assert item.task in app.tasks
