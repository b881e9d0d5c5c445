"""The notification store and what drives it: triggers, in-app notifications, the outbox."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from notifications.channels import registry
from notifications.triggers import ThresholdState, kind_choices
from workspace.models import Team


class Category(models.TextChoices):
    """What a notification is about; preferences switch channels per category."""

    ALERT = "alert", "Alerts on your data"
    ACTIVITY = "activity", "Activity on your work"
    SUBSCRIPTION = "subscription", "Subscriptions"
    ANNOUNCEMENT = "announcement", "Announcements"
    DIGEST = "digest", "Digests (per-user and the weekly organization digest)"
    PERSONAL_DIRECT = "personal-direct", "Direct to you (never in a digest)"


class TriggerRevision(models.Model):
    """One counter that every trigger change raises in the change's own transaction.

    The consumer's trigger cache is only as new as the revision it loaded; every event
    published to the stream carries the revision current when it was published (a record
    header, see ``stream.publish_events``), and the consumer reloads before it evaluates an
    event stamped with a newer one. An ``UPDATE … SET value = value + 1`` takes the row's
    lock until commit, so revisions become visible in commit order: unlike a newest
    ``updated_at``, no change can commit "behind" one the consumer already saw.

    Lock order: a transaction that changes triggers raises the revision *before* it locks
    any trigger row (``pre_save``, ``pre_delete``, the ``pre_`` subscriber signals, and
    before a bulk update), so two such transactions never wait for each other in a circle.
    Code that locks trigger rows itself before writing them (``select_for_update``,
    ``update_or_create``) calls :func:`trigger_revision_bump` first.
    """

    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"trigger revision {self.value}"


def trigger_revision() -> int:
    """The newest committed trigger revision (0 before the first change)."""
    return TriggerRevision.objects.filter(pk=1).values_list("value", flat=True).first() or 0


def trigger_revision_bump() -> None:
    """Raise the revision inside the caller's transaction (creating the row on first use),
    which holds its lock until the transaction ends: call it before locking trigger rows."""
    if not TriggerRevision.objects.filter(pk=1).update(value=models.F("value") + 1):
        TriggerRevision.objects.update_or_create(
            pk=1, defaults={"value": models.F("value") + 1}, create_defaults={"value": 1}
        )


class TriggerQuerySet(models.QuerySet):
    """Bulk updates change triggers as much as ``save()`` does: they raise the revision too,
    before the rows (``save``, ``delete`` and subscriber changes do so through signals, see
    ``apps.py``)."""

    def update(self, **kwargs):
        with transaction.atomic():
            trigger_revision_bump()
            return super().update(**kwargs)


class Trigger(models.Model):
    """A stored rule, per team, owned by a user. ``config`` is validated by ``triggers.py``."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="triggers")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="owned_triggers"
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=kind_choices)
    """Its choices are read from the kinds' declarations (``triggers.KINDS``) when asked, so
    no stored list of kinds is kept in step (and a new kind needs no migration)."""
    config = models.JSONField(default=dict, blank=True)
    channels = models.JSONField(default=list, blank=True)
    delivery = models.JSONField(default=dict, blank=True)
    subscribers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="subscribed_triggers", blank=True
    )
    event_name = models.CharField(
        max_length=200, blank=True, db_index=True, help_text="Copied from config for indexing."
    )
    enabled = models.BooleanField(default=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    critical = models.BooleanField(
        default=False,
        help_text="Goes through quiet hours and do-not-disturb; only organization admins set it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TriggerQuerySet.as_manager()

    class Meta:
        ordering = ["team", "name"]
        indexes = [models.Index(fields=["team", "kind", "event_name"], name="trigger_lookup")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        """In a transaction of its own when the caller has none: ``pre_save`` raises the
        revision before the row is written, and both must commit together."""
        self.event_name = str(self.config.get("event", "")) if isinstance(self.config, dict) else ""
        with transaction.atomic():
            super().save(*args, **kwargs)

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from notifications.triggers import InvalidTrigger, validate_config

        try:
            validate_config(self.kind, self.config)
        except InvalidTrigger as exc:
            raise ValidationError({"config": [f"{k}: {v}" for k, v in exc.errors.items()]}) from exc


class Notification(models.Model):
    """One row of the in-app store. A rolled-up burst is one row whose ``count`` grows.

    Rows carry what they need to render without joins (title, body, url, actor name) and
    what caused them (trigger, event) for "why am I seeing this".
    """

    # No index of its own: every inbox index leads with recipient.
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notifications",
        db_index=False,
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="notifications")
    category = models.CharField(max_length=32, choices=Category.choices)
    title = models.CharField(max_length=400)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=1000, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=200, blank=True)
    trigger = models.ForeignKey(
        Trigger, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    event_id = models.UUIDField(null=True, blank=True)
    event_name = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=400, blank=True, help_text="Why the recipient sees this.")
    dedup_key = models.CharField(max_length=200)  # unique: see Meta.constraints
    group_key = models.CharField(max_length=200, blank=True)
    count = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    snoozed_until = models.DateTimeField(
        null=True, blank=True, help_text="Hidden from the inbox until then."
    )

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            # A constraint, not unique=True, which would add a second, varchar_pattern_ops
            # index that no query uses (dedup_key is only ever compared whole).
            models.UniqueConstraint(fields=["dedup_key"], name="notification_dedup_key_unique"),
        ]
        indexes = [
            models.Index(fields=["recipient", "-last_seen_at", "-id"], name="inbox_list"),
            # The badge's count, index-only: exactly its predicate, and no INCLUDE, so
            # PostgreSQL deduplicates the (recipient, team, NULL) entries into a few pages.
            models.Index(
                fields=["recipient", "team", "snoozed_until"],
                condition=Q(read_at__isnull=True, archived_at__isnull=True),
                name="inbox_unread",
            ),
            # ?unread=true, newest first.
            models.Index(
                fields=["recipient", "-last_seen_at", "-id"],
                condition=Q(read_at__isnull=True, archived_at__isnull=True),
                name="inbox_unread_list",
            ),
            models.Index(
                fields=["recipient", "-last_seen_at", "-id"],
                condition=Q(archived_at__isnull=False),
                name="inbox_archived",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Outbox(models.Model):
    """An event waiting to be published, written in the same transaction as its cause.

    The relay publishes rows in id order per team and stamps ``published_at``; a crash
    between publish and stamp publishes the row again, and the consumer's dedup absorbs it.
    """

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True)
    team_id = models.BigIntegerField()
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"], condition=Q(published_at__isnull=True), name="outbox_pending"
            )
        ]

    def __str__(self) -> str:
        return f"outbox {self.id} team {self.team_id}"


class DigestCadence(models.TextChoices):
    OFF = "off"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"


class Preference(models.Model):
    """A user's notification settings. ``channels`` maps category → channel → on/off;
    anything not listed is on."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    channels = models.JSONField(default=dict, blank=True)
    muted_teams = models.ManyToManyField(Team, blank=True, related_name="+")
    digest_cadence = models.CharField(
        max_length=16, choices=DigestCadence.choices, default=DigestCadence.DAILY
    )
    digest_hour = models.PositiveSmallIntegerField(default=9)
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    dnd_until = models.DateTimeField(
        null=True, blank=True, help_text="Do not disturb: pushes wait until then."
    )
    critical_categories = models.JSONField(
        default=list, blank=True, help_text="Categories that pass quiet hours and do-not-disturb."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"preferences of {self.user}"

    def allows(self, category: str, channel: str) -> bool:
        return bool(self.channels.get(category, {}).get(channel, True))


class Follow(models.Model):
    """Someone who created, edited or commented on a resource hears about its activity
    until ``follows.FOLLOW_DECAY`` passes without them taking part again."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    resource_type = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=64)
    last_participated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "resource_type", "resource_id"], name="follow_unique"
            )
        ]
        indexes = [models.Index(fields=["resource_type", "resource_id", "last_participated_at"])]

    def __str__(self) -> str:
        return f"{self.user} follows {self.resource_type} {self.resource_id}"


class TriggerMatch(models.Model):
    """An event a trigger counted (``counting.claim_new_events``): an ``event_count`` match,
    at the time it counts at, or a roll-up hit. Unique per trigger × event, so a replay
    counts nothing twice; kept until ``counting.REPLAY_HORIZON`` after ``claimed_at``, as
    long as Kafka can still hand the event back (``counting.prune_claims``, beat)."""

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="matches")
    event_id = models.UUIDField()
    occurred_at = models.DateTimeField()
    claimed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trigger", "event_id"], name="trigger_match_unique")
        ]
        indexes = [
            models.Index(fields=["trigger", "occurred_at"]),
            models.Index(fields=["claimed_at"], name="trigger_match_claimed"),
        ]

    def __str__(self) -> str:
        return f"trigger {self.trigger_id} matched {self.event_id}"


class TriggerCheck(models.Model):
    """One scheduled evaluation of a check trigger (threshold, significance, cohort)."""

    State = ThresholdState  # one list, in the pure module

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="checks")
    checked_at = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices)
    notified = models.JSONField(default=list, blank=True)
    snapshot = models.JSONField(
        default=dict, blank=True, help_text="What the next check compares to."
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["trigger", "-checked_at"])]

    def __str__(self) -> str:
        return (
            f"check of trigger {self.trigger_id} at {self.checked_at:%Y-%m-%d %H:%M}: {self.state}"
        )


class TriggerState(models.Model):
    """Per-trigger memory across restarts: when an event_count trigger last fired."""

    trigger = models.OneToOneField(Trigger, on_delete=models.CASCADE, related_name="state")
    last_fired_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"state of trigger {self.trigger_id}"


class ChannelConfig(models.Model):
    """An organization's Slack workspace, webhook or Telegram bot. The secret (bot token,
    signing secret) is stored encrypted and never returned by the API."""

    organization = models.ForeignKey(
        "workspace.Organization", on_delete=models.CASCADE, related_name="channel_configs"
    )
    type = models.CharField(
        max_length=16,
        choices=registry.org_level_choices,
    )
    name = models.CharField(max_length=200)
    config = models.JSONField(default=dict, blank=True, help_text="Settings that are not secret.")
    secret_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "type", "name"], name="channel_config_unique_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} · {self.name}"


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    HELD = "held"
    """Waiting for the recipient's quiet hours or do-not-disturb to end (``held_until``)."""
    RELEASED = "released"
    """Was held; went out in one summary (``released_in``) when the quiet time ended."""


class RollupWindow(models.Model):
    """A burst being buffered for one trigger and destination: the first match opens it,
    later matches only count and keep a few samples, and at ``closes_at`` one summary goes
    out. At most one window per (trigger, channel, destination) is open at a time."""

    class Status(models.TextChoices):
        OPEN = "open"
        FLUSHED = "flushed"

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="rollups")
    channel = models.CharField(max_length=16, choices=registry.channel_choices)
    destination = models.CharField(max_length=400)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="The person a per-recipient window's summary goes to.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    hard_close_at = models.DateTimeField()
    first_event_at = models.DateTimeField()
    last_event_at = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    samples = models.JSONField(default=list, blank=True)
    flushed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trigger", "channel", "destination"],
                condition=Q(status="open"),
                name="one_open_rollup_per_destination",
            )
        ]
        indexes = [models.Index(fields=["status", "closes_at"], name="rollup_due")]

    def __str__(self) -> str:
        return f"{self.trigger} → {self.channel}:{self.destination} ({self.count})"


class Delivery(models.Model):
    """One message to one destination. ``idempotency_key`` is unique, and ``deliver`` claims
    the row with a conditional update (queued → sending), so a duplicated task sends nothing."""

    idempotency_key = models.CharField(max_length=300, unique=True)
    channel = models.CharField(max_length=16, choices=registry.channel_choices)
    destination = models.CharField(max_length=400)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="deliveries")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    trigger = models.ForeignKey(
        Trigger, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    notification = models.ForeignKey(
        Notification, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    rollup = models.OneToOneField(
        RollupWindow, null=True, blank=True, on_delete=models.SET_NULL, related_name="delivery"
    )
    message = models.JSONField(default=dict, help_text="The rendered-to-be message fields.")
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED
    )
    attempts = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(
        max_length=400,
        blank=True,
        help_text="Why it was held, released or passed (“held: quiet hours until 07:00 …”).",
    )
    held_until = models.DateTimeField(null=True, blank=True)
    released_in = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="released"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "next_retry_at"], name="delivery_due"),
            models.Index(fields=["recipient", "-created_at"], name="delivery_mine"),
            models.Index(fields=["held_until"], condition=Q(status="held"), name="delivery_held"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} → {self.destination} ({self.status})"


def trigger_changed(sender, **kwargs) -> None:
    """A trigger is about to be saved or deleted, or its subscribers to change: raise the
    revision first (the lock order, see :class:`TriggerRevision`)."""
    if str(kwargs.get("action", "pre_")).startswith("pre_"):
        trigger_revision_bump()


class Announcement(models.Model):
    """A "what's new" note from an organization's admins (or, with no organization, from
    staff to everyone). Posting one writes one ``announcement`` Notification per member,
    deduplicated per user, so each person sees it exactly once in the center."""

    organization = models.ForeignKey(
        "workspace.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="announcements",
        help_text="Empty: everyone.",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    title = models.CharField(max_length=400)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="announcement_list")]

    def __str__(self) -> str:
        return self.title
