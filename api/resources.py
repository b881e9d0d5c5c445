"""CRUD for the host product's resources, scoped to the caller's teams. Every write goes
through the model's save/delete, so the activity log records who changed what.

A resource's references to other resources (an insight's ``dashboard``, an experiment's
``feature_flag``, and any foreign key a resource model gains) are
:class:`CallerResourceField`: only rows of the caller's teams exist for them, so another
organization's id gets the same 400 as one that does not exist, and a row of another of the
caller's teams is refused because a resource links only within its own team.
"""

from __future__ import annotations

from rest_framework import serializers

from api.permissions import CallerTeamField, TeamScopedViewSet
from workspace import models
from workspace.models import teams_of
from workspace.resources import RESOURCE_TYPES

COMMON_FIELDS = ["id", "team", "name", "created_by", "created_at", "updated_at"]
OWN_FIELDS = {
    models.Dashboard: ["description", "pinned"],
    models.Insight: ["description", "dashboard", "query", "last_value"],
    models.FeatureFlag: ["key", "active", "rollout_percentage"],
    models.Experiment: ["feature_flag", "status", "start_date", "end_date", "significance"],
    models.Survey: ["status", "questions", "launched_at"],
    models.Cohort: ["filters", "count", "members"],
}


class CallerResourceField(serializers.PrimaryKeyRelatedField):
    """A reference to another team-owned resource that only accepts rows of the caller's
    teams (others look nonexistent). Every related field a resource serializer builds for
    itself is one (``serializer_related_field``)."""

    def get_queryset(self):
        queryset = super().get_queryset()
        request = self.context.get("request")
        if request is None or not request.user.is_authenticated:
            return queryset.none()
        return queryset.filter(team__in=teams_of(request.user))


class ResourceSerializer(serializers.ModelSerializer):
    """The fields of one resource model; see the module docstring for its references."""

    serializer_related_field = CallerResourceField
    team = CallerTeamField()

    def validate(self, attrs):
        team = attrs.get("team", self.instance.team if self.instance else None)
        noun = self.Meta.model._meta.verbose_name
        errors = {
            name: [f"must be in the {noun}'s team"]
            for name, field in self.fields.items()
            if isinstance(field, CallerResourceField)
            and attrs.get(name) is not None
            and attrs[name].team_id != getattr(team, "pk", None)
        }
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def resource_serializer(model) -> type[ResourceSerializer]:
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
        (ResourceSerializer,),
        {"Meta": meta, "__module__": __name__},
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
            "__module__": __name__,
        },
    )


ROUTES = {
    RESOURCE_TYPES[model._meta.model_name].path: model
    for model in (
        models.Dashboard,
        models.Insight,
        models.FeatureFlag,
        models.Experiment,
        models.Survey,
        models.Cohort,
    )
}
"""Each resource's route, at the path its links name (``workspace.resources``)."""
VIEWSETS = {prefix: resource_viewset(model) for prefix, model in ROUTES.items()}
