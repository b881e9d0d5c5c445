"""Scheduled triggers: insight thresholds, experiment significance, cohort entry/exit.

Beat runs :func:`run_due_checks` every minute; each trigger is checked on its own
``interval_minutes``. Every check is recorded as a :class:`TriggerCheck`, and only news
publishes a ``check`` event (through the outbox, in the same transaction): a threshold or
an experiment going into FIRING (an insight that stays above its bound notifies once, not
at every check), and every change of a cohort's members in the trigger's direction (each
entry, or each exit, names who).

The scheduled kinds are those ``triggers.KINDS`` declares without ``stream``; each
declaration names its evaluator here (``evaluator``), a function ``(config, trigger,
previous check) -> Outcome`` that raises :class:`CheckError` when its data is unusable.

Each trigger is checked on its own: its check holds a lock on the trigger row and reads
the newest check under it, so two overlapping runs never both see the same transition, and
the event id is derived from trigger × previous check × news, so even a replay of the same
decision is one event to the consumer's dedup. A check that fails for any reason is
recorded as ERRORED with the reason (and logged with the trigger's id); the triggers after
it are still checked.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from notifications.events import Event, Source, Subject
from notifications.models import Outbox, Trigger, TriggerCheck
from notifications.outbox import nudge_relay_after_commit
from notifications.triggers import (
    KINDS,
    ThresholdState,
    scheduled_kinds,
    threshold_measure,
    threshold_state,
    usable_config,
)
from workspace.models import Cohort, Experiment, Insight
from workspace.resources import resource_url

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = timedelta(minutes=15)
CHECK_EVENT_NAMESPACE = uuid.UUID("2f6b8f0e-93c4-4d59-8a0e-6d1f4b7c2a93")
"""Fixed forever: a check event's id is uuid5 of this and trigger × previous check × news."""
SETTLED = (ThresholdState.FIRING, ThresholdState.NOT_FIRING)
"""States a transition is measured from; errored and snoozed checks decide nothing."""


class CheckError(Exception):
    """The data a check needs is missing or unusable; recorded as ERRORED."""


@dataclass(frozen=True)
class Outcome:
    """One evaluation. ``news`` names what is worth a notification since ``previous``
    (``"firing"``, ``"entered:a,b"``), None when nothing is."""

    state: ThresholdState
    value: float | None
    summary: str
    subject: Subject
    snapshot: dict[str, Any]
    news: str | None


def _into_firing(state: ThresholdState, previous: TriggerCheck | None) -> str | None:
    was_firing = previous is not None and previous.state == ThresholdState.FIRING
    return "firing" if state == ThresholdState.FIRING and not was_firing else None


def insight_threshold(
    config: dict[str, Any], trigger: Trigger, previous: TriggerCheck | None
) -> Outcome:
    insight = Insight.objects.filter(pk=config["insight_id"], team_id=trigger.team_id).first()
    if insight is None:
        raise CheckError(f"insight {config['insight_id']} does not exist in this team")
    if insight.last_value is None:
        raise CheckError(f"insight “{insight.name}” has no value yet")
    value = insight.last_value
    change = config.get("change", "absolute")
    before = previous.value if previous else None
    state = threshold_state(
        value=value,
        previous=before,
        upper=config.get("upper"),
        lower=config.get("lower"),
        change=change,
    )
    measured = threshold_measure(value=value, previous=before, change=change)
    if measured is None:
        measured, change = value, "absolute"
    side = "above" if config.get("upper") is not None and measured > config["upper"] else "below"
    bound = config.get("upper") if side == "above" else config.get("lower")
    if change == "relative":
        limit = f"{bound:+.0%}" if isinstance(bound, int | float) else str(bound)
        summary = (
            f"“{insight.name}” changed by {measured:+.0%} since the last check, to {value:g}: "
            f"{side} {limit}"
        )
    else:
        summary = f"“{insight.name}” is {value:g}, {side} {bound}"
    return Outcome(
        state=state,
        value=value,
        summary=summary,
        subject=Subject(
            "insight", str(insight.pk), insight.name, resource_url("insight", str(insight.pk))
        ),
        snapshot={},
        news=_into_firing(state, previous),
    )


def experiment_significance(
    config: dict[str, Any], trigger: Trigger, previous: TriggerCheck | None
) -> Outcome:
    experiment = Experiment.objects.filter(
        pk=config["experiment_id"], team_id=trigger.team_id
    ).first()
    if experiment is None:
        raise CheckError(f"experiment {config['experiment_id']} does not exist in this team")
    p_value = experiment.significance
    threshold = config.get("p_value", 0.05)
    significant = p_value is not None and p_value <= threshold
    state = ThresholdState.FIRING if significant else ThresholdState.NOT_FIRING
    return Outcome(
        state=state,
        value=p_value,
        summary=f"experiment “{experiment.name}” reached significance (p = {p_value})",
        subject=Subject(
            "experiment",
            str(experiment.pk),
            experiment.name,
            resource_url("experiment", str(experiment.pk)),
        ),
        snapshot={},
        news=_into_firing(state, previous),
    )


def _member_ids(members: Any, cohort: Cohort) -> set[str]:
    """A cohort's members as distinct ids; CheckError unless a list of texts or numbers."""
    if not isinstance(members, list) or not all(
        isinstance(m, str | int) and not isinstance(m, bool) for m in members
    ):
        raise CheckError(
            f"cohort “{cohort.name}” members is not a list of distinct ids "
            f"(got {type(members).__name__})"
        )
    return {str(m) for m in members}


MAX_NAMED = 5


def cohort_membership(
    config: dict[str, Any], trigger: Trigger, previous: TriggerCheck | None
) -> Outcome:
    cohort = Cohort.objects.filter(pk=config["cohort_id"], team_id=trigger.team_id).first()
    if cohort is None:
        raise CheckError(f"cohort {config['cohort_id']} does not exist in this team")
    now_members = _member_ids(cohort.members, cohort)
    entry = config.get("direction", "entry") == "entry"
    if previous is None or "members" not in previous.snapshot:
        changed: set[str] = set()  # the first check only learns who is there
    else:
        before = set(previous.snapshot["members"])
        changed = now_members - before if entry else before - now_members
    verb = "entered" if entry else "left"
    named = sorted(changed)
    shown = ", ".join(named[:MAX_NAMED])
    if len(named) > MAX_NAMED:
        shown += f" and {len(named) - MAX_NAMED} more"
    return Outcome(
        state=ThresholdState.FIRING if changed else ThresholdState.NOT_FIRING,
        value=float(len(changed)),
        summary=f"{len(changed)} {verb} cohort “{cohort.name}”: {shown}",
        subject=Subject(
            "cohort", str(cohort.pk), cohort.name, resource_url("cohort", str(cohort.pk))
        ),
        snapshot={"members": sorted(now_members)},
        news=f"{verb}:{','.join(named)}" if changed else None,
    )


def is_due(trigger: Trigger, last: TriggerCheck | None, now: datetime) -> bool:
    """Whether ``interval_minutes`` (15 by default; a stored one beyond its bound counts
    as the bound) has passed since the last check."""
    config, _ = usable_config(trigger.kind, trigger.config, trigger_id=trigger.pk)
    minutes = (config or {}).get("interval_minutes")
    interval = timedelta(minutes=minutes) if minutes else DEFAULT_INTERVAL
    return last is None or now - last.checked_at >= interval


def _locked(trigger: Trigger) -> bool:
    """Lock the trigger's row until the caller's transaction ends (False: it is gone), so
    checks of one trigger run one after another and each reads the one before."""
    return (
        Trigger.objects.select_for_update()
        .filter(pk=trigger.pk)
        .values_list("pk", flat=True)
        .first()
        is not None
    )


def check_trigger(
    trigger: Trigger, *, now: datetime, only_if_due: bool = False
) -> TriggerCheck | None:
    """Evaluate one trigger, record the check, and publish a ``check`` event when the
    outcome is news. With ``only_if_due``, nothing happens (None) unless the trigger is
    due by the newest check, read under the lock. Raises what an evaluator raises beyond
    :class:`CheckError` (the caller records it)."""
    with transaction.atomic():
        if not _locked(trigger):
            return None
        last = trigger.checks.first()
        if only_if_due and not is_due(trigger, last, now):
            return None
        carried = last.snapshot if last else {}
        if trigger.snoozed_until and now < trigger.snoozed_until:
            return TriggerCheck.objects.create(
                trigger=trigger, checked_at=now, state=ThresholdState.SNOOZED, snapshot=carried
            )
        previous = trigger.checks.filter(state__in=SETTLED).first()
        config, refusal = usable_config(trigger.kind, trigger.config, trigger_id=trigger.pk)
        try:
            if config is None:
                raise CheckError(f"its stored config is {refusal}")
            evaluate = import_string(KINDS[trigger.kind].evaluator)
            outcome = evaluate(config, trigger, previous)
        except CheckError as exc:
            return _record_error(trigger, now=now, error=str(exc), snapshot=carried)
        record = TriggerCheck.objects.create(
            trigger=trigger,
            checked_at=now,
            value=outcome.value,
            state=outcome.state,
            snapshot=outcome.snapshot,
        )
        if outcome.news is not None:
            _publish(trigger, record, outcome, previous, now=now)
        return record


def _publish(
    trigger: Trigger,
    record: TriggerCheck,
    outcome: Outcome,
    previous: TriggerCheck | None,
    *,
    now: datetime,
) -> None:
    """The news as a ``check`` event through the outbox, in the check's transaction."""
    transition = f"{trigger.pk}:{previous.pk if previous else 0}:{outcome.news}"
    event = Event(
        id=uuid.uuid5(CHECK_EVENT_NAMESPACE, transition),
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
    record.notified = sorted(trigger.subscribers.values_list("id", flat=True)) or [trigger.owner_id]
    record.save(update_fields=["notified"])
    nudge_relay_after_commit()


def _record_error(
    trigger: Trigger, *, now: datetime, error: str, snapshot: dict[str, Any]
) -> TriggerCheck:
    return TriggerCheck.objects.create(
        trigger=trigger,
        checked_at=now,
        state=ThresholdState.ERRORED,
        error=error[:2000],
        snapshot=snapshot,
    )


def run_due_checks(*, now: datetime | None = None) -> int:
    """Check every enabled scheduled trigger whose interval has passed; return how many
    were checked, failed checks included. A trigger whose check raises gets an ERRORED
    record with the error and a log line naming it; the others go on."""
    now = now or timezone.now()
    checked = 0
    scheduled = Trigger.objects.filter(kind__in=scheduled_kinds(), enabled=True)
    triggers = scheduled.select_related("team")
    for trigger in triggers:
        try:
            record = check_trigger(trigger, now=now, only_if_due=True)
        except Exception as exc:  # one trigger's failure must not stop the triggers after it
            log.exception("check of trigger %s failed", trigger.pk)
            last = trigger.checks.first()
            record = _record_error(
                trigger,
                now=now,
                error=f"{type(exc).__name__}: {exc}",
                snapshot=last.snapshot if last else {},
            )
        checked += record is not None
    return checked
