"""Scheduled triggers: insight thresholds, experiment significance, cohort entry/exit.

Beat runs :func:`run_due_checks` every minute; each trigger is checked on its own
``interval_minutes``. Every check is recorded as a :class:`TriggerCheck`; only a transition
into FIRING publishes a ``check`` event (through the outbox, in the same transaction), so an
insight that stays above its bound notifies once, not at every check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from notifications.events import Event, Source, Subject
from notifications.models import Outbox, Trigger, TriggerCheck, TriggerKind
from notifications.outbox import nudge_relay_after_commit, resource_url
from notifications.triggers import ThresholdState, threshold_state
from workspace.models import Cohort, Experiment, Insight

log = logging.getLogger(__name__)

CHECK_KINDS = (
    TriggerKind.INSIGHT_THRESHOLD,
    TriggerKind.EXPERIMENT_SIGNIFICANCE,
    TriggerKind.COHORT_MEMBERSHIP,
)
DEFAULT_INTERVAL = timedelta(minutes=15)


class CheckError(Exception):
    """The data a check needs is missing or unusable; recorded as ERRORED."""


@dataclass(frozen=True)
class Outcome:
    state: ThresholdState
    value: float | None
    summary: str
    subject: Subject
    snapshot: dict[str, Any]


def _insight(trigger: Trigger, previous: TriggerCheck | None) -> Outcome:
    config = trigger.config
    insight = Insight.objects.filter(pk=config["insight_id"], team_id=trigger.team_id).first()
    if insight is None:
        raise CheckError(f"insight {config['insight_id']} does not exist in this team")
    if insight.last_value is None:
        raise CheckError(f"insight “{insight.name}” has no value yet")
    value = insight.last_value
    state = threshold_state(
        value=value,
        previous=previous.value if previous else None,
        upper=config.get("upper"),
        lower=config.get("lower"),
        change=config.get("change", "absolute"),
    )
    side = "above" if config.get("upper") is not None and value > config["upper"] else "below"
    bound = config.get("upper") if side == "above" else config.get("lower")
    return Outcome(
        state=state,
        value=value,
        summary=f"“{insight.name}” is {value:g}, {side} {bound}",
        subject=Subject(
            "insight", str(insight.pk), insight.name, resource_url("insight", str(insight.pk))
        ),
        snapshot={},
    )


def _experiment(trigger: Trigger, previous: TriggerCheck | None) -> Outcome:
    config = trigger.config
    experiment = Experiment.objects.filter(
        pk=config["experiment_id"], team_id=trigger.team_id
    ).first()
    if experiment is None:
        raise CheckError(f"experiment {config['experiment_id']} does not exist in this team")
    p_value = experiment.significance
    threshold = config.get("p_value", 0.05)
    significant = p_value is not None and p_value <= threshold
    return Outcome(
        state=ThresholdState.FIRING if significant else ThresholdState.NOT_FIRING,
        value=p_value,
        summary=f"experiment “{experiment.name}” reached significance (p = {p_value})",
        subject=Subject(
            "experiment",
            str(experiment.pk),
            experiment.name,
            resource_url("experiment", str(experiment.pk)),
        ),
        snapshot={},
    )


def _cohort(trigger: Trigger, previous: TriggerCheck | None) -> Outcome:
    config = trigger.config
    cohort = Cohort.objects.filter(pk=config["cohort_id"], team_id=trigger.team_id).first()
    if cohort is None:
        raise CheckError(f"cohort {config['cohort_id']} does not exist in this team")
    now_members = {str(m) for m in cohort.members}
    if previous is None or "members" not in previous.snapshot:
        changed: set[str] = set()
    else:
        before = set(previous.snapshot["members"])
        changed = (
            now_members - before
            if config.get("direction", "entry") == "entry"
            else before - now_members
        )
    verb = "entered" if config.get("direction", "entry") == "entry" else "left"
    shown = ", ".join(sorted(changed)[:5])
    return Outcome(
        state=ThresholdState.FIRING if changed else ThresholdState.NOT_FIRING,
        value=float(len(changed)),
        summary=f"{len(changed)} {verb} cohort “{cohort.name}”: {shown}",
        subject=Subject(
            "cohort", str(cohort.pk), cohort.name, resource_url("cohort", str(cohort.pk))
        ),
        snapshot={"members": sorted(now_members)},
    )


EVALUATORS = {
    TriggerKind.INSIGHT_THRESHOLD: _insight,
    TriggerKind.EXPERIMENT_SIGNIFICANCE: _experiment,
    TriggerKind.COHORT_MEMBERSHIP: _cohort,
}


def is_due(trigger: Trigger, last: TriggerCheck | None, now: datetime) -> bool:
    minutes = trigger.config.get("interval_minutes")
    interval = timedelta(minutes=minutes) if minutes else DEFAULT_INTERVAL
    return last is None or now - last.checked_at >= interval


def check_trigger(trigger: Trigger, *, now: datetime) -> TriggerCheck:
    """Evaluate one trigger, record the check, and publish a ``check`` event only when it
    goes from not firing to firing."""
    with transaction.atomic():
        previous = trigger.checks.select_for_update().first()
        if trigger.snoozed_until and now < trigger.snoozed_until:
            return TriggerCheck.objects.create(
                trigger=trigger,
                checked_at=now,
                state=ThresholdState.SNOOZED,
                snapshot=previous.snapshot if previous else {},
            )
        try:
            outcome = EVALUATORS[TriggerKind(trigger.kind)](trigger, previous)
        except CheckError as exc:
            return TriggerCheck.objects.create(
                trigger=trigger,
                checked_at=now,
                state=ThresholdState.ERRORED,
                error=str(exc),
                snapshot=previous.snapshot if previous else {},
            )
        was_firing = previous is not None and previous.state == ThresholdState.FIRING
        record = TriggerCheck.objects.create(
            trigger=trigger,
            checked_at=now,
            value=outcome.value,
            state=outcome.state,
            snapshot=outcome.snapshot,
        )
        if outcome.state == ThresholdState.FIRING and not was_firing:
            event = Event(
                name=f"check.{trigger.kind}",
                team_id=trigger.team_id,
                org_id=trigger.team.organization_id,
                source=Source.CHECK,
                occurred_at=now,
                subject=outcome.subject,
                properties={
                    "trigger_id": trigger.pk,
                    "check_id": record.pk,
                    "value": outcome.value,
                    "summary": outcome.summary,
                },
            )
            Outbox.objects.create(event_id=event.id, team_id=event.team_id, payload=event.to_dict())
            record.notified = sorted(trigger.subscribers.values_list("id", flat=True)) or [
                trigger.owner_id
            ]
            record.save(update_fields=["notified"])
            nudge_relay_after_commit()
        return record


def run_due_checks(*, now: datetime | None = None) -> int:
    """Check every enabled scheduled trigger whose interval has passed; return how many."""
    now = now or timezone.now()
    checked = 0
    for trigger in Trigger.objects.filter(kind__in=CHECK_KINDS, enabled=True).select_related(
        "team"
    ):
        if is_due(trigger, trigger.checks.first(), now):
            check_trigger(trigger, now=now)
            checked += 1
    return checked
