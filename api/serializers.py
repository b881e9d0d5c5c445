"""What ``/api/me/`` and ``/api/teams/`` answer. Both are read-only views, so every field
here is read-only: nothing in them is ever taken from a request body."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from workspace.models import Membership, Role, Team, UserProfile


class MembershipSerializer(serializers.ModelSerializer):
    team_name = serializers.CharField(source="team.name", read_only=True)
    organization = serializers.CharField(source="team.organization.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["team", "team_name", "organization", "role"]
        read_only_fields = fields


class MeSerializer(serializers.ModelSerializer):
    memberships = MembershipSerializer(many=True, read_only=True)
    timezone = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "first_name", "last_name", "timezone", "memberships"]
        read_only_fields = fields

    def get_timezone(self, user) -> str:
        profile = UserProfile.objects.filter(user=user).first()
        return profile.timezone if profile else "UTC"


class TeamSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="organization.name", read_only=True)
    role = serializers.SerializerMethodField()
    api_token = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = ["id", "name", "organization", "role", "api_token"]
        read_only_fields = fields

    def get_role(self, team) -> str:
        return self.context["roles"].get(team.id, "")

    def get_api_token(self, team) -> str | None:
        return team.api_token if self.get_role(team) in (Role.ADMIN, Role.OWNER) else None
