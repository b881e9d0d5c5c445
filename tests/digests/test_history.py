"""Schedules' last_run and the execution history, in a real Redis."""

import logging
from datetime import UTC, datetime, timedelta

import pytest

from digests import history, keys
from digests.history import ExecutionStatus
from digests.runs import digest_run
from digests.windows import Period
from tests.digests.factories import NotificationFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db, pytest.mark.sqlite]

DAY = datetime(2026, 3, 29, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 30, 9, 30, tzinfo=UTC)


def ticking_clock(step=timedelta(seconds=1)):
    """Wall time that moves ``step`` per reading (history is trimmed by real time)."""
    state = {"now": datetime.now(UTC)}

    def clock():
        state["now"] += step
        return state["now"]

    return clock


def test_a_run_records_one_successful_execution_per_profile_and_its_last_run(
    subscriber, smtp_server
):
    user, team = subscriber()
    quiet, _ = subscriber(team=team)
    for _ in range(2):
        NotificationFactory(recipient=user, team=team, at=DAY)

    summary = digest_run(period=Period.DAILY, now=NOW, clock=ticking_clock())

    assert summary.profiles == 2
    (record,) = history.executions_list(profile_id=user.pk)
    assert record.status == ExecutionStatus.SUCCESS
    assert (record.schedule_type, record.message_count, record.digest_count) == ("daily", 1, 1)
    assert record.duration_seconds > 0 and record.error == ""
    assert record.as_of == NOW
    (empty,) = history.executions_list(profile_id=quiet.pk)
    assert (empty.status, empty.message_count, empty.digest_count) == ("SUCCESS", 0, 0)
    assert history.last_runs(user.pk) == {"daily": NOW}
    assert {r.profile_id for r in history.executions_list(profile_id=None)} == {user.pk, quiet.pk}


def test_every_key_has_a_ttl_within_its_policy(subscriber, smtp_server, settings):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    digest_run(period=Period.DAILY, now=NOW)
    client = history.redis_client()
    found = list(client.scan_iter(match=f"{settings.NOTIFLOW_TOPIC_PREFIX}:digest:*"))
    assert found
    for key in found:
        ttl = client.ttl(key)
        limit = keys.TTL.last_run if ":last_run:" in key else keys.TTL.executions
        assert 0 < ttl <= limit.total_seconds(), key


def test_a_run_with_nothing_new_writes_no_history(subscriber, smtp_server):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    digest_run(period=Period.DAILY, now=NOW)
    digest_run(period=Period.DAILY, now=NOW + timedelta(minutes=1))
    assert len(history.executions_list(profile_id=user.pk)) == 1


def test_a_refused_digest_is_a_failed_execution_with_the_error(subscriber, smtp_server):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    smtp_server.refuse(user.email)
    digest_run(period=Period.DAILY, now=NOW)
    (record,) = history.executions_list(profile_id=user.pk)
    assert record.status == ExecutionStatus.FAILED
    assert record.message_count == 0
    assert "failed: smtp: recipient refused 550" in record.error


def test_an_interrupted_run_cancels_the_open_executions(subscriber, smtp_server):
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)

    def interrupt(progress):
        if progress.phase == "send":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        digest_run(period=Period.DAILY, now=NOW, progress=interrupt)
    (record,) = history.executions_list(profile_id=user.pk)
    assert record.status == ExecutionStatus.CANCELLED
    assert record.error.startswith("KeyboardInterrupt")


def test_history_older_than_seven_days_is_trimmed_from_the_indexes(settings):
    old = history.ExecutionRecord.pending(
        run_id="r",
        profile_id=7,
        schedule_type="daily",
        started_at=datetime.now(UTC) - timedelta(days=8),
        as_of=NOW,
    )
    fresh = history.ExecutionRecord.pending(
        run_id="r", profile_id=7, schedule_type="daily", started_at=datetime.now(UTC), as_of=NOW
    )
    assert history.executions_save([old, fresh])
    assert [r.execution_id for r in history.executions_list(profile_id=7)] == [fresh.execution_id]


def test_a_redis_outage_costs_history_not_the_digest(
    subscriber, smtp_server, settings, caplog, api_client
):
    """digests/README: "If Redis is down, writers log a warning and the digests still go
    out; the history endpoints answer 503"."""
    user, team = subscriber()
    NotificationFactory(recipient=user, team=team, at=DAY)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with caplog.at_level(logging.WARNING, logger="digests.history"):
        summary = digest_run(period=Period.DAILY, now=NOW)
    assert summary.send.sent == 1
    assert len(smtp_server.messages) == 1
    assert any("could not write" in r.getMessage() for r in caplog.records), caplog.text
    api_client.force_authenticate(user)
    for path in ("/api/digest/executions", f"/api/digest/executions/{user.pk}"):
        response = api_client.get(path)
        assert response.status_code == 503, (path, response.content)
        assert "execution history is unavailable" in response.json()["detail"]
    schedules = api_client.get("/api/digest/schedules")
    assert schedules.status_code == 503
    assert "schedule history is unavailable" in schedules.json()["detail"]
