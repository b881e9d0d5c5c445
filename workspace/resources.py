"""Where each kind of resource lives on the API: ``resource_url(type, id)``, the link that
activity events, scheduled checks and digests carry. ``type`` is the resource's
``resource_type`` (its model name, as the activity log writes it); the API's routes are
these paths (``api.resources.ROUTES``)."""

from __future__ import annotations

from django.conf import settings

RESOURCE_PATHS = {
    "dashboard": "dashboards",
    "insight": "insights",
    "featureflag": "feature-flags",
    "experiment": "experiments",
    "survey": "surveys",
    "cohort": "cohorts",
    "subscription": "subscriptions",
    "eventdefinition": "event-definitions",
}


def resource_url(resource_type: str, resource_id: str) -> str:
    path = RESOURCE_PATHS.get(resource_type, resource_type)
    return f"{settings.NOTIFLOW_BASE_URL}/api/{path}/{resource_id}/"
