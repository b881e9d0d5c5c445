"""The Celery canvas and the beat tick, run eagerly.

These tests run with ``task_always_eager=True`` (set for the whole suite in
``tests/conftest.py``): every task runs in this process and ``chord.apply()`` calls the
body with the header's results without the Redis result backend's join. They prove the
canvas is wired right — every generator for every batch, the aggregation, the send
batches, ``finish`` — against the real PostgreSQL, Redis and SMTP; the Redis chord join
itself is exercised by ``test_canvas_worker.py`` with a real worker.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from celery import chord, group

from digests.weekly import activities, keys, tasks, workflows
from digests.weekly.types import Digest, WeeklySchedule
from tests.digests.weekly.conftest import DIGEST, NOW

pytestmark = [pytest.mark.integration, pytest.mark.sqlite]


def test_canvas_has_every_generator_for_every_batch_then_sends(world):
    plan = activities.plan_weekly_digest(now=NOW, batch_size=1)
    canvas = tasks.build_canvas(plan)

    generate, send = canvas.tasks
    assert isinstance(generate, chord) and isinstance(send, chord)
    header = [(sig.task, sig.args[1], sig.args[2]["index"]) for sig in generate.tasks]
    assert header == [
        (tasks.generate.name, kind, batch.index)
        for batch in plan.batches
        for kind in activities.GENERATORS
    ]
    assert generate.body.task == tasks.aggregate.name
    assert [sig.args[1]["index"] for sig in send.tasks] == [0, 1]
    assert send.body.task == tasks.finish.name
    assert all(sig.immutable for sig in [*generate.tasks, generate.body, *send.tasks])


def test_run_weekly_digest_through_the_canvas_sends_once_per_member(
    world, weekly_redis, smtp_server
):
    summary = workflows.run_weekly_digest(now=NOW, batch_size=1).get()

    assert summary == {
        "digest_key": DIGEST.key,
        "orgs": 2,
        "teams": 3,
        "batches": 2,
        "sent": 3,
        "failed": 0,
        "already_sent": 0,
        "opted_out": 1,
        "nothing_new": 0,
    }
    assert {m.rcpt_tos[0] for m in smtp_server.messages} == world.busy_recipients
    assert weekly_redis.get(keys.run_key(DIGEST.key)) == "done"

    again = workflows.run_weekly_digest(now=NOW, batch_size=1).get()
    assert (again["sent"], again["already_sent"]) == (0, 3)
    assert len(smtp_server.messages) == 3


def test_an_empty_installation_finishes_without_a_canvas(db, weekly_redis):
    summary = workflows.run_weekly_digest(now=NOW).get()
    assert summary == {"digest_key": DIGEST.key, "orgs": 0, "teams": 0}


def test_beat_tick_starts_the_week_once_and_only_when_due(world, weekly_redis, smtp_server):
    monday_early = datetime(2025, 3, 3, 8, 59, tzinfo=UTC)
    assert Digest.for_week(monday_early) == DIGEST
    tasks.weekly_digest_tick.delay(monday_early.isoformat())
    assert smtp_server.messages == []
    assert weekly_redis.exists(keys.run_key(DIGEST.key)) == 0

    tasks.weekly_digest_tick.delay(NOW.isoformat())
    assert len(smtp_server.messages) == 3

    later = NOW.replace(day=8)
    group(tasks.weekly_digest_tick.si(later.isoformat()) for _ in range(2)).delay()
    assert len(smtp_server.messages) == 3


def test_schedule_is_due_from_monday_nine_utc():
    schedule = WeeklySchedule(weekday=0, hour=9)
    assert not schedule.is_due(datetime(2025, 3, 3, 8, 59, tzinfo=UTC))
    assert schedule.is_due(datetime(2025, 3, 3, 9, 0, tzinfo=UTC))
    assert schedule.is_due(datetime(2025, 3, 9, 23, 59, tzinfo=UTC))


def test_periodic_entry_names_a_registered_task():
    from config.celery import app

    (entry,) = tasks.PERIODIC
    assert entry.task in app.tasks
    assert entry.every_seconds == 3600
