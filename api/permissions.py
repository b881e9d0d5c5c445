"""Tenant scoping in one place: every team-owned object is reached through the caller's
memberships, so a member of one organization never sees another's data."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import serializers, viewsets

from workspace.models import Team


def teams_of(user) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user)


class CallerTeamField(serializers.PrimaryKeyRelatedField):
    """A ``team`` field that only accepts the caller's teams (others look nonexistent)."""

    def get_queryset(self):
        request = self.context.get("request")
        if request is None or not request.user.is_authenticated:
            return Team.objects.none()
        return teams_of(request.user)


class TeamScopedViewSet(viewsets.ModelViewSet):
    """A ModelViewSet whose queryset is limited to objects in the caller's teams."""

    team_lookup = "team"

    def get_queryset(self):
        base = super().get_queryset()
        return base.filter(**{f"{self.team_lookup}__in": teams_of(self.request.user)})
