"""ActivityLog → Outbox: the one place an activity row becomes a stream event.

The outbox row is written by a ``post_save`` receiver, so it shares the transaction the
activity log row was written in; the relay is nudged only after that transaction commits.
"""

from __future__ import annotations

import logging

from django.db import transaction
from kombu.exceptions import OperationalError

from notifications import enqueue
from notifications.events import Actor, Event, Source, Subject, activity_event_name
from notifications.models import Outbox
from workspace.models import ActivityLog
from workspace.resources import resource_url

log = logging.getLogger(__name__)


def activity_event(entry: ActivityLog) -> Event:
    return Event(
        name=activity_event_name(entry.resource_type, entry.action),
        team_id=entry.team_id,
        org_id=entry.team.organization_id,
        source=Source.ACTIVITY,
        occurred_at=entry.created_at,
        actor=Actor(id=entry.actor_id, name=entry.actor_name) if entry.actor_name else None,
        subject=Subject(
            type=entry.resource_type,
            id=entry.resource_id,
            name=entry.resource_name,
            url=resource_url(entry.resource_type, entry.resource_id),
        ),
        properties={
            "action": entry.action,
            "resource_type": entry.resource_type,
            "owner_id": entry.owner_id,
            "changes": entry.changes,
            "activity_id": entry.pk,
        },
    )


def nudge_relay() -> None:
    """Ask a worker to relay now; beat's periodic relay covers a broker that is down."""
    try:
        enqueue.task(enqueue.RELAY_OUTBOX).apply_async(retry=False)
    except OperationalError as exc:  # the row is stored; the periodic relay will send it
        log.warning("could not enqueue relay_outbox (%s); the periodic relay will publish", exc)


def on_activity_saved(sender, instance: ActivityLog, created: bool, raw=False, **kwargs) -> None:
    if raw or not created:
        return
    event = activity_event(instance)
    Outbox.objects.create(event_id=event.id, team_id=event.team_id, payload=event.to_dict())
    nudge_relay_after_commit()


def nudge_relay_after_commit() -> None:
    """One relay nudge per transaction, however many outbox rows it writes."""
    pending = transaction.get_connection().run_on_commit
    if not any(callback is nudge_relay for _, callback, *_ in pending):
        transaction.on_commit(nudge_relay)
