"""The host product: organizations, teams (projects), members, and the resources they own.

This app knows nothing of notifications. Other apps learn about changes to its resources
through the activity log it writes.
"""

from __future__ import annotations

import logging
import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from workspace.resources import Action

log = logging.getLogger(__name__)


def new_api_token() -> str:
    return f"phc_{secrets.token_urlsafe(24)}"


def zone_in_effect(name: str | None) -> str:
    """``name`` if this machine knows the zone, else ``"UTC"``: a name stored by a process
    with newer tzdata, or one a tzdata update removed, is reckoned (and shown) as UTC
    rather than failing whoever reads it."""
    try:
        zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        log.warning("unknown timezone %r; reckoned as UTC", name)
        return "UTC"
    return name or "UTC"


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA timezone (e.g. Europe/Berlin)")


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    """A project inside an organization; events are ingested with its ``api_token``."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=200)
    api_token = models.CharField(max_length=64, unique=True, default=new_api_token)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="team_name_unique_in_org")
        ]

    def __str__(self) -> str:
        return f"{self.organization} / {self.name}"


class Role(models.TextChoices):
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"


class Membership(models.Model):
    """A user's access to one team. Admins and owners of any team administer its org."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="membership_unique_user_team")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


def teams_of(user) -> models.QuerySet[Team]:
    """The teams ``user`` is a member of: the tenant scope every page and API view starts
    from (``api.permissions`` builds on it)."""
    return Team.objects.filter(memberships__user=user)


class UserProfile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])

    def __str__(self) -> str:
        return f"{self.user} ({self.timezone})"


class Resource(models.Model):
    """What people own in a team. Every concrete resource has a team and an owner."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=400)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name


class Dashboard(Resource):
    description = models.TextField(blank=True)
    pinned = models.BooleanField(default=False)


class Insight(Resource):
    description = models.TextField(blank=True)
    dashboard = models.ForeignKey(
        Dashboard, null=True, blank=True, on_delete=models.SET_NULL, related_name="insights"
    )
    query = models.JSONField(default=dict, blank=True)
    last_value = models.FloatField(null=True, blank=True)


class FeatureFlag(Resource):
    key = models.SlugField(max_length=200)
    active = models.BooleanField(default=True)
    rollout_percentage = models.PositiveSmallIntegerField(default=100)

    class Meta(Resource.Meta):
        constraints = [
            models.UniqueConstraint(fields=["team", "key"], name="flag_key_unique_in_team")
        ]


class Experiment(Resource):
    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        COMPLETE = "complete"

    feature_flag = models.ForeignKey(FeatureFlag, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    start_date = models.DateTimeField(null=True, blank=True)
    end_date = models.DateTimeField(null=True, blank=True)
    significance = models.FloatField(
        null=True, blank=True, help_text="p-value of the primary metric"
    )


class Survey(Resource):
    class Status(models.TextChoices):
        DRAFT = "draft"
        LAUNCHED = "launched"
        STOPPED = "stopped"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    questions = models.JSONField(default=list, blank=True)
    launched_at = models.DateTimeField(null=True, blank=True)


class EventDefinition(Resource):
    volume_30_day = models.PositiveIntegerField(default=0)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta(Resource.Meta):
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="event_definition_unique_in_team")
        ]


class Cohort(Resource):
    filters = models.JSONField(default=dict, blank=True)
    count = models.PositiveIntegerField(default=0)
    members = models.JSONField(default=list, blank=True, help_text="distinct_ids in the cohort")


class Subscription(Resource):
    """A scheduled delivery of an insight or dashboard; its sends and failures are activity."""

    class Target(models.TextChoices):
        EMAIL = "email"
        SLACK = "slack"

    class Frequency(models.TextChoices):
        DAILY = "daily"
        WEEKLY = "weekly"
        MONTHLY = "monthly"

    insight = models.ForeignKey(Insight, null=True, blank=True, on_delete=models.CASCADE)
    dashboard = models.ForeignKey(Dashboard, null=True, blank=True, on_delete=models.CASCADE)
    target_type = models.CharField(max_length=16, choices=Target.choices, default=Target.EMAIL)
    target_value = models.CharField(max_length=400)
    frequency = models.CharField(max_length=16, choices=Frequency.choices, default=Frequency.WEEKLY)
    last_sent_at = models.DateTimeField(null=True, blank=True)


class ActivityLog(models.Model):
    """Who did what to which resource, with the changed fields' before and after values."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="activity")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    resource_type = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=64)
    resource_name = models.CharField(max_length=400)
    owner_id = models.BigIntegerField(null=True, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "resource_type", "resource_id"])]

    def __str__(self) -> str:
        return (
            f"{self.actor_name or 'system'} {self.action} {self.resource_type} {self.resource_name}"
        )
