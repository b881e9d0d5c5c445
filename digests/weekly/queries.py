"""QuerySet builders for the weekly digest: pure, lazy, no evaluation here.

Each builder takes the teams of one batch (a Team QuerySet or a collection of ids; a
QuerySet becomes a subquery, so a batch costs one SQL statement per kind) and, for the
team-level kinds, the ``[start, end)`` window. Rows come back as ``.values()`` dicts whose
keys match the fields of the item type in :mod:`digests.weekly.types`, plus ``team_id``.
:mod:`digests.weekly.activities` evaluates them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from django.db.models import Count, F, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Concat, NullIf, Trim

from digests.weekly.keys import TeamDataKey
from notifications.models import Preference, Trigger
from workspace.models import (
    Cohort,
    Dashboard,
    EventDefinition,
    Experiment,
    FeatureFlag,
    Membership,
    Organization,
    Survey,
    Team,
)

Teams = QuerySet[Team] | Collection[int]
TeamQuery = Callable[[Teams, datetime, datetime], QuerySet[Any, dict[str, Any]]]


def _team_ids(teams: Teams) -> Any:
    return teams.values("id") if isinstance(teams, QuerySet) else list(teams)


def _creator_name() -> Any:
    """The creator's full name, or their username when they have none."""
    full = NullIf(
        Trim(Concat("created_by__first_name", Value(" "), "created_by__last_name")), Value("")
    )
    return Coalesce(full, "created_by__username", Value(""))


def organizations() -> QuerySet[Organization]:
    return Organization.objects.order_by("id")


def org_team_pairs() -> QuerySet:
    """``(organization_id, team_id)`` of every team, for cutting batches."""
    return Team.objects.order_by("organization_id", "id").values_list("organization_id", "id")


def query_new_dashboards(teams: Teams, start: datetime, end: datetime) -> QuerySet:
    return (
        Dashboard.objects.filter(
            team_id__in=_team_ids(teams), created_at__gte=start, created_at__lt=end
        )
        .order_by("team_id", "created_at", "id")
        .values("id", "name", "team_id", creator=_creator_name())
    )


def query_new_event_definitions(teams: Teams, start: datetime, end: datetime) -> QuerySet:
    return (
        EventDefinition.objects.filter(
            team_id__in=_team_ids(teams), created_at__gte=start, created_at__lt=end
        )
        .order_by("team_id", "name", "id")
        .values("id", "name", "team_id")
    )


def query_experiments_launched(teams: Teams, start: datetime, end: datetime) -> QuerySet:
    """Experiments whose ``start_date`` falls in the window (drafts have none)."""
    return (
        Experiment.objects.filter(
            team_id__in=_team_ids(teams), start_date__gte=start, start_date__lt=end
        )
        .exclude(status=Experiment.Status.DRAFT)
        .order_by("team_id", "start_date", "id")
        .values("id", "name", "team_id", "start_date", "end_date")
    )


def query_experiments_completed(teams: Teams, start: datetime, end: datetime) -> QuerySet:
    """Experiments whose ``end_date`` falls in the window."""
    return (
        Experiment.objects.filter(
            team_id__in=_team_ids(teams), end_date__gte=start, end_date__lt=end
        )
        .order_by("team_id", "end_date", "id")
        .values("id", "name", "team_id", "start_date", "end_date")
    )


def query_new_feature_flags(teams: Teams, start: datetime, end: datetime) -> QuerySet:
    return (
        FeatureFlag.objects.filter(
            team_id__in=_team_ids(teams), created_at__gte=start, created_at__lt=end
        )
        .order_by("team_id", "created_at", "id")
        .values("id", "name", "team_id", "key")
    )


def query_surveys_launched(teams: Teams, start: datetime, end: datetime) -> QuerySet:
    """Surveys whose ``launched_at`` falls in the window (stopped since or not)."""
    return (
        Survey.objects.filter(
            team_id__in=_team_ids(teams), launched_at__gte=start, launched_at__lt=end
        )
        .order_by("team_id", "launched_at", "id")
        .values("id", "name", "team_id", "launched_at")
    )


def query_new_cohorts(teams: Teams, start: datetime, end: datetime) -> QuerySet:
    return (
        Cohort.objects.filter(
            team_id__in=_team_ids(teams), created_at__gte=start, created_at__lt=end
        )
        .order_by("team_id", "created_at", "id")
        .values("id", "name", "team_id", "count")
    )


TEAM_QUERIES: dict[TeamDataKey, TeamQuery] = {
    TeamDataKey.DASHBOARDS: query_new_dashboards,
    TeamDataKey.EVENT_DEFINITIONS: query_new_event_definitions,
    TeamDataKey.EXPERIMENTS_LAUNCHED: query_experiments_launched,
    TeamDataKey.EXPERIMENTS_COMPLETED: query_experiments_completed,
    TeamDataKey.FEATURE_FLAGS: query_new_feature_flags,
    TeamDataKey.SURVEYS_LAUNCHED: query_surveys_launched,
    TeamDataKey.COHORTS: query_new_cohorts,
}


def members_of(teams: Teams) -> QuerySet:
    """Ids of the active users who belong to any of the teams (a subquery)."""
    return Membership.objects.filter(team_id__in=_team_ids(teams), user__is_active=True).values(
        "user_id"
    )


def query_memberships(users: QuerySet | Collection[int]) -> QuerySet:
    """Every team membership of the given users: one row per (user, team)."""
    return (
        Membership.objects.filter(user_id__in=users)
        .order_by("user_id", "team_id")
        .values("user_id", "team_id")
    )


def query_notification_settings(users: QuerySet | Collection[int]) -> QuerySet:
    """The users' preferences, one row per (preference, muted team); a preference with
    nothing muted gives one row with ``muted_team_id`` None. Users without a row have the
    model's defaults."""
    return (
        Preference.objects.filter(user_id__in=users)
        .order_by("user_id")
        .values("user_id", "digest_cadence", "channels", muted_team_id=F("muted_teams"))
    )


def query_trigger_counts(teams: Teams) -> QuerySet:
    """How many enabled triggers each owner has in each team."""
    return (
        Trigger.objects.filter(team_id__in=_team_ids(teams), enabled=True)
        .order_by()
        .values("team_id", "owner_id")
        .annotate(triggers=Count("id"))
    )


def query_team_facts(teams: Teams) -> QuerySet:
    """Each team's name and busiest event over the last 30 days (None when it has none)."""
    busiest = EventDefinition.objects.filter(team_id=OuterRef("pk")).order_by(
        "-volume_30_day", "name"
    )
    return (
        Team.objects.filter(id__in=_team_ids(teams))
        .order_by("id")
        .values("id", "name", top_event=Subquery(busiest.values("name")[:1]))
    )


def query_org_teams(org_ids: Collection[int]) -> QuerySet:
    """Team id and name with their org's id and name, for aggregation."""
    return (
        Team.objects.filter(organization_id__in=list(org_ids))
        .order_by("organization_id", "name", "id")
        .values("id", "name", "organization_id", org_name=F("organization__name"))
    )


def query_org_recipients(org_ids: Collection[int]) -> QuerySet:
    """Active members of the given orgs with their address: one row per (user, team)."""
    return (
        Membership.objects.filter(team__organization_id__in=list(org_ids), user__is_active=True)
        .order_by("team__organization_id", "user_id", "team_id")
        .values(
            "user_id",
            "team_id",
            "user__email",
            "user__first_name",
            "user__username",
            org_id=F("team__organization_id"),
        )
    )
