"""The weekly digest canvas on a real ``celery -A config worker`` (slow).

Unlike ``test_canvas.py`` (``task_always_eager``), tasks here travel through the Redis
broker at ``REDIS_URL`` to a worker subprocess with two prefork children, and both chords
complete through the Redis result backend's native join (no ``chord_unlock``): the
generators' last task publishes ``aggregate``, the send batches' last task publishes
``finish``. The worker reads the test database (committed data: ``transaction=True``)
and mails the test's aiosmtpd server.

The ``worker`` and ``smtp`` fixtures live in ``conftest.py`` (``test_scale.py`` uses them
too). Resources are inserted with ``bulk_create`` so no activity signal nudges the outbox
relay (which would publish to Kafka from the worker).
"""

from __future__ import annotations

import pytest

from digests.weekly import keys, workflows
from tests.digests.weekly.conftest import DIGEST, IN_WINDOW, NOW
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from workspace.models import Dashboard, FeatureFlag

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.sqlite]

ORGS = 4
MEMBERS_PER_ORG = 3


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
