from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from api.health import FIGURE_HELP, SERVICES, THRESHOLDS, health
from api.permissions import HealthRateThrottle, organization_roles
from api.serializers import MeSerializer, TeamSerializer
from workspace.models import Team

_HEALTH = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(choices=["ok", "degraded", "down"]),
        "reasons": serializers.ListField(child=serializers.CharField()),
        **{name: serializers.CharField() for name in SERVICES},
        "pipeline": inline_serializer(
            "HealthPipeline",
            {
                name: serializers.FloatField(allow_null=True, help_text=help_text)
                for name, help_text in FIGURE_HELP.items()
            },
        ),
        "thresholds": inline_serializer(
            "HealthThresholds",
            {t.figure: serializers.FloatField(help_text=t.setting) for t in THRESHOLDS},
        ),
        "checked_at": serializers.DateTimeField(
            help_text="When this reading was taken; one serves every caller for 5 s."
        ),
    },
)


class HealthView(APIView):
    """Whether notiflow works and keeps up: each service ``ok`` or ``error: unreachable``
    (staff: the error itself), the pipeline's figures against their thresholds, and
    ``status`` ``ok``, ``degraded`` (behind: 200) or ``down`` (a service does not answer:
    503), with a reason for each problem, as read at ``checked_at`` (one reading serves
    every caller for 5 s). Anyone may ask; all but staff at the ``health`` rate per client
    IP (429 beyond it)."""

    permission_classes = [AllowAny]
    throttle_classes = [HealthRateThrottle]

    @classmethod
    def as_view(cls, **initkwargs):
        # It must answer while the database does not: no request transaction around it
        # (ATOMIC_REQUESTS would connect before the view runs, and the page would be a 500).
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    @extend_schema(
        responses={
            200: _HEALTH,
            503: OpenApiResponse(_HEALTH, description="A service does not answer."),
            429: OpenApiResponse(
                inline_serializer("HealthThrottled", {"detail": serializers.CharField()}),
                description="Over the health rate for this client IP.",
            ),
        }
    )
    def get(self, request):
        report, reachable = health(detailed=request.user.is_staff)
        return Response(
            report,
            status=status.HTTP_200_OK if reachable else status.HTTP_503_SERVICE_UNAVAILABLE,
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
