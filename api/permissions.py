"""Tenant scoping in one place: every team- or organization-owned object is reached through
the caller's memberships (``workspace.models.teams_of``, which the pages use too), so a
member of one organization never sees another's data.

- Team-owned rows (triggers, resources) go through :class:`TeamScopedViewSet`, and a
  ``team`` in a body through :class:`CallerTeamField`.
- Organization-owned rows (channel configuration) go through :class:`OrgScopedViewSet`,
  and an ``organization`` in a body through :class:`CallerOrganizationField`.
- Rows that belong to a person rather than a team have their scope here too:
  :func:`deliveries_of`, :func:`announcements_for` (notifications and preferences are the
  caller's own by construction in ``notifications.services``).

Anything outside the scope does not exist for the caller (404 on ids, 400 on body
references); inside it, roles decide writes (403). An organization admin is an admin or
owner of any team of that organization.

Rate limits live here as well: :class:`IngestRateThrottle` (scope ``ingest``, per client IP)
and :class:`HealthRateThrottle` (scope ``health``, per client IP, not for staff).
"""

from __future__ import annotations

import redis
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q, QuerySet
from rest_framework import permissions, serializers, viewsets
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from notifications.models import Announcement, Delivery
from workspace.models import Membership, Organization, Role, Team, teams_of

ADMIN_ROLES = (Role.ADMIN, Role.OWNER)


def organizations_of(user) -> QuerySet[Organization]:
    return Organization.objects.filter(teams__memberships__user=user).distinct()


def admin_organizations_of(user) -> QuerySet[Organization]:
    return Organization.objects.filter(
        teams__memberships__user=user, teams__memberships__role__in=ADMIN_ROLES
    ).distinct()


def is_org_admin(user, organization_id: int | None) -> bool:
    if organization_id is None:
        return False
    return Membership.objects.filter(
        user=user, team__organization_id=organization_id, role__in=ADMIN_ROLES
    ).exists()


ROLE_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}


def organization_roles(user) -> dict[int, str]:
    """``{organization id: role}`` for each organization ``user`` belongs to: the highest
    role of their memberships in its teams (so ``admin`` or ``owner`` means organization
    admin, as :func:`is_org_admin` has it)."""
    roles: dict[int, str] = {}
    for org_id, role in Membership.objects.filter(user=user).values_list(
        "team__organization_id", "role"
    ):
        if org_id not in roles or ROLE_RANK[role] > ROLE_RANK[roles[org_id]]:
            roles[org_id] = role
    return roles


def deliveries_of(user) -> QuerySet[Delivery]:
    """Deliveries addressed to ``user``, plus every delivery of a trigger they own in a team
    they still belong to."""
    return Delivery.objects.filter(
        Q(recipient=user) | Q(trigger__owner=user, trigger__team__in=teams_of(user))
    )


def announcements_for(user) -> QuerySet[Announcement]:
    """Announcements to everyone, and to the organizations ``user`` belongs to."""
    return Announcement.objects.filter(
        Q(organization__isnull=True) | Q(organization__in=organizations_of(user))
    )


class CallerTeamField(serializers.PrimaryKeyRelatedField):
    """A ``team`` field that only accepts the caller's teams (others look nonexistent)."""

    def get_queryset(self):
        request = self.context.get("request")
        if request is None or not request.user.is_authenticated:
            return Team.objects.none()
        return teams_of(request.user)


class CallerOrganizationField(serializers.PrimaryKeyRelatedField):
    """An ``organization`` field that only accepts organizations the caller belongs to
    (staff: any, when ``staff_sees_all``); others look nonexistent."""

    def __init__(self, *, staff_sees_all: bool = False, **kwargs):
        self.staff_sees_all = staff_sees_all
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        if request is None or not request.user.is_authenticated:
            return Organization.objects.none()
        if self.staff_sees_all and request.user.is_staff:
            return Organization.objects.all()
        return organizations_of(request.user)


class TeamScopedViewSet(viewsets.ModelViewSet):
    """A ModelViewSet whose queryset is limited to objects in the caller's teams."""

    team_lookup = "team"

    def get_queryset(self):
        base = super().get_queryset()
        return base.filter(**{f"{self.team_lookup}__in": teams_of(self.request.user)})


class OrgScopedViewSet(viewsets.ModelViewSet):
    """A ModelViewSet whose queryset is limited to objects of the caller's organizations."""

    organization_lookup = "organization"

    def get_queryset(self):
        base = super().get_queryset()
        return base.filter(
            **{f"{self.organization_lookup}__in": organizations_of(self.request.user)}
        )


class IsOrgAdminOrReadOnly(permissions.BasePermission):
    """Members of an organization read; only its admins (admin/owner of any of its teams)
    write. Creating needs the caller to administer at least one organization; the view
    checks the body's organization itself once it is validated."""

    message = "Only an admin or owner of the organization can do this."

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS or getattr(view, "action", "") != "create":
            return True
        return admin_organizations_of(request.user).exists()

    def has_object_permission(self, request, view, obj):
        if request.method in permissions.SAFE_METHODS:
            return True
        return is_org_admin(request.user, obj.organization_id)


class IngestRateThrottle(SimpleRateThrottle):
    """Requests to ``/api/ingest/`` per client IP (the endpoint has no user), at the
    ``ingest`` rate of ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``, read at request time so
    ``override_settings`` works; :data:`DEFAULT_RATES` applies when the setting has none."""

    scope = "ingest"
    DEFAULT_RATES = {"ingest": "600/min"}

    def get_rate(self):
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        if self.scope in rates:
            return rates[self.scope]  # None switches the limit off
        if self.scope not in self.DEFAULT_RATES:
            raise ImproperlyConfigured(f"no throttle rate for scope {self.scope!r}")
        return self.DEFAULT_RATES[self.scope]

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class HealthRateThrottle(IngestRateThrottle):
    """Requests to ``/api/health/`` per client IP at the ``health`` rate, for all but staff.
    While Redis, which holds the counts, does not answer, every request passes: the page
    then says Redis is down (503) instead of failing (500)."""

    scope = "health"
    DEFAULT_RATES = {"health": "120/min"}

    def allow_request(self, request, view):
        if request.user.is_staff:
            return True
        try:
            return super().allow_request(request, view)
        except redis.RedisError:
            return True
