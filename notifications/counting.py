"""What a trigger has counted: the claims (``TriggerMatch``, one per trigger × event) that
make counting idempotent under replay, and the ``event_count`` state (``TriggerState``)
that fires such a trigger once per window. Called inside the consumer's transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from notifications.events import Event
from notifications.models import TriggerMatch, TriggerState
from notifications.planning import RollupHit
from notifications.triggers import CompiledTrigger, Kind

REPLAY_HORIZON = timedelta(days=15)
"""How long a claim (``TriggerMatch``) is kept after it was made: longer than Kafka can
hand an event back. The events topic keeps the broker's defaults, ``retention.ms`` and
``segment.ms`` of 7 days each, and a segment is deleted only once its newest record is
past retention, so a record can be read for up to 14 days after it was written."""


def fired(
    counted: Mapping[CompiledTrigger, Sequence[Event]], now: datetime
) -> list[tuple[CompiledTrigger, Event]]:
    """Record event_count matches (unique per trigger × event) and fire each trigger
    once per window when the count in the window reaches its threshold; return each
    firing as the trigger and the event that made it fire.

    An event counts at its own time, or at ``now`` when the client stamped it later than
    that: one event from a clock set to tomorrow does not hold the trigger's next firing
    until tomorrow. Claims are kept for the replay horizon, not the window
    (:func:`prune_claims`), so every event Kafka can replay is known as claimed.

    Only events claimed by this call are judged. An event claimed before was counted,
    and fired or not, in the transaction that claimed it, at the time stored then; a
    replay judging it again at a later ``now`` would count a future-stamped event at a
    new time, in a window it was never in, and could fire the trigger a second time."""
    at = {
        trigger: {e.id: min(e.occurred_at, now) for e in events}
        for trigger, events in counted.items()
    }
    new = {trigger: claim_new_events(trigger.id, when) for trigger, when in at.items()}
    firings: list[tuple[CompiledTrigger, Event]] = []
    for trigger, events in counted.items():
        fresh = [e for e in events if e.id in new[trigger]]
        if fresh:
            firings.extend((trigger, e) for e in _firing(trigger, fresh, at[trigger]))
    return firings


def _firing(
    trigger: CompiledTrigger, fresh: Sequence[Event], at: Mapping[uuid.UUID, datetime]
) -> list[Event]:
    """The newly claimed events at which ``trigger`` fires, in the order they count."""
    window = timedelta(minutes=trigger.window_minutes)
    state, _ = TriggerState.objects.select_for_update().get_or_create(trigger_id=trigger.id)
    firing = []
    for event in sorted(fresh, key=lambda e: at[e.id]):
        moment = at[event.id]
        if state.last_fired_at and moment - state.last_fired_at < window:
            continue
        seen = TriggerMatch.objects.filter(
            trigger_id=trigger.id,
            occurred_at__gt=moment - window,
            occurred_at__lte=moment,
        ).count()
        if seen >= trigger.count:
            state.last_fired_at = moment
            firing.append(event)
    state.save(update_fields=["last_fired_at"])
    return firing


def new_hits(hits: Sequence[RollupHit]) -> list[RollupHit]:
    """Only events this trigger has not counted before: a replayed batch adds nothing.

    An ``event_count`` trigger's hit is the firing itself, already made once per window
    by :func:`fired` (which claimed its events): claiming it again would find the claim
    and drop the only hit its roll-up gets."""
    by_trigger: dict[int, dict[uuid.UUID, datetime]] = defaultdict(dict)
    for hit in hits:
        if hit.trigger.kind != Kind.EVENT_COUNT:
            by_trigger[hit.trigger.id][hit.event.id] = hit.event.occurred_at
    new = {
        (trigger_id, event_id)
        for trigger_id, events in by_trigger.items()
        for event_id in claim_new_events(trigger_id, events)
    }
    return [
        h for h in hits if h.trigger.kind == Kind.EVENT_COUNT or (h.trigger.id, h.event.id) in new
    ]


def claim_new_events(trigger_id: int, events: Mapping[uuid.UUID, datetime]) -> set[uuid.UUID]:
    """Record that ``trigger_id`` counted these events (event id → the time it counts at);
    return the ids not recorded before.

    ``INSERT … ON CONFLICT DO NOTHING RETURNING`` answers in one statement which rows were
    new, on PostgreSQL and SQLite alike, so counting is idempotent under replay. Values go
    through the model fields' own conversion, so SQLite stores times as the ORM compares them.
    """
    if not events:
        return set()
    id_field = TriggerMatch._meta.get_field("event_id")
    at_field = TriggerMatch._meta.get_field("occurred_at")
    claimed_at = at_field.get_db_prep_value(timezone.now(), connection)
    table = TriggerMatch._meta.db_table
    placeholders = ", ".join(["(%s, %s, %s, %s)"] * len(events))
    params: list[Any] = []
    for event_id, occurred_at in events.items():
        params += [
            trigger_id,
            id_field.get_db_prep_value(event_id, connection),
            at_field.get_db_prep_value(occurred_at, connection),
            claimed_at,
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (trigger_id, event_id, occurred_at, claimed_at) "
            f"VALUES {placeholders} "
            "ON CONFLICT (trigger_id, event_id) DO NOTHING RETURNING event_id",
            params,
        )
        return {uuid.UUID(str(value)) for (value,) in cursor.fetchall()}


def prune_claims(*, now: datetime, horizon: timedelta = REPLAY_HORIZON, chunk: int = 10_000) -> int:
    """Delete claims made more than ``horizon`` before ``now``; return how many went.

    Counting reads only the window it needs, so old claims serve replays alone, and no
    replay reaches past the horizon. Deleted in chunks by id, so no statement holds many
    row locks against the consumer's inserts."""
    deleted = 0
    old = TriggerMatch.objects.filter(claimed_at__lt=now - horizon)
    while ids := list(old.values_list("pk", flat=True)[:chunk]):
        deleted += TriggerMatch.objects.filter(pk__in=ids).delete()[0]
    return deleted
