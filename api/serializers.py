"""What ``/api/me/`` and ``/api/teams/`` answer. Both are read-only views, so every field
here is read-only: nothing in them is ever taken from a request body."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.permissions import organization_roles
from workspace.models import Membership, Organization, Role, Team, UserProfile

ORGANIZATION_ROLE_HELP = (
    "The caller's highest role in any team of the organization; admin or owner may manage "
    "its channels and announcements."
)


class MembershipSerializer(serializers.ModelSerializer):
    team_name = serializers.CharField(source="team.name", read_only=True)
    organization = serializers.CharField(source="team.organization.name", read_only=True)
    organization_id = serializers.IntegerField(source="team.organization_id", read_only=True)

    class Meta:
        model = Membership
        fields = ["team", "team_name", "organization", "organization_id", "role"]
        read_only_fields = fields


class OrganizationRoleSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text=ORGANIZATION_ROLE_HELP)

    class Meta:
        model = Organization
        fields = ["id", "name", "role"]
        read_only_fields = fields

    def get_role(self, organization) -> Role:
        return self.context["roles"][organization.id]


class MeSerializer(serializers.ModelSerializer):
    memberships = MembershipSerializer(many=True, read_only=True)
    organizations = serializers.SerializerMethodField(
        help_text="The organizations the user belongs to, by name, with their role in each; "
        "an `id` here is what `POST /api/channels/` takes as `organization`."
    )
    timezone = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "timezone",
            "organizations",
            "memberships",
        ]
        read_only_fields = fields

    def get_timezone(self, user) -> str:
        profile = UserProfile.objects.filter(user=user).first()
        return profile.timezone if profile else "UTC"

    @extend_schema_field(OrganizationRoleSerializer(many=True))
    def get_organizations(self, user) -> list:
        roles = organization_roles(user)
        organizations = Organization.objects.filter(pk__in=roles).order_by("name", "id")
        return OrganizationRoleSerializer(organizations, many=True, context={"roles": roles}).data


class TeamSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="organization.name", read_only=True)
    organization_id = serializers.IntegerField(read_only=True)
    role = serializers.SerializerMethodField()
    organization_role = serializers.SerializerMethodField(help_text=ORGANIZATION_ROLE_HELP)
    api_token = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = [
            "id",
            "name",
            "organization",
            "organization_id",
            "role",
            "organization_role",
            "api_token",
        ]
        read_only_fields = fields

    def get_role(self, team) -> str:
        return self.context["roles"].get(team.id, "")

    def get_organization_role(self, team) -> Role:
        return self.context["organization_roles"][team.organization_id]

    def get_api_token(self, team) -> str | None:
        return team.api_token if self.get_role(team) in (Role.ADMIN, Role.OWNER) else None
