"""Turn matches into notifications to store: the one planning function, and the message
text. Pure: plain data in, plain data out.

Every match the consumer finds — a trigger that fired, or activity on someone's resource —
goes through :func:`plan`. It decides who hears about it and renders what they read; the
store writes the drafts idempotently, keyed by event × trigger × recipient.

Every other in-app row is drafted here too — a roll-up's growing row
(:func:`rollup_draft`), an admin notice (:func:`channel_off_drafts`), an announcement
(:func:`announcement_draft`) — so that titles, reasons and dedup keys have one spelling and
``notifications.store`` is the one writer of :class:`Draft` rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from notifications.channels import registry
from notifications.events import Event, Source
from notifications.triggers import (
    CHECK_TITLE,
    IN_APP_ONLY,
    KINDS,
    ChannelSpec,
    CompiledTrigger,
    Mode,
)
from workspace.resources import Action, resource_label

ACTIVITY_VERBS: dict[str, str] = {
    Action.CREATED: "created",
    Action.UPDATED: "edited",
    Action.DELETED: "deleted",
    Action.SENT: "sent",
    Action.FAILED: "failed to send",
}
ACTIVITY_TOPICS: dict[str, tuple[str, str, str]] = {
    Action.CREATED: ("creation", "creations", "of"),
    Action.UPDATED: ("edit", "edits", "to"),
    Action.DELETED: ("deletion", "deletions", "of"),
    Action.SENT: ("send", "sends", "of"),
    Action.FAILED: ("failed send", "failed sends", "of"),
}
"""How a summary counts activity on one resource: (singular, plural, preposition), as in
"3 edits to Revenue" (here and in digests)."""
MAX_BODY_PROPERTIES = 6
TITLE_LENGTH = 400
"""``Notification.title``'s width: drafts are cut to it."""
ACTOR_NAME_LENGTH = 200
"""``Notification.actor_name``'s width."""

ACTIVITY_REASON = "You own or recently worked on this resource."
CHANNEL_ADMIN_REASON = "You administer this organization's channels."
ROLLUP_BODY = "Rolled up: matches in this window count into this one notification."


def subscriber_reason(trigger_name: str) -> str:
    """Why a trigger's subscriber sees what it matched."""
    return f"You subscribe to the trigger “{trigger_name}”."


def alert_title(trigger_name: str, what: str) -> str:
    """The title of an alert: the trigger's name, then what it saw."""
    return f"{trigger_name}: {what}"


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
    """One in-app notification row, as ``notifications.store`` writes it: everything the
    row holds but what its reader does to it (read, seen, archived, snoozed).
    ``dedup_key`` is unique: a draft whose key is stored already is not written again."""

    recipient_id: int
    team_id: int
    category: str
    title: str
    body: str
    reason: str
    dedup_key: str
    first_seen_at: datetime
    last_seen_at: datetime
    count: int = 1
    group_key: str = ""
    url: str = ""
    actor_name: str = ""
    event_name: str = ""
    actor_id: int | None = None
    trigger_id: int | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class DeliveryDraft:
    """One message for one destination, sent by the ``deliver`` task."""

    idempotency_key: str
    channel: str
    destination: str
    team_id: int
    recipient_id: int | None
    trigger_id: int | None
    dedup_key: str
    message: Mapping[str, Any]


@dataclass(frozen=True)
class RollupHit:
    """One event counted into the open window of (trigger, channel, destination)."""

    trigger: CompiledTrigger
    channel: str
    destination: str
    recipient_id: int | None
    event: Event
    sample: str


@dataclass
class Plan:
    notifications: list[Draft] = field(default_factory=list)
    deliveries: list[DeliveryDraft] = field(default_factory=list)
    rollup_hits: list[RollupHit] = field(default_factory=list)


@dataclass(frozen=True)
class Audience:
    """Who may hear about a team's events: its members, less those who muted the team or
    switched a category off for a channel; and per channel that needs one, each person's
    address on it (``{"email": {user_id: address}}``)."""

    members: Mapping[int, frozenset[int]]
    muted: Mapping[int, frozenset[int]]
    off: Mapping[int, frozenset[tuple[str, str]]]
    addresses: Mapping[str, Mapping[int, str]] = field(default_factory=dict)

    def address(self, user_id: int, channel: str) -> str:
        """Where ``user_id``'s ``channel`` delivery goes: their address on it, empty when they
        have none; their id on a channel that needs no address (in-app)."""
        if not registry.address_field(channel):
            return str(user_id)
        return self.addresses.get(channel, {}).get(user_id, "")

    def allows(self, user_id: int, team_id: int, category: str, channel: str = "in_app") -> bool:
        return (
            user_id in self.members.get(team_id, frozenset())
            and user_id not in self.muted.get(team_id, frozenset())
            and (category, channel) not in self.off.get(user_id, frozenset())
        )


def _format_value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def describe_changes(changes: Mapping[str, Any]) -> str:
    parts = []
    for name, change in changes.items():
        if isinstance(change, Mapping) and "before" in change:
            before, after = change["before"], change.get("after")
            parts.append(f"{name}: {_format_value(before)} → {_format_value(after)}")
        else:
            parts.append(name)
    return "; ".join(parts)


def render(event: Event, trigger: CompiledTrigger | None) -> tuple[str, str, str, str]:
    """(category, title, body, url) for one match. Total over any JSON properties: a
    value of an unexpected type (``changes`` that is not an object) renders as text or
    not at all, never raises."""
    subject_url = event.subject.url if event.subject else ""
    title_template = KINDS[trigger.kind].title if trigger is not None else None
    if trigger is None or title_template is None:
        action = str(event.properties.get("action", ""))
        actor = event.actor.name if event.actor else "Someone"
        subject = event.subject
        what = f"{resource_label(subject.type)} “{subject.name}”" if subject else event.name
        title = f"{actor} {ACTIVITY_VERBS.get(action, action)} {what}"
        changes = event.properties.get("changes")
        body = (
            f"Changed {describe_changes(changes)}"
            if action == "updated" and isinstance(changes, Mapping) and changes
            else ""
        )
        return "activity", title, body, subject_url
    checked = event.source == Source.CHECK
    what = (CHECK_TITLE if checked else title_template).format(
        event=event.name,
        count=trigger.count,
        window_minutes=trigger.window_minutes,
        summary=event.properties.get("summary", event.name),
    )
    body = ""
    if KINDS[trigger.kind].lists_properties and not checked:
        shown = list(event.properties.items())[:MAX_BODY_PROPERTIES]
        body = ", ".join(f"{k}={_format_value(v)}" for k, v in shown)
    return "alert", alert_title(trigger.name, what), body, subject_url


def topic(event: Event, trigger: CompiledTrigger | None) -> tuple[str, str]:
    """What a summary counts this match as: (singular, plural) for activity on a resource
    ("edit to Revenue", "edits to Revenue"), else (event name, "") counted as "9 ×
    checkout_error"."""
    if (trigger is None or KINDS[trigger.kind].title is None) and event.subject is not None:
        action = str(event.properties.get("action", ""))
        one, many, prep = ACTIVITY_TOPICS.get(action, (action, action, "of"))
        return f"{one} {prep} {event.subject.name}", f"{many} {prep} {event.subject.name}"
    return event.name, ""


def _sample(event: Event) -> str:
    shown = list(event.properties.items())[:3]
    when = event.occurred_at.strftime("%H:%M:%S")
    return f"{when} " + ", ".join(f"{k}={_format_value(v)}" for k, v in shown)


def plan(matches: Iterable[Match], audience: Audience) -> Plan:
    """Everything the matches cause: in-app drafts, deliveries and roll-up hits.

    Per recipient (never the actor, only members who allow the category on that channel):
    ``in_app`` and ``email``. Per trigger: ``slack``, ``webhook``, ``telegram`` targets.
    ``instant`` sends each match; ``rollup`` counts it into a window; ``digest`` only
    stores in-app rows for the digest to pick up. Built-in activity is in-app only.
    """
    result = Plan()
    for match in matches:
        event, trigger = match.event, match.trigger
        category, title, body, url = render(event, trigger)
        actor_id = event.actor.id if event.actor else None
        event_id = str(event.id)
        trigger_part = trigger.id if trigger else "activity"
        mode = trigger.delivery.mode if trigger else Mode.DIGEST
        channels = trigger.channels if trigger else IN_APP_ONLY
        if mode == Mode.DIGEST and not any(c.type == "in_app" for c in channels):
            channels = (*channels, ChannelSpec("in_app"))
        one, many = topic(event, trigger)
        message = {
            "title": title,
            "body": body,
            "url": url,
            "category": category,
            "topic": one,
            "topic_plural": many,
        }
        members = audience.members.get(event.team_id, frozenset())
        recipients = [
            user_id
            for user_id in sorted(match.candidates)
            if user_id != actor_id and user_id in members
        ]
        for spec in channels:
            targets: list[tuple[int | None, str]]
            if spec.per_recipient:
                targets = [
                    (user_id, audience.address(user_id, spec.type))
                    for user_id in recipients
                    if audience.allows(user_id, event.team_id, category, spec.type)
                ]
            else:
                targets = [(None, spec.target)]
            for user_id, destination in targets:
                if spec.type == "in_app" and mode != Mode.ROLLUP and user_id is not None:
                    result.notifications.append(
                        Draft(
                            recipient_id=user_id,
                            team_id=event.team_id,
                            category=category,
                            title=title[:TITLE_LENGTH],
                            body=body,
                            url=url,
                            actor_id=actor_id,
                            actor_name=event.actor.name if event.actor else "",
                            trigger_id=trigger.id if trigger else None,
                            event_id=event_id,
                            event_name=event.name,
                            reason=match.reason,
                            dedup_key=f"{event_id}:{trigger_part}:{user_id}",
                            group_key=f"{trigger_part}:{user_id}",
                            first_seen_at=event.occurred_at,
                            last_seen_at=event.occurred_at,
                        )
                    )
                elif trigger is not None and mode == Mode.ROLLUP:
                    result.rollup_hits.append(
                        RollupHit(trigger, spec.type, destination, user_id, event, _sample(event))
                    )
                elif trigger is not None and mode == Mode.INSTANT:
                    result.deliveries.append(
                        DeliveryDraft(
                            idempotency_key=f"{event_id}:{trigger.id}:{spec.type}:{destination}",
                            channel=spec.type,
                            destination=destination,
                            team_id=event.team_id,
                            recipient_id=user_id,
                            trigger_id=trigger.id,
                            dedup_key=f"{event_id}:{trigger_part}:{user_id}",
                            message=message,
                        )
                    )
    return result


def rollup_draft(
    hit: RollupHit, *, window_id: int, count: int, first_seen_at: datetime, last_seen_at: datetime
) -> Draft:
    """The in-app side of a roll-up window: one row per window × recipient whose ``count``
    grows with every hit (``store.grow``). ``hit`` is the window's first hit of a batch and
    has a recipient."""
    assert hit.recipient_id is not None
    trigger, event = hit.trigger, hit.event
    return Draft(
        recipient_id=hit.recipient_id,
        team_id=event.team_id,
        category="alert",
        title=alert_title(trigger.name, event.name)[:TITLE_LENGTH],
        body=ROLLUP_BODY,
        url=event.subject.url if event.subject else "",
        trigger_id=trigger.id,
        event_id=str(event.id),
        event_name=event.name,
        reason=subscriber_reason(trigger.name),
        dedup_key=f"rollup:{window_id}:{hit.recipient_id}",
        group_key=f"rollup:{trigger.id}:{hit.recipient_id}",
        count=count,
        first_seen_at=first_seen_at,
        last_seen_at=last_seen_at,
    )


def channel_off_drafts(
    *,
    channel: str,
    why: str,
    channel_id: int,
    team_id: int,
    admins: Iterable[int],
    now: datetime,
) -> list[Draft]:
    """Tell an organization's admins that its channel ``channel`` (its label) was turned
    off, and ``why``: one row per admin, once per channel and moment."""
    return [
        Draft(
            recipient_id=user_id,
            team_id=team_id,
            category="alert",
            title=f"{channel} was turned off"[:TITLE_LENGTH],
            body=why,
            reason=CHANNEL_ADMIN_REASON,
            dedup_key=f"channel-disabled:{channel_id}:{now:%Y%m%d%H%M%S}:{user_id}",
            first_seen_at=now,
            last_seen_at=now,
        )
        for user_id in sorted(admins)
    ]


def announcement_dedup_key(*, announcement_id: int, user_id: int) -> str:
    return f"announcement:{announcement_id}:{user_id}"


def announcement_draft(
    *,
    announcement_id: int,
    organization_wide: bool,
    recipient_id: int,
    team_id: int,
    title: str,
    body: str,
    actor_id: int,
    actor_name: str,
    now: datetime,
) -> Draft:
    """One person's copy of an announcement to an organization (``organization_wide``) or
    to everyone using notiflow, in the center of their team ``team_id``."""
    return Draft(
        recipient_id=recipient_id,
        team_id=team_id,
        category="announcement",
        title=title[:TITLE_LENGTH],
        body=body,
        actor_id=actor_id,
        actor_name=actor_name[:ACTOR_NAME_LENGTH],
        reason=(
            "An announcement to everyone in your organization."
            if organization_wide
            else "An announcement to everyone using notiflow."
        ),
        dedup_key=announcement_dedup_key(announcement_id=announcement_id, user_id=recipient_id),
        group_key=f"announcement:{announcement_id}",
        first_seen_at=now,
        last_seen_at=now,
    )
