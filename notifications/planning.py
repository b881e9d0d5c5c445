"""Turn matches into notifications to store: the one planning function, and the message
text. Pure: plain data in, plain data out.

Every match the consumer finds — a trigger that fired, or activity on someone's resource —
goes through :func:`plan`. It decides who hears about it and renders what they read; the
store writes the drafts idempotently, keyed by event × trigger × recipient.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from notifications.events import Event, Source
from notifications.triggers import CompiledTrigger, Kind

ACTIVITY_VERBS = {
    "created": "created",
    "updated": "edited",
    "deleted": "deleted",
    "sent": "sent",
    "failed": "failed to send",
}
RESOURCE_LABELS = {"featureflag": "feature flag", "eventdefinition": "event definition"}
MAX_BODY_PROPERTIES = 6


@dataclass(frozen=True)
class Match:
    """Something worth telling people about: an event, and the trigger that matched it
    (None for built-in activity on a resource someone owns or follows)."""

    event: Event
    trigger: CompiledTrigger | None
    candidates: frozenset[int]
    reason: str


@dataclass(frozen=True)
class Draft:
    recipient_id: int
    team_id: int
    category: str
    title: str
    body: str
    url: str
    actor_id: int | None
    actor_name: str
    trigger_id: int | None
    event_id: str
    event_name: str
    reason: str
    dedup_key: str
    occurred_at: datetime


@dataclass(frozen=True)
class Audience:
    """Who may hear about a team's events: its members, less those who muted the team or
    switched the category off for in-app."""

    members: Mapping[int, frozenset[int]]
    muted: Mapping[int, frozenset[int]]
    in_app_off: Mapping[int, frozenset[str]]

    def allows(self, user_id: int, team_id: int, category: str) -> bool:
        return (
            user_id in self.members.get(team_id, frozenset())
            and user_id not in self.muted.get(team_id, frozenset())
            and category not in self.in_app_off.get(user_id, frozenset())
        )


def _label(resource_type: str) -> str:
    return RESOURCE_LABELS.get(resource_type, resource_type)


def _format_value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def describe_changes(changes: Mapping[str, Any]) -> str:
    parts = []
    for name, change in changes.items():
        if isinstance(change, Mapping) and "before" in change:
            parts.append(
                f"{name}: {_format_value(change['before'])} → {_format_value(change['after'])}"
            )
        else:
            parts.append(name)
    return "; ".join(parts)


def render(event: Event, trigger: CompiledTrigger | None) -> tuple[str, str, str, str]:
    """(category, title, body, url) for one match."""
    subject_url = event.subject.url if event.subject else ""
    if trigger is None or trigger.kind == Kind.ACTIVITY:
        action = str(event.properties.get("action", ""))
        actor = event.actor.name if event.actor else "Someone"
        what = (
            f"{_label(event.subject.type)} “{event.subject.name}”" if event.subject else event.name
        )
        title = f"{actor} {ACTIVITY_VERBS.get(action, action)} {what}"
        changes = event.properties.get("changes") or {}
        body = f"Changed {describe_changes(changes)}" if action == "updated" and changes else ""
        return "activity", title, body, subject_url
    if event.source == Source.CHECK:
        return (
            "alert",
            f"{trigger.name}: {event.properties.get('summary', event.name)}",
            "",
            subject_url,
        )
    if trigger.kind == Kind.EVENT_COUNT:
        title = (
            f"{trigger.name}: {event.name} seen {trigger.count} times "
            f"within {trigger.window_minutes} minutes"
        )
        return "alert", title, "", subject_url
    shown = list(event.properties.items())[:MAX_BODY_PROPERTIES]
    body = ", ".join(f"{k}={_format_value(v)}" for k, v in shown)
    return "alert", f"{trigger.name}: {event.name}", body, subject_url


def plan(matches: Iterable[Match], audience: Audience) -> list[Draft]:
    """In-app drafts for every match and every allowed candidate; never the actor."""
    drafts = []
    for match in matches:
        event, trigger = match.event, match.trigger
        category, title, body, url = render(event, trigger)
        actor_id = event.actor.id if event.actor else None
        for user_id in sorted(match.candidates):
            if user_id == actor_id or not audience.allows(user_id, event.team_id, category):
                continue
            trigger_part = trigger.id if trigger else "activity"
            drafts.append(
                Draft(
                    recipient_id=user_id,
                    team_id=event.team_id,
                    category=category,
                    title=title[:400],
                    body=body,
                    url=url,
                    actor_id=actor_id,
                    actor_name=event.actor.name if event.actor else "",
                    trigger_id=trigger.id if trigger else None,
                    event_id=str(event.id),
                    event_name=event.name,
                    reason=match.reason,
                    dedup_key=f"{event.id}:{trigger_part}:{user_id}",
                    occurred_at=event.occurred_at,
                )
            )
    return drafts
