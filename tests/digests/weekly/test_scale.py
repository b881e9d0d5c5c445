"""The weekly digest at scale: 50 orgs × 5 teams × 20 members through the real Celery
canvas on a worker subprocess, and the database query count of a run against the number
of members, orgs and batches (in-process runner, ``CaptureQueriesContext``).

Worlds are built with ``bulk_create`` (:mod:`tests.digests.weekly.bulk`), which also
computes, independently of the code under test, which teams every member's email must
list (the rule on :meth:`digests.weekly.types.OrganizationDigest.for_user`).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from digests.weekly import activities, keys, workflows
from tests.digests.weekly.bulk import (
    TEAMS_PER_ORG,
    add_members,
    build_orgs,
    read_digest_mail,
)
from tests.digests.weekly.conftest import DIGEST, NOW, week_keys

pytestmark = pytest.mark.sqlite

ORGS = 50
MEMBERS = 20
BATCH_SIZE = 10


@pytest.fixture
def worker_concurrency() -> int:
    return 4


@pytest.fixture
def scale_world(transactional_db):
    orgs = build_orgs(ORGS)
    expected = add_members(orgs, range(MEMBERS))
    return orgs, expected


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(120)
def test_fifty_orgs_through_the_real_canvas_mail_each_member_only_their_teams_once(
    scale_world, worker, smtp, weekly_redis
):
    orgs, expected = scale_world
    assert len(orgs) * TEAMS_PER_ORG == 250
    # The world is worth testing: most members get mail, many don't, emails differ.
    assert 300 < len(expected.emails) < expected.recipients
    assert len(set(expected.emails.values())) > 100

    started = time.monotonic()
    try:
        summary = workflows.run_weekly_digest(now=NOW, batch_size=BATCH_SIZE).get(timeout=90)
    except Exception:
        print(worker.read_text()[-6000:])
        raise
    elapsed = time.monotonic() - started
    print(f"\n50 orgs × 5 teams × 20 members through the real canvas: {elapsed:.1f} s")

    assert (summary["orgs"], summary["teams"], summary["batches"]) == (ORGS, 250, 5)
    assert (summary["sent"], summary["failed"]) == (len(expected.emails), 0)
    assert summary["sent"] + summary["opted_out"] + summary["nothing_new"] == expected.recipients
    log = worker.read_text()
    assert "chord_unlock" not in log

    # One email per (member, org) that should get one, at the SMTP server.
    mails = []
    for mail in smtp.messages:
        org, teams = read_digest_mail(mail.raw)
        mails.append(((mail.rcpt_tos[0], org), teams))
    received = Counter(key for key, _ in mails)
    assert all(count == 1 for count in received.values()), received.most_common(3)
    assert set(received) == set(expected.emails)
    # Each lists exactly the expected teams: theirs, unmuted, with something new.
    wrong = [
        (key, sorted(teams), sorted(expected.emails[key]))
        for key, teams in mails
        if teams != expected.emails[key]
    ]
    assert not wrong, wrong[:5]
    assert weekly_redis.get(keys.run_key(DIGEST.key)) == "done"

    # A second run in the same week sends nothing.
    again = workflows.run_weekly_digest(now=NOW, batch_size=BATCH_SIZE).get(timeout=90)
    assert (again["sent"], again["failed"]) == (0, 0)
    assert again["already_sent"] == len(expected.emails)
    assert len(smtp.messages) == len(expected.emails)


# -- database queries ---------------------------------------------------------------------

QUERY_ORGS = 4
QUERY_BATCH = 2


def _queries(weekly_redis, **kwargs) -> tuple[int, workflows.RunSummary]:
    """Queries of one whole in-process run, on a clean week (so everything is sent)."""
    for key in week_keys(weekly_redis):
        weekly_redis.delete(key)
    with CaptureQueriesContext(connection) as captured:
        summary = workflows.run_weekly_digest_inline(now=NOW, **kwargs)
    return len(captured.captured_queries), summary


def _plan_queries() -> int:
    with CaptureQueriesContext(connection) as captured:
        activities.plan_weekly_digest(now=NOW, batch_size=QUERY_BATCH)
    return len(captured.captured_queries)


@pytest.mark.integration
def test_database_queries_grow_with_batches_not_with_members(db, weekly_redis, smtp_server):
    orgs = build_orgs(QUERY_ORGS)
    first = add_members(orgs, range(20))
    plan = _plan_queries()

    # (a) N orgs × 20 members, then (b) the same orgs × 40 members: same count.
    with_20, run_20 = _queries(weekly_redis, batch_size=QUERY_BATCH)
    assert run_20.batches == QUERY_ORGS // QUERY_BATCH
    assert run_20.result.sent == len(first.emails)
    second = add_members(orgs, range(20, 40))
    with_40, run_40 = _queries(weekly_redis, batch_size=QUERY_BATCH)
    assert run_40.result.sent == len(first.emails) + len(second.emails) > run_20.result.sent
    assert with_40 == with_20

    # All N orgs in one batch: the per-batch cost does not depend on orgs in the batch.
    one_batch, run_one = _queries(weekly_redis, batch_size=QUERY_ORGS)
    assert run_one.batches == 1
    per_batch = one_batch - plan
    assert with_20 == plan + run_20.batches * per_batch

    # (c) 2N orgs, same batch size: twice the batches, at most twice the queries.
    more = build_orgs(QUERY_ORGS, start=QUERY_ORGS)
    add_members(more, range(20))
    doubled, run_doubled = _queries(weekly_redis, batch_size=QUERY_BATCH)
    assert run_doubled.batches == 2 * run_20.batches
    assert doubled == plan + run_doubled.batches * per_batch
    assert with_20 < doubled <= 2 * with_20
    print(
        f"\nqueries: plan {plan}, per batch {per_batch}; "
        f"{QUERY_ORGS} orgs × 20 members = {with_20}, × 40 members = {with_40}, "
        f"{QUERY_ORGS} orgs in 1 batch = {one_batch}, "
        f"{2 * QUERY_ORGS} orgs ({run_doubled.batches} batches) = {doubled}"
    )
