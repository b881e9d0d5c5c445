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
