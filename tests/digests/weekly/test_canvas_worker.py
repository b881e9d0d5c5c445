"""The weekly digest canvas on a real ``celery -A config worker`` (slow).

Unlike ``test_canvas.py`` (``task_always_eager``), tasks here travel through the Redis
broker at ``REDIS_URL`` to a worker subprocess with two prefork children, and both chords
complete through the Redis result backend's native join (no ``chord_unlock``): the
generators' last task publishes ``aggregate``, the send batches' last task publishes
``finish``. The worker reads the test database (committed data: ``transaction=True``)
and mails the test's aiosmtpd server.

Resources are inserted with ``bulk_create`` so no activity signal nudges the outbox relay
(which would publish to Kafka from the worker).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app
from digests.weekly import keys, workflows
from tests.digests.weekly.conftest import DIGEST, IN_WINDOW, NOW
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.servers.smtp import SMTPServer
from workspace.models import Dashboard, FeatureFlag

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
ORGS = 4
MEMBERS_PER_ORG = 3


def _database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


@pytest.fixture
def smtp():
    with SMTPServer() as server:
        yield server


@pytest.fixture
def worker(transactional_db, smtp, tmp_path):
    """A worker subprocess on this test's database, Redis and SMTP server; tasks are
    published for real (eager mode off) while it runs."""
    name = f"weekly-digest-test-{uuid.uuid4().hex[:8]}@%h"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_URL": f"smtp://{smtp.host}:{smtp.port}",
        "NOTIFLOW_TOPIC_PREFIX": settings.NOTIFLOW_TOPIC_PREFIX,
    }
    log_path = tmp_path / "worker.log"
    app.control.purge()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--include",
                "digests.weekly.tasks",
                "--pool",
                "prefork",
                "--concurrency",
                "2",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
                "--hostname",
                name,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    app.conf.task_always_eager = False
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=1):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker did not start:\n{log_path.read_text()[-4000:]}")
        yield log_path
    finally:
        app.conf.task_always_eager = True
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def busy_orgs(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    recipients = set()
    dashboards, flags = [], []
    for i in range(ORGS):
        team = TeamFactory(organization=OrganizationFactory())
        for _ in range(MEMBERS_PER_ORG):
            recipients.add(MembershipFactory(team=team, user=UserFactory()).user.email)
        dashboards.append(Dashboard(team=team, name=f"Board {i}"))
        flags.append(FeatureFlag(team=team, name=f"Flag {i}", key=f"flag-{i}"))
    # An org with nothing new: no mail for its member.
    MembershipFactory(team=TeamFactory(organization=OrganizationFactory()))
    Dashboard.objects.bulk_create(dashboards)
    FeatureFlag.objects.bulk_create(flags)
    Dashboard.objects.update(created_at=IN_WINDOW)
    FeatureFlag.objects.update(created_at=IN_WINDOW)
    return recipients


def test_both_chords_complete_on_a_real_worker(busy_orgs, worker, smtp, weekly_redis):
    try:
        summary = workflows.run_weekly_digest(now=NOW, batch_size=2).get(timeout=120)
    except Exception:
        print(worker.read_text()[-6000:])
        raise

    assert summary["batches"] == 3
    assert (summary["sent"], summary["failed"]) == (ORGS * MEMBERS_PER_ORG, 0)
    assert {m.rcpt_tos[0] for m in smtp.messages} == busy_orgs
    assert weekly_redis.get(keys.run_key(DIGEST.key)) == "done"
    log = worker.read_text()
    assert "digests.weekly.tasks.aggregate" in log and "digests.weekly.tasks.finish" in log
    assert "chord_unlock" not in log

    again = workflows.run_weekly_digest(now=NOW, batch_size=2).get(timeout=120)
    assert (again["sent"], again["already_sent"]) == (0, ORGS * MEMBERS_PER_ORG)
    assert len(smtp.messages) == ORGS * MEMBERS_PER_ORG
