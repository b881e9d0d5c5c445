"""What people do with their notifications, named ``notification_<action>`` (and
``trigger_<action>``) with keyword arguments: the inbox (read, seen, archive), "why am I
seeing this" and "mute this trigger", every change to a trigger, preferences, channel
configuration and announcements.

Views validate input and call these; permission and tenant checks stay in ``api`` (these
functions trust the ids they are given to be the caller's to touch, except the inbox ones,
which only ever reach the user's own rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time
from itertools import islice
from typing import Any

from django.db import transaction
from django.db.models import Func, IntegerField, Min, Q, QuerySet, Subquery
from django.utils import timezone

from notifications import live, store
from notifications.attention import attention_changed
from notifications.channels import in_app, registry
from notifications.models import (
    Announcement,
    Category,
    ChannelConfig,
    Delivery,
    DeliveryStatus,
    Notification,
    Preference,
    Trigger,
    trigger_revision_bump,
)
from notifications.planning import announcement_draft
from notifications.quiet import dnd_label
from notifications.secrets import encrypt
from notifications.triggers import describe_trigger
from workspace.models import Membership, UserProfile, zone_in_effect


def notification_inbox(*, user) -> QuerySet[Notification]:
    """The user's notifications from teams they still belong to."""
    return Notification.objects.filter(
        recipient=user,
        team_id__in=Membership.objects.filter(user=user).values("team_id"),
    )


def _inbox_of_teams_now(*, user) -> QuerySet[Notification]:
    """:func:`notification_inbox` with the user's teams read first and sent as a list: for
    the badge's count PostgreSQL then takes ``team_id = ANY(…)`` as an index condition
    instead of joining the memberships on every unread entry."""
    team_ids = list(Membership.objects.filter(user=user).values_list("team_id", flat=True))
    return Notification.objects.filter(recipient=user, team_id__in=team_ids)


def _shown(inbox: QuerySet[Notification], now: datetime | None = None) -> QuerySet[Notification]:
    awake = Q(snoozed_until__isnull=True) | Q(snoozed_until__lte=now or timezone.now())
    return inbox.filter(awake, archived_at__isnull=True)


def notification_visible(*, user, now: datetime | None = None) -> QuerySet[Notification]:
    """The inbox as the list and the badge show it: not archived, not snoozed."""
    return _shown(notification_inbox(user=user), now)


def notification_unread_count(*, user) -> int:
    return _shown(_inbox_of_teams_now(user=user)).filter(read_at__isnull=True).count()


def notification_snooze(*, user, notification_id: int, until: datetime | None) -> bool:
    """Hide one notification until ``until`` (None wakes it); False if it is not theirs."""
    if not notification_inbox(user=user).filter(pk=notification_id).update(snoozed_until=until):
        return False
    live.inbox_changed([user.pk])
    return True


def notification_mark_read(*, user, notification_id: int, now: datetime | None = None) -> bool:
    """Mark one of the user's notifications read; False if it is not theirs."""
    inbox = notification_inbox(user=user).filter(pk=notification_id)
    if not inbox.exists():
        return False
    if inbox.filter(read_at__isnull=True).update(read_at=now or timezone.now()):
        live.inbox_changed([user.pk])
    return True


def notification_mark_all_read(*, user, now: datetime | None = None) -> int:
    marked = (
        notification_inbox(user=user)
        .filter(read_at__isnull=True)
        .update(read_at=now or timezone.now())
    )
    if marked:
        live.inbox_changed([user.pk])
    return marked


# --- the inbox: seen (the badge), archive ---------------------------------------------


@dataclass(frozen=True)
class UnreadState:
    """What the badge shows and what changes it: the unread count and the newest row.
    One statement on the inbox's indexes (after the user's teams), whatever its size."""

    unread: int
    latest_id: int | None
    latest_at: datetime | None

    @property
    def version(self) -> str:
        stamp = self.latest_at.isoformat() if self.latest_at else "-"
        return f"{self.unread}:{self.latest_id or 0}:{stamp}"


def notification_unread_state(*, user) -> UnreadState:
    """The newest row with the unread count beside it (a sub-query PostgreSQL runs once);
    an empty inbox has no row and nothing unread."""
    inbox = _inbox_of_teams_now(user=user)
    unread = (
        _shown(inbox)
        .filter(read_at__isnull=True)
        .order_by()
        .annotate(n=Func(template="COUNT(*)", output_field=IntegerField()))
        .values("n")
    )
    latest = (
        inbox.order_by("-last_seen_at", "-id")
        .annotate(unread=Subquery(unread, output_field=IntegerField()))
        .values_list("id", "last_seen_at", "unread")
        .first()
    )
    if latest is None:
        return UnreadState(unread=0, latest_id=None, latest_at=None)
    return UnreadState(unread=latest[2], latest_id=latest[0], latest_at=latest[1])


def _stamp_one(*, user, notification_id: int, field: str, now: datetime | None) -> bool:
    """Set ``field`` on one of the user's notifications if unset; False if it is not theirs."""
    inbox = notification_inbox(user=user).filter(pk=notification_id)
    if not inbox.exists():
        return False
    inbox.filter(**{f"{field}__isnull": True}).update(**{field: now or timezone.now()})
    return True


def notification_mark_seen(*, user, notification_id: int, now: datetime | None = None) -> bool:
    """Seen is weaker than read: the row was shown (the bell was opened), not acted on."""
    return _stamp_one(user=user, notification_id=notification_id, field="seen_at", now=now)


def notification_mark_all_seen(*, user, now: datetime | None = None) -> int:
    return (
        notification_inbox(user=user)
        .filter(seen_at__isnull=True)
        .update(seen_at=now or timezone.now())
    )


def notification_archive(*, user, notification_id: int, now: datetime | None = None) -> bool:
    """Move one notification out of the list (``?archived=true`` still shows it)."""
    if not _stamp_one(user=user, notification_id=notification_id, field="archived_at", now=now):
        return False
    live.inbox_changed([user.pk])
    return True


# --- "why am I seeing this" and "mute this trigger" -------------------------------------


class NotificationActionRefused(Exception):
    """The action cannot be done for a reason the caller should read (a 400, not a 404)."""


_CATEGORY_RULES = {
    Category.ACTIVITY: "Someone else created, changed or deleted something you own or follow",
    Category.ANNOUNCEMENT: "An announcement to everyone in your organization",
    Category.SUBSCRIPTION: "A subscription you own was sent or failed",
    Category.ALERT: "An alert on your data",
}


@dataclass(frozen=True)
class Explanation:
    """Why a notification reached its recipient. ``trigger`` is None for built-in activity,
    announcements, and triggers the caller can no longer see (deleted, or in a team they
    left)."""

    notification: Notification
    trigger: Trigger | None
    rule: str


def notification_explain(
    *, user, notification_id: int, visible_team_ids: Iterable[int]
) -> Explanation | None:
    """None when the notification is not the user's. ``visible_team_ids`` are the teams
    whose triggers the caller may read (the API's tenant scope)."""
    notification = (
        notification_inbox(user=user).select_related("trigger").filter(pk=notification_id).first()
    )
    if notification is None:
        return None
    trigger = notification.trigger
    if trigger is not None and trigger.team_id not in set(visible_team_ids):
        trigger = None
    if trigger is not None:
        rule = describe_trigger(trigger.kind, trigger.config or {})
    else:
        rule = _CATEGORY_RULES.get(notification.category, notification.reason)
    return Explanation(notification=notification, trigger=trigger, rule=rule)


def notification_mute_trigger(*, user, notification_id: int) -> Trigger | None:
    """Stop the trigger behind a notification from reaching ``user``: remove them from its
    subscribers. None when the notification is not theirs.

    A trigger with no subscribers reaches its owner alone, so the owner of such a trigger
    (or its only subscriber) cannot mute it this way: removing them would change nothing.
    That raises :class:`NotificationActionRefused` saying to disable or snooze it instead.
    Muting twice is fine. A roll-up window already open for them is not sent to them when
    it closes (``rollup._no_longer_hears``), and the trigger's pushes held by their quiet
    hours are skipped, so nothing reaches them after "this trigger will not notify you any
    more".
    """
    notification = (
        notification_inbox(user=user).select_related("trigger").filter(pk=notification_id).first()
    )
    if notification is None:
        return None
    trigger = notification.trigger
    if trigger is None:
        raise NotificationActionRefused(
            "this notification was not sent by a trigger; switch its category off in your "
            "preferences instead"
        )
    with transaction.atomic():
        trigger_revision_bump()  # before the trigger's row: the lock order of trigger writes
        trigger = Trigger.objects.select_for_update().get(pk=trigger.pk)
        subscribers = set(trigger.subscribers.values_list("id", flat=True))
        if trigger.owner_id == user.pk and subscribers <= {user.pk}:
            raise NotificationActionRefused(
                "you own this trigger and nobody else subscribes to it, so it would still "
                "reach you; disable or snooze the trigger instead"
            )
        if user.pk in subscribers:
            trigger.subscribers.remove(user)
        Delivery.objects.filter(recipient=user, trigger=trigger, status=DeliveryStatus.HELD).update(
            status=DeliveryStatus.SKIPPED,
            reason="skipped: you stopped this trigger notifying you while it was held",
            updated_at=timezone.now(),
        )
    return trigger


# --- trigger changes --------------------------------------------------------------------
#
# Every write to a trigger goes through one of these (the API's views call them; the pages
# write through the API). Each is one transaction, and each raises the trigger revision
# (``models.TriggerRevision``) before it touches the trigger's row, through the ``pre_``
# signals of ``save``, ``delete`` and the subscriber set: an event ingested after one of
# them returned is evaluated against the change. Validation and permissions are the
# caller's (``api.triggers``).

TRIGGER_FIELDS = (
    "team",
    "name",
    "kind",
    "config",
    "channels",
    "delivery",
    "subscribers",
    "enabled",
    "snoozed_until",
    "critical",
)
"""What a person sets on a trigger (the owner and the timestamps are the system's)."""
DEFAULT_CHANNELS: tuple[Mapping[str, str], ...] = ({"type": in_app.TYPE},)
DEFAULT_DELIVERY: Mapping[str, str] = {"mode": "instant"}


def _trigger_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(TRIGGER_FIELDS))
    if unknown:
        raise TypeError(f"not a trigger setting: {', '.join(unknown)}")
    return dict(changes)


def trigger_create(*, owner, subscribers: Iterable[int] = (), **values: Any) -> Trigger:
    """A new trigger owned by ``owner`` with the given :data:`TRIGGER_FIELDS` (``team``,
    ``name`` and ``kind`` at least). Without ``channels`` it notifies in the app, without
    ``delivery`` at once; no ``subscribers`` means the owner alone."""
    fields = _trigger_changes(values)
    fields.setdefault("channels", [dict(channel) for channel in DEFAULT_CHANNELS])
    fields.setdefault("delivery", dict(DEFAULT_DELIVERY))
    with transaction.atomic():
        trigger = Trigger.objects.create(owner=owner, **fields)
        trigger.subscribers.set(list(subscribers))
    return trigger


def trigger_update(
    *, trigger: Trigger, subscribers: Iterable[int] | None = None, **changes: Any
) -> Trigger:
    """Apply ``changes`` (any of :data:`TRIGGER_FIELDS`) to ``trigger``; ``subscribers``
    replaces the subscriber set (None leaves it)."""
    fields = _trigger_changes(changes)
    with transaction.atomic():
        for name, value in fields.items():
            setattr(trigger, name, value)
        trigger.save()
        if subscribers is not None:
            trigger.subscribers.set(list(subscribers))
    return trigger


def trigger_snooze(*, trigger: Trigger, until: datetime | None) -> Trigger:
    """Silence ``trigger`` until ``until`` (None clears the snooze); the caller checks that
    it is in the future."""
    trigger.snoozed_until = until
    trigger.save(update_fields=["snoozed_until", "updated_at"])
    return trigger


def trigger_set_enabled(*, trigger: Trigger, enabled: bool) -> Trigger:
    trigger.enabled = enabled
    trigger.save(update_fields=["enabled", "updated_at"])
    return trigger


def trigger_delete(*, trigger: Trigger) -> None:
    with transaction.atomic():
        trigger.delete()


def trigger_values(*, trigger: Trigger) -> dict[str, Any]:
    """The trigger's :data:`TRIGGER_FIELDS` as a body of ``/api/triggers/`` carries them
    (the team and subscribers as ids), with its ``id``: what the trigger page's form starts
    from and sends back changed."""
    values = {name: getattr(trigger, name) for name in TRIGGER_FIELDS}
    values["team"] = trigger.team_id
    values["subscribers"] = sorted(trigger.subscribers.values_list("pk", flat=True))
    return {"id": trigger.pk, **values}


# --- preferences ------------------------------------------------------------------------

CRITICAL_CHOICES = tuple(c for c in Category.values if c != Category.DIGEST)
"""Categories a person may let through quiet hours (digests are never held)."""
CRITICAL: frozenset[tuple[str, str]] = frozenset({(Category.ALERT.value, in_app.TYPE)})
"""(category, channel) switches that stay on: alerts on your data always reach the center."""


def is_critical(category: str, channel: str) -> bool:
    return (category, channel) in CRITICAL


def critical_message(category: str, channel: str) -> str:
    label = Category(category).label if category in Category.values else category
    where = "in the app" if channel == in_app.TYPE else f"by {channel}"
    return f"{label} {where} are critical and cannot be turned off"


def notification_preference(*, user) -> Preference:
    preference, _ = Preference.objects.get_or_create(user=user)
    return preference


def notification_preference_cells(
    *, preference: Preference, grid: Mapping[str, Iterable[str]]
) -> dict[str, dict[str, bool]]:
    """Every switch of ``grid`` (category → channels) as it applies: unset is on, and a
    critical switch is always on."""
    return {
        category: {
            channel: is_critical(category, channel) or preference.allows(category, channel)
            for channel in channels
        }
        for category, channels in grid.items()
    }


def notification_timezone(*, user) -> str:
    """The zone the user's times are reckoned in (UTC for one this machine does not know)."""
    profile = UserProfile.objects.filter(user=user).only("timezone").first()
    return zone_in_effect(profile.timezone if profile else None)


def notification_preference_update(
    *,
    user,
    channels: Mapping[str, Mapping[str, bool]] | None = None,
    digest_cadence: str | None = None,
    digest_hour: int | None = None,
    quiet_hours: tuple[time | None, time | None] | None = None,
    timezone_name: str | None = None,
    muted_team_ids: Iterable[int] | None = None,
    critical_categories: Iterable[str] | None = None,
    now: datetime | None = None,
) -> Preference:
    """Apply the given changes (None leaves a setting as it is). ``channels`` merges cell
    by cell; a critical cell is refused. ``muted_team_ids`` replaces the muted set and must
    already be limited to the user's teams by the caller. ``quiet_hours`` is (start, end),
    (None, None) clearing them. Changing quiet hours or the zone moves what is held for
    the user to the new end (:func:`notifications.attention.attention_changed`)."""
    with transaction.atomic():
        preference, _ = Preference.objects.select_for_update().get_or_create(user=user)
        fields = ["updated_at"]
        if channels:
            merged = {key: dict(value) for key, value in preference.channels.items()}
            for category, cells in channels.items():
                for channel, on in cells.items():
                    if not on and is_critical(category, channel):
                        raise NotificationActionRefused(critical_message(category, channel))
                    merged.setdefault(category, {})[channel] = bool(on)
            preference.channels = merged
            fields.append("channels")
        if digest_cadence is not None:
            preference.digest_cadence = digest_cadence
            fields.append("digest_cadence")
        if digest_hour is not None:
            preference.digest_hour = digest_hour
            fields.append("digest_hour")
        if quiet_hours is not None:
            preference.quiet_hours_start, preference.quiet_hours_end = quiet_hours
            fields += ["quiet_hours_start", "quiet_hours_end"]
        if critical_categories is not None:
            preference.critical_categories = sorted(set(critical_categories))
            fields.append("critical_categories")
        preference.save(update_fields=fields)
        if muted_team_ids is not None:
            preference.muted_teams.set(list(muted_team_ids))
        if timezone_name is not None:
            UserProfile.objects.update_or_create(user=user, defaults={"timezone": timezone_name})
        if quiet_hours is not None or timezone_name is not None:
            attention_changed(user_id=user.pk, now=now or timezone.now())
    return preference


def notification_dnd_set(
    *, user, until: datetime | None, now: datetime | None = None
) -> Preference:
    """Turn do-not-disturb on until ``until`` (the caller checks its bounds) or off (None).
    What is held for the user moves to the new end, or goes at the next release."""
    with transaction.atomic():
        preference, _ = Preference.objects.select_for_update().get_or_create(user=user)
        preference.dnd_until = until
        preference.save(update_fields=["dnd_until", "updated_at"])
        attention_changed(user_id=user.pk, now=now or timezone.now())
    return preference


def notification_dnd_state(*, user, preference: Preference | None, now: datetime) -> dict[str, Any]:
    """Do-not-disturb as the API and every page's header show it (``preference`` None:
    never set): ``dnd_until`` (None when off), the user's ``timezone`` and a ``label``."""
    until = notification_dnd_active(preference=preference, now=now)
    zone = notification_timezone(user=user)
    return {
        "dnd_until": until,
        "timezone": zone,
        "label": dnd_label(until, zone, now) if until else "",
    }


def notification_dnd_active(
    *, preference: Preference | None, now: datetime | None = None
) -> datetime | None:
    """When the user's do-not-disturb ends, or None when it is off (or over)."""
    until = preference.dnd_until if preference is not None else None
    return until if until is not None and until > (now or timezone.now()) else None


# --- channel configuration ----------------------------------------------------------------


def notification_channel_config_save(
    *,
    user,
    channel_config: ChannelConfig | None = None,
    organization_id: int | None = None,
    type: str | None = None,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    secret: str | None = None,
    enabled: bool | None = None,
) -> tuple[ChannelConfig, str | None]:
    """Create (``channel_config`` None) or update a channel. The secret is stored encrypted
    and never read back here. A new channel without a secret, of a type that generates one
    (a webhook), gets one, returned as the second value so the API can show it exactly
    once; otherwise that is None.
    Re-enabling a channel clears its failure count. Permission checks are the caller's."""
    shown_once = None
    if channel_config is None:
        channel_config = ChannelConfig(
            organization_id=organization_id, type=type, created_by=user, config={}
        )
        declared = registry.secret_of(type or "")
        if not secret and declared is not None and declared.generate is not None:
            secret = shown_once = declared.generate()
    if name is not None:
        channel_config.name = name
    if config is not None:
        channel_config.config = dict(config)
    if secret:
        channel_config.secret_encrypted = encrypt(secret)
    if enabled is not None:
        if enabled and not channel_config.enabled:
            channel_config.consecutive_failures = 0
            channel_config.disabled_reason = ""
        channel_config.enabled = enabled
    channel_config.save()
    return channel_config, shown_once


# --- announcements ------------------------------------------------------------------------

ANNOUNCEMENT_BATCH = 1000


def notification_announce(
    *, user, organization_id: int | None, title: str, body: str, now: datetime | None = None
) -> tuple[Announcement, int]:
    """Post an announcement and put it in the center of every active member of the
    organization (everyone when ``organization_id`` is None): one ``announcement``
    notification per person, in their first team of that organization, inserted in bulk
    and deduplicated by ``announcement:<id>:<user>``. People who switched announcements off
    in the app get none. Returns the announcement and how many notifications were written.
    Permission checks are the caller's."""
    now = now or timezone.now()
    with transaction.atomic():
        announcement = Announcement.objects.create(
            organization_id=organization_id, author=user, title=title, body=body
        )
        memberships = Membership.objects.filter(user__is_active=True)
        if organization_id is not None:
            memberships = memberships.filter(team__organization_id=organization_id)
        opted_out = Preference.objects.filter(
            **{f"channels__{Category.ANNOUNCEMENT}__{in_app.TYPE}": False}
        ).values("user_id")
        first_team = (
            memberships.exclude(user_id__in=opted_out)
            .values("user_id")
            .annotate(team_id=Min("team_id"))
            .order_by("user_id")
        )
        actor_name = user.get_full_name() or user.get_username()
        drafts = (
            announcement_draft(
                announcement_id=announcement.pk,
                organization_wide=organization_id is not None,
                recipient_id=row["user_id"],
                team_id=row["team_id"],
                title=title,
                body=body,
                actor_id=user.pk,
                actor_name=actor_name,
                now=now,
            )
            for row in first_team.iterator(chunk_size=ANNOUNCEMENT_BATCH)
        )
        written = 0
        while batch := list(islice(drafts, ANNOUNCEMENT_BATCH)):
            written += len(store.write(batch))
    return announcement, written
