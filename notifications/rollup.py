"""Burst buffering: a burst of matches becomes one summary per destination.

The window rules (:func:`open_bounds`, :func:`closes_after_hit`, :func:`summary_title`)
are pure and take ``now``; the state lives in :class:`~notifications.models.RollupWindow`.
The consumer counts hits into open windows (:func:`record_hits`); beat's
``flush_rollups`` turns each closed window into one Delivery per destination
(:func:`flush_due`). In-app windows are one notification row whose ``count`` grows
(``planning.rollup_draft``, written by ``store.grow``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import transaction

from notifications import attention, store
from notifications.models import (
    Delivery,
    DeliveryStatus,
    Preference,
    RollupWindow,
)
from notifications.planning import RollupHit, rollup_draft
from notifications.triggers import DeliverySpec
from workspace.models import Membership

MAX_SAMPLES = 5


def open_bounds(spec: DeliverySpec, now: datetime) -> tuple[datetime, datetime]:
    """(closes_at, hard_close_at) of a window opened at ``now``."""
    closes = now + timedelta(seconds=spec.window_seconds)
    hard = now + timedelta(seconds=max(spec.max_window_seconds or 0, spec.window_seconds))
    return closes, hard


def closes_after_hit(
    spec: DeliverySpec, *, closes_at: datetime, hard_close_at: datetime, count: int, now: datetime
) -> datetime:
    """When the window closes after a hit: extended by the hit (up to the hard bound) when
    ``max_window_seconds`` is set, and at once when ``max_items`` is reached."""
    if spec.max_items is not None and count >= spec.max_items:
        return now
    if spec.max_window_seconds:
        return min(max(closes_at, now + timedelta(seconds=spec.window_seconds)), hard_close_at)
    return closes_at


def summary_title(event_name: str, count: int, first: datetime, last: datetime) -> str:
    times = "time" if count == 1 else "times"
    return f"{event_name} seen {count:,} {times} between {first:%H:%M} and {last:%H:%M} UTC"


def record_hits(hits: Sequence[RollupHit], *, now: datetime) -> list[int]:
    """Count hits into the open window of each (trigger, channel, destination), opening one
    if needed. Call inside the consumer's transaction, with hits of new events only.

    A window whose time is up but which beat has not flushed yet is flushed here first;
    the ids of deliveries that creates are returned for sending after the commit.
    """
    to_send: list[int] = []
    grouped: dict[tuple[int, str, str], list[RollupHit]] = defaultdict(list)
    for hit in hits:
        grouped[(hit.trigger.id, hit.channel, hit.destination)].append(hit)
    for (trigger_id, channel, destination), group in grouped.items():
        trigger = group[0].trigger
        spec = trigger.delivery
        window = (
            RollupWindow.objects.select_for_update()
            .filter(
                trigger_id=trigger_id,
                channel=channel,
                destination=destination,
                status=RollupWindow.Status.OPEN,
            )
            .select_related("trigger", "trigger__team")
            .first()
        )
        if window is not None and window.closes_at <= now:
            to_send.extend(_flush(window, now))
            window = None
        first_at = min(h.event.occurred_at for h in group)
        last_at = max(h.event.occurred_at for h in group)
        if window is None:
            closes_at, hard_close_at = open_bounds(spec, now)
            window = RollupWindow(
                trigger_id=trigger_id,
                channel=channel,
                destination=destination,
                recipient_id=group[0].recipient_id,
                opened_at=now,
                closes_at=closes_at,
                hard_close_at=hard_close_at,
                first_event_at=first_at,
                last_event_at=last_at,
            )
        window.count += len(group)
        window.first_event_at = min(window.first_event_at, first_at)
        window.last_event_at = max(window.last_event_at, last_at)
        window.samples = (window.samples + [h.sample for h in group])[:MAX_SAMPLES]
        window.closes_at = closes_after_hit(
            spec,
            closes_at=window.closes_at,
            hard_close_at=window.hard_close_at,
            count=window.count,
            now=now,
        )
        window.save()
        if channel == "in_app":
            _grow_in_app(window, group)
    return to_send


def _grow_in_app(window: RollupWindow, group: Sequence[RollupHit]) -> None:
    """The in-app side of a window is one notification whose count grows."""
    if group[0].recipient_id is None:
        return
    store.grow(
        rollup_draft(
            group[0],
            window_id=window.pk,
            count=len(group),
            first_seen_at=window.first_event_at,
            last_seen_at=window.last_event_at,
        )
    )


def _flush(window: RollupWindow, now: datetime) -> list[int]:
    """Mark one window flushed and create its single summary Delivery (none for in-app,
    whose notification already carries the count). Returns the new delivery's id."""
    window.status = RollupWindow.Status.FLUSHED
    window.flushed_at = now
    window.save(update_fields=["status", "flushed_at"])
    if window.channel == "in_app":
        return []
    trigger = window.trigger
    title = summary_title(
        trigger.event_name or trigger.name,
        window.count,
        window.first_event_at,
        window.last_event_at,
    )
    gone = _no_longer_hears(window)
    delivery, made = Delivery.objects.get_or_create(
        idempotency_key=f"rollup:{window.pk}",
        defaults={
            **({"status": DeliveryStatus.SKIPPED, "last_error": gone} if gone else {}),
            "channel": window.channel,
            "destination": window.destination,
            "team_id": trigger.team_id,
            "recipient_id": window.recipient_id,
            "trigger": trigger,
            "rollup": window,
            "message": {
                "title": f"{trigger.name}: {title}",
                "lines": window.samples,
                "count": window.count,
                "team_name": trigger.team.name,
                "category": "alert",
                "topic": trigger.event_name or trigger.name,
            },
        },
    )
    return [delivery.pk] if made and not gone else []


def _no_longer_hears(window: RollupWindow) -> str:
    """Why a per-recipient window's summary must not reach its person any more ("" when it
    may): since the window opened they muted the trigger (or were unsubscribed from it),
    left or muted the team, or switched alerts off on the channel (the email's unsubscribe
    link). The summary is then recorded ``skipped`` with that reason, never sent."""
    user_id, trigger = window.recipient_id, window.trigger
    if user_id is None:
        return ""
    subscribers = set(trigger.subscribers.values_list("id", flat=True)) or {trigger.owner_id}
    if user_id not in subscribers:
        return "you no longer subscribe to this trigger"
    if not Membership.objects.filter(user_id=user_id, team_id=trigger.team_id).exists():
        return "you are no longer a member of this team"
    preference = Preference.objects.filter(user_id=user_id).first()
    if preference is not None and preference.muted_teams.filter(pk=trigger.team_id).exists():
        return "you muted this team"
    if preference is not None and not preference.allows("alert", window.channel):
        return f"you switched alerts off for {window.channel}"
    return ""


def flush_due(*, now: datetime, limit: int = 500) -> list[int]:
    """Close every window whose time is up: one Delivery per external destination, through
    the attention stage (a summary to a person in quiet hours is held). Returns the ids of
    deliveries to send. Safe to run concurrently and repeatedly."""
    created: list[int] = []
    with transaction.atomic():
        due = (
            RollupWindow.objects.select_for_update(skip_locked=True)
            .filter(status=RollupWindow.Status.OPEN, closes_at__lte=now)
            .select_related("trigger", "trigger__team")
            .order_by("closes_at")[:limit]
        )
        for window in due:
            created.extend(_flush(window, now))
        return attention.deliveries_due(created, now=now)
