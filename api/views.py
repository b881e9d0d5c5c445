from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from api.health import service_health
from api.permissions import organization_roles
from api.serializers import MeSerializer, TeamSerializer
from workspace.models import Team


class HealthView(APIView):
    """Database, Redis and Kafka, each ``ok`` or the error; 503 when any is not ok."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        responses=inline_serializer(
            "Health",
            {name: serializers.CharField() for name in ("database", "redis", "kafka")},
        )
    )
    def get(self, request):
        results = service_health()
        healthy = all(value == "ok" for value in results.values())
        return Response(
            results, status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE
        )


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user).data)


class TeamsView(APIView):
    """The caller's teams; admins and owners also see the ingestion ``api_token``."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=TeamSerializer(many=True))
    def get(self, request):
        teams = (
            Team.objects.filter(memberships__user=request.user)
            .select_related("organization")
            .order_by("organization__name", "name")
        )
        context = {
            "roles": dict(request.user.memberships.values_list("team_id", "role")),
            "organization_roles": organization_roles(request.user),
        }
        return Response(TeamSerializer(teams, many=True, context=context).data)
