"""Integration: scheduled checks record every evaluation and notify only on the way into
firing, through the outbox and the real Kafka consumer."""

from datetime import UTC, datetime, timedelta

import pytest

from notifications.checks import run_due_checks
from notifications.models import Notification, TriggerCheck
from tests.factories import InsightFactory, TriggerFactory
from workspace.models import Cohort, Experiment

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_an_insight_above_its_bound_notifies_once_while_it_stays_above(team, member_of, drain):
    owner = member_of(team)
    insight = InsightFactory(team=team, created_by=owner, name="Errors per minute", last_value=80)
    trigger = TriggerFactory(
        team=team,
        owner=owner,
        kind="insight_threshold",
        config={"insight_id": insight.pk, "upper": 100, "interval_minutes": 5},
    )

    def check_at(minutes, value):
        type(insight).objects.filter(pk=insight.pk).update(last_value=value)
        return run_due_checks(now=T0 + timedelta(minutes=minutes))

    assert check_at(0, 80) == 1
    assert check_at(2, 150) == 0  # not due yet: the trigger checks every 5 minutes
    assert check_at(5, 150) == 1
    assert check_at(10, 170) == 1
    assert check_at(15, 90) == 1
    assert check_at(20, 130) == 1
    states = list(trigger.checks.order_by("checked_at").values_list("state", "value"))
    assert states == [
        ("not_firing", 80),
        ("firing", 150),
        ("firing", 170),
        ("not_firing", 90),
        ("firing", 130),
    ]

    drain(expected=3)  # the insight's creation activity + two transitions into firing
    titles = list(
        Notification.objects.filter(trigger=trigger).order_by("id").values_list("title", flat=True)
    )
    assert titles == [
        f"{trigger.name}: “Errors per minute” is 150, above 100",
        f"{trigger.name}: “Errors per minute” is 130, above 100",
    ]


def test_a_missing_insight_is_recorded_as_errored(team, member_of):
    owner = member_of(team)
    trigger = TriggerFactory(
        team=team, owner=owner, kind="insight_threshold", config={"insight_id": 999, "upper": 1}
    )
    run_due_checks(now=T0)
    check = TriggerCheck.objects.get(trigger=trigger)
    assert check.state == "errored"
    assert "insight 999 does not exist" in check.error


def test_a_snoozed_check_is_recorded_and_sends_nothing(team, member_of):
    owner = member_of(team)
    insight = InsightFactory(team=team, created_by=owner, last_value=500)
    trigger = TriggerFactory(
        team=team,
        owner=owner,
        kind="insight_threshold",
        config={"insight_id": insight.pk, "upper": 100},
        snoozed_until=T0 + timedelta(hours=1),
    )
    run_due_checks(now=T0)
    assert TriggerCheck.objects.get(trigger=trigger).state == "snoozed"


def test_experiment_significance_and_cohort_entry_fire_on_transition(team, member_of, drain):
    owner = member_of(team)
    experiment = Experiment.objects.create(team=team, name="New pricing", created_by=owner)
    cohort = Cohort.objects.create(team=team, name="Power users", created_by=owner, members=["a"])
    significance = TriggerFactory(
        team=team,
        owner=owner,
        kind="experiment_significance",
        config={"experiment_id": experiment.pk, "p_value": 0.05},
    )
    entry = TriggerFactory(
        team=team, owner=owner, kind="cohort_membership", config={"cohort_id": cohort.pk}
    )
    run_due_checks(now=T0)
    Experiment.objects.filter(pk=experiment.pk).update(significance=0.01)
    Cohort.objects.filter(pk=cohort.pk).update(members=["a", "b", "c"])
    run_due_checks(now=T0 + timedelta(hours=1))
    run_due_checks(now=T0 + timedelta(hours=2))

    drain(expected=4)
    assert Notification.objects.get(trigger=significance).title.endswith(
        "experiment “New pricing” reached significance (p = 0.01)"
    )
    assert Notification.objects.get(trigger=entry).title.endswith(
        "2 entered cohort “Power users”: b, c"
    )


def _cohort_titles(trigger):
    return list(
        Notification.objects.filter(trigger=trigger).order_by("id").values_list("title", flat=True)
    )


def test_every_cohort_entry_and_exit_is_news_once(team, member_of, drain):
    """[a] → [a, b] → [a, b, c] → [a, c]: b's entry, c's entry and b's exit each notify
    once, naming who; a check that finds no change (run twice) notifies nothing."""
    owner = member_of(team)
    cohort = Cohort.objects.create(team=team, name="Power users", created_by=owner, members=["a"])
    entry = TriggerFactory(
        team=team, owner=owner, kind="cohort_membership", config={"cohort_id": cohort.pk}
    )
    exit_ = TriggerFactory(
        team=team,
        owner=owner,
        kind="cohort_membership",
        config={"cohort_id": cohort.pk, "direction": "exit"},
    )
    steps = [["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", "c"], ["a", "b", "c"], ["a", "c"]]
    for hour, members in enumerate(steps):
        Cohort.objects.filter(pk=cohort.pk).update(members=members)
        assert run_due_checks(now=T0 + timedelta(hours=hour)) == 2

    drain(expected=4)  # the cohort's creation activity + three changes
    assert _cohort_titles(entry) == [
        f"{entry.name}: 1 entered cohort “Power users”: b",
        f"{entry.name}: 1 entered cohort “Power users”: c",
    ]
    assert _cohort_titles(exit_) == [f"{exit_.name}: 1 left cohort “Power users”: b"]


def _wait_until_blocked(count: int, timeout: float = 30.0) -> None:
    """Until ``count`` other sessions of this database wait on a lock (real state, polled)."""
    import time

    from django.db import connection

    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else cached per transaction
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] >= count:
                return
            time.sleep(0.05)
    pytest.fail(f"{count} check runs never waited on the trigger's lock")


def test_overlapping_check_runs_publish_a_transition_once(team, member_of, drain):
    """Two ``run_checks`` that start while a third still holds the trigger: each sees the
    cohort change, only one publishes it, and b hears of it once."""
    import threading

    from django.db import connection, transaction

    from notifications.models import Outbox, Trigger

    owner = member_of(team)
    cohort = Cohort.objects.create(team=team, name="Power users", created_by=owner, members=["a"])
    trigger = TriggerFactory(
        team=team, owner=owner, kind="cohort_membership", config={"cohort_id": cohort.pk}
    )
    run_due_checks(now=T0)
    Cohort.objects.filter(pk=cohort.pk).update(members=["a", "b"])

    def run(now):
        try:
            run_due_checks(now=now)
        finally:
            connection.close()

    later = T0 + timedelta(hours=1)
    runs = [threading.Thread(target=run, args=(later + timedelta(seconds=i),)) for i in (0, 1)]
    with transaction.atomic():
        # Hold what a check run locks (the trigger; before this fix, its newest check).
        Trigger.objects.select_for_update().get(pk=trigger.pk)
        TriggerCheck.objects.select_for_update().filter(trigger=trigger).first()
        for thread in runs:
            thread.start()
        _wait_until_blocked(2)
    for thread in runs:
        thread.join(timeout=60)

    assert Outbox.objects.filter(payload__name="check.cohort_membership").count() == 1
    drain(expected=2)
    assert _cohort_titles(trigger) == [f"{trigger.name}: 1 entered cohort “Power users”: b"]


def _three_threshold_triggers(team, owner, middle_config=None):
    insight = InsightFactory(team=team, created_by=owner, last_value=80)
    good = {"insight_id": insight.pk, "upper": 100}
    return [
        TriggerFactory(
            team=team,
            owner=owner,
            name=name,
            kind="insight_threshold",
            config=middle_config if name == "b" and middle_config else good,
        )
        for name in "abc"
    ]


def test_a_trigger_stored_with_a_refused_config_errors_alone(team, member_of, caplog):
    """Through the Celery task: a trigger saved before today's validation (an insight id
    that is not a number) gets an errored check naming why; the triggers around it are
    checked."""
    from notifications import tasks

    owner = member_of(team)
    first, poisoned, last = _three_threshold_triggers(
        team, owner, {"insight_id": "not-a-number", "upper": 1}
    )
    with caplog.at_level("WARNING", logger="notifications.triggers"):
        assert tasks.run_checks.apply().get() == 3

    states = TriggerCheck.objects.filter(trigger__in=[first, last]).values_list("state", flat=True)
    assert list(states) == ["not_firing", "not_firing"]
    error = TriggerCheck.objects.get(trigger=poisoned)
    assert error.state == "errored"
    assert "config.insight_id" in error.error and "'not-a-number'" in error.error
    assert f"trigger {poisoned.pk}: its stored config is refused" in caplog.text


def test_a_check_that_raises_errors_alone_and_is_logged_with_its_trigger(
    team, member_of, caplog, monkeypatch
):
    """Through the Celery task: whatever a check raises (a database error, a bug) is that
    trigger's error record; the triggers after it are still checked."""
    from notifications import checks, tasks

    owner = member_of(team)
    first, poisoned, last = _three_threshold_triggers(team, owner)
    evaluate = checks.insight_threshold

    def failing_for_b(config, trigger, previous):
        if trigger.pk == poisoned.pk:
            raise RuntimeError("the insight store is unreachable")
        return evaluate(config, trigger, previous)

    monkeypatch.setattr(checks, "insight_threshold", failing_for_b)  # its declared evaluator
    with caplog.at_level("ERROR", logger="notifications.checks"):
        assert tasks.run_checks.apply().get() == 3

    states = TriggerCheck.objects.filter(trigger__in=[first, last]).values_list("state", flat=True)
    assert list(states) == ["not_firing", "not_firing"]
    error = TriggerCheck.objects.get(trigger=poisoned)
    assert (error.state, error.error) == (
        "errored",
        "RuntimeError: the insight store is unreachable",
    )
    assert f"check of trigger {poisoned.pk} failed" in caplog.text


@pytest.mark.parametrize("members", [5, "a,b", {"a": 1}, [["a"]], [True]])
def test_cohort_members_that_are_not_a_list_of_ids_are_an_errored_check(team, member_of, members):
    owner = member_of(team)
    cohort = Cohort.objects.create(team=team, name="Odd", created_by=owner, members=["a"])
    trigger = TriggerFactory(
        team=team, owner=owner, kind="cohort_membership", config={"cohort_id": cohort.pk}
    )
    run_due_checks(now=T0)
    Cohort.objects.filter(pk=cohort.pk).update(members=members)
    run_due_checks(now=T0 + timedelta(hours=1))
    check = TriggerCheck.objects.filter(trigger=trigger).first()
    assert check.state == "errored"
    assert "members" in check.error


def test_an_interval_stored_beyond_the_bound_is_checked_at_the_bound(team, member_of):
    """Saved before intervals were bounded: 10**12 minutes overflowed ``timedelta``; it
    now counts as the longest interval allowed."""
    from notifications.triggers import MAX_INTERVAL_MINUTES

    owner = member_of(team)
    insight = InsightFactory(team=team, created_by=owner, last_value=80)
    trigger = TriggerFactory(
        team=team,
        owner=owner,
        kind="insight_threshold",
        config={"insight_id": insight.pk, "upper": 100, "interval_minutes": 10**12},
    )
    assert run_due_checks(now=T0) == 1
    bound = timedelta(minutes=MAX_INTERVAL_MINUTES)
    assert run_due_checks(now=T0 + bound - timedelta(minutes=1)) == 0
    assert run_due_checks(now=T0 + bound) == 1
    assert trigger.checks.count() == 2
