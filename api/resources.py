"""CRUD for the host product's resources, scoped to the caller's teams. Every write goes
through the model's save/delete, so the activity log records who changed what."""

from __future__ import annotations

from rest_framework import serializers

from api.permissions import CallerTeamField, TeamScopedViewSet
from workspace import models

COMMON_FIELDS = ["id", "team", "name", "created_by", "created_at", "updated_at"]
OWN_FIELDS = {
    models.Dashboard: ["description", "pinned"],
    models.Insight: ["description", "dashboard", "query", "last_value"],
    models.FeatureFlag: ["key", "active", "rollout_percentage"],
    models.Experiment: ["feature_flag", "status", "start_date", "end_date", "significance"],
    models.Survey: ["status", "questions", "launched_at"],
    models.Cohort: ["filters", "count", "members"],
}


def resource_serializer(model) -> type[serializers.ModelSerializer]:
    meta = type(
        "Meta",
        (),
        {
            "model": model,
            "fields": COMMON_FIELDS + OWN_FIELDS[model],
            "read_only_fields": ["created_by", "created_at", "updated_at"],
        },
    )
    return type(
        f"{model.__name__}Serializer",
        (serializers.ModelSerializer,),
        {"Meta": meta, "team": CallerTeamField()},
    )


def resource_viewset(model) -> type[TeamScopedViewSet]:
    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)

    return type(
        f"{model.__name__}ViewSet",
        (TeamScopedViewSet,),
        {
            "queryset": model.objects.select_related("team", "created_by").order_by("-id"),
            "serializer_class": resource_serializer(model),
            "perform_create": perform_create,
        },
    )


ROUTES = {
    "dashboards": models.Dashboard,
    "insights": models.Insight,
    "feature-flags": models.FeatureFlag,
    "experiments": models.Experiment,
    "surveys": models.Survey,
    "cohorts": models.Cohort,
}
VIEWSETS = {prefix: resource_viewset(model) for prefix, model in ROUTES.items()}
