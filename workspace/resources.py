"""The host's resource types and the words other packages read about them: what can happen to
a resource (:class:`Action`, as the activity log writes it), what each type is called, and
where it lives on the API (``resource_url(type, id)``, the link that activity events,
scheduled checks and digests carry; the API's routes are these paths,
``api.resources.ROUTES``). A type is the resource's ``resource_type`` (its model name). No
models here, so the pure modules of ``notifications`` and ``digests`` import it too."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models.enums import TextChoices  # plain enums: no settings, no database


class Action(TextChoices):
    """What an :class:`~workspace.models.ActivityLog` row says happened to its resource."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class ResourceType:
    label: str
    """The type in a sentence ("feature flag")."""
    heading: str
    """The type as a plural heading ("Feature flags")."""
    path: str
    """Its API route (``/api/<path>/``)."""


RESOURCE_TYPES = {
    "dashboard": ResourceType("dashboard", "Dashboards", "dashboards"),
    "insight": ResourceType("insight", "Insights", "insights"),
    "featureflag": ResourceType("feature flag", "Feature flags", "feature-flags"),
    "experiment": ResourceType("experiment", "Experiments", "experiments"),
    "survey": ResourceType("survey", "Surveys", "surveys"),
    "eventdefinition": ResourceType("event definition", "Event definitions", "event-definitions"),
    "cohort": ResourceType("cohort", "Cohorts", "cohorts"),
    "subscription": ResourceType("subscription", "Subscriptions", "subscriptions"),
}


def resource_label(resource_type: str) -> str:
    """A resource type as a sentence names it ("feature flag"); an unknown type as itself."""
    known = RESOURCE_TYPES.get(resource_type)
    return known.label if known else resource_type


def resource_url(resource_type: str, resource_id: str) -> str:
    known = RESOURCE_TYPES.get(resource_type)
    path = known.path if known else resource_type
    return f"{settings.NOTIFLOW_BASE_URL}/api/{path}/{resource_id}/"
