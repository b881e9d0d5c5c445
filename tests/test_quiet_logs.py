"""The terminal of a local run stays readable: Celery's lines about the periodic
housekeeping tasks (beat sends ``flush_rollups`` every second) are dropped, while what those
tasks do — a roll-up summary delivered, a digest run — and every other task still log at
INFO. Both tests run on the logging of ``settings.LOGGING``: the worker is a real
``celery -A config worker --loglevel INFO`` subprocess, beat's line goes through the test
process's own logging, configured from the same settings."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from celery.beat import ScheduleEntry, Scheduler
from django.utils import timezone

from config.celery import app
from notifications.models import ChannelConfig, Delivery, DeliveryStatus, RollupWindow
from notifications.schedule import PERIODIC
from notifications.secrets import encrypt
from notifications.tasks import deliver, flush_rollups, recover_deliveries, relay_outbox
from tests.factories import TriggerFactory
from tests.notifications.test_delivery import slack_config, wait_for
from tests.servers.worker import celery_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_worker_logs_the_deliveries_not_the_housekeeping_that_made_them(
    team, member_of, slack_server, tmp_path
):
    slack_config(team)
    trigger = TriggerFactory(team=team, owner=member_of(team), name="Checkout errors")
    now = timezone.now()
    RollupWindow.objects.create(  # a burst whose window has closed: flush_rollups sends it
        trigger=trigger,
        channel="slack",
        destination="#alerts",
        opened_at=now - timedelta(minutes=5),
        closes_at=now - timedelta(seconds=1),
        hard_close_at=now + timedelta(minutes=5),
        first_event_at=now - timedelta(minutes=5),
        last_event_at=now - timedelta(minutes=1),
        count=1000,
    )
    with celery_worker(tmp_path, env={"SLACK_API_BASE_URL": slack_server.api_url}) as worker:
        relay_outbox.delay()
        recover_deliveries.delay()
        flush_rollups.delay()
        assert wait_for(lambda: " sent" in worker.log()), worker.log()[-3000:]
        log = worker.log().split(" ready.", 1)[1]  # after the banner, which lists the tasks

    (summary,) = Delivery.objects.filter(rollup__trigger=trigger)
    assert summary.status == DeliveryStatus.SENT
    assert len(slack_server.posts) == 1
    assert f"delivery {summary.pk} sent" in log
    assert "Task notifications.tasks.deliver[" in log  # a task that is not periodic
    for task in ("relay_outbox", "recover_deliveries", "flush_rollups"):
        assert task not in log, log


def test_each_delivery_logs_how_it_went(team, slack_server, caplog):
    caplog.set_level(logging.INFO)

    def send(key: str) -> int:
        row = Delivery.objects.create(
            idempotency_key=key,
            channel="slack",
            destination="#alerts",
            team=team,
            message={"title": "Checkout errors"},
        )
        deliver(row.pk)
        return row.pk

    skipped = send("no-slack-yet")
    slack_config(team)
    sent = send("fine")
    slack_server.rate_limit_next(retry_after=30)
    waiting = send("rate-limited")
    ChannelConfig.objects.update(secret_encrypted=encrypt("xoxb-revoked"))
    failed = send("revoked")

    lines = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "notifications.tasks"
    ]
    assert [(level, text.split(":")[0].split(" (")[0]) for level, text in lines] == [
        ("INFO", f"delivery {skipped} skipped"),
        ("INFO", f"delivery {sent} sent"),
        ("INFO", f"delivery {waiting} not sent yet"),
        ("WARNING", f"delivery {failed} failed"),
    ]
    assert lines[2][1].endswith("; next attempt in 30 s"), lines[2]
    assert "invalid_auth" in lines[3][1], lines[3]


def test_beat_sends_the_periodic_tasks_without_a_line(caplog):
    caplog.set_level(logging.INFO)
    app.conf.task_always_eager = False
    try:
        scheduler = Scheduler(app, lazy=True)
        for item in PERIODIC:
            scheduler.apply_entry(ScheduleEntry(name=item.name, task=item.task, app=app))
        scheduler.apply_entry(ScheduleEntry(name="Someone's own", task="celery.ping", app=app))
    finally:
        app.conf.task_always_eager = True
        app.control.purge()
    beat = [r.getMessage() for r in caplog.records if r.name == "celery.beat"]
    assert beat == ["Scheduler: Sending due task Someone's own (celery.ping)"]
