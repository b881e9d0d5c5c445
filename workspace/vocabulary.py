"""The host's words that other packages read: what can happen to a resource (the activity
actions) and what each resource type is called. Pure (plain enums and tables, no models), so
the pure modules of ``notifications`` and ``digests`` import them instead of spelling them
again."""

from __future__ import annotations

from django.db.models.enums import TextChoices  # plain enums: no settings, no database


class Action(TextChoices):
    """What an :class:`~workspace.models.ActivityLog` row says happened to its resource."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    SENT = "sent"
    FAILED = "failed"


RESOURCE_TYPES = {
    "dashboard": ("dashboard", "Dashboards"),
    "insight": ("insight", "Insights"),
    "featureflag": ("feature flag", "Feature flags"),
    "experiment": ("experiment", "Experiments"),
    "survey": ("survey", "Surveys"),
    "eventdefinition": ("event definition", "Event definitions"),
    "cohort": ("cohort", "Cohorts"),
    "subscription": ("subscription", "Subscriptions"),
}
"""Resource type (an activity row's ``resource_type``) → (name in a sentence, plural heading)."""


def resource_label(resource_type: str) -> str:
    """A resource type as a sentence names it ("feature flag"); an unknown type as itself."""
    names = RESOURCE_TYPES.get(resource_type)
    return names[0] if names else resource_type
