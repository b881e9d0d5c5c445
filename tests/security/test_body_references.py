"""Every id a request body can carry is scoped to the caller, like ``team``: another
organization's id gets the same 400, under the same field, with the same message, as an id
that does not exist (so the answer tells nothing about other tenants), and the caller's own
id is accepted.

The table below has one row per reference. ``test_every_reference_in_the_api_is_in_the_table``
walks every serializer the ``api`` package defines and fails on a writable field that refers
to another row (a related field, a field whose source is a model relation, or an id list
named like one) and has no row: a new reference cannot ship unscoped and untested.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from rest_framework import serializers

import api
from tests.factories import DashboardFactory, MembershipFactory, TeamFactory, UserFactory
from workspace import models as w

pytestmark = pytest.mark.django_db

_names = itertools.count()


@dataclass(frozen=True)
class Tenant:
    """One organization's rows, by the kind of row a reference points at."""

    team: w.Team
    user: Any
    rows: dict[str, Any]


def _tenant(role: str) -> Tenant:
    team = TeamFactory()
    user = MembershipFactory(team=team, role=role, user=UserFactory()).user
    flag = w.FeatureFlag.objects.create(team=team, name="Flag", key=f"flag-{next(_names)}")
    return Tenant(
        team=team,
        user=user,
        rows={
            "team": team,
            "organization": team.organization,
            "user": user,
            "dashboard": DashboardFactory(team=team, created_by=user),
            "featureflag": flag,
        },
    )


@dataclass(frozen=True)
class Reference:
    """A body field that names a row: where it is sent, and the body that sends ``value``
    (the caller's own tenant given, for the rest of a valid body)."""

    serializer: str
    field: str
    kind: str  # the key of Tenant.rows it points at
    method: str
    url: str
    body: Callable[[Tenant, Any], dict]
    error: str  # the key the 400 names
    ok: int  # the status for the caller's own row

    def __str__(self) -> str:
        return f"{self.serializer}.{self.field}"


def _resource(field: str) -> Callable[[Tenant, Any], dict]:
    def body(me: Tenant, value: Any) -> dict:
        return {"team": me.team.pk, "name": f"r{next(_names)}", "key": f"k{next(_names)}",
                field: value}  # fmt: skip

    return body


RESOURCES = {
    "Dashboard": "dashboards",
    "Insight": "insights",
    "FeatureFlag": "feature-flags",
    "Experiment": "experiments",
    "Survey": "surveys",
    "Cohort": "cohorts",
}


def _trigger(field: str) -> Callable[[Tenant, Any], dict]:
    def body(me: Tenant, value: Any) -> dict:
        base = {"team": me.team.pk, "name": "t", "kind": "event", "config": {"event": "x"}}
        return {**base, field: [value] if field == "subscribers" else value}

    return body


def _channel(me: Tenant, value: Any) -> dict:
    name = f"c{next(_names)}"
    return {"type": "slack", "name": name, "organization": value, "secret": "xoxb-1234-5678-abcdef"}


def _announcement(me: Tenant, value: Any) -> dict:
    return {"organization": value, "title": "Maintenance on Sunday"}


TABLE: list[Reference] = [
    *(
        Reference(f"{model}Serializer", "team", "team", "post", f"/api/{prefix}/",
                  _resource("team"), "team", 201)
        for model, prefix in RESOURCES.items()
    ),
    Reference("InsightSerializer", "dashboard", "dashboard", "post", "/api/insights/",
              _resource("dashboard"), "dashboard", 201),
    Reference("ExperimentSerializer", "feature_flag", "featureflag", "post",
              "/api/experiments/", _resource("feature_flag"), "feature_flag",
              201),
    Reference("TriggerSerializer", "team", "team", "post", "/api/triggers/", _trigger("team"),
              "team", 201),
    Reference("TriggerSerializer", "subscribers", "user", "post", "/api/triggers/",
              _trigger("subscribers"), "subscribers[0]", 201),
    Reference("ChannelConfigSerializer", "organization", "organization", "post",
              "/api/channels/", _channel, "organization", 201),
    Reference("AnnouncementSerializer", "organization", "organization", "post",
              "/api/announcements/", _announcement, "organization", 201),
    Reference("PreferenceSerializer", "muted_teams", "team", "put", "/api/preferences/",
              lambda me, value: {"muted_teams": [value]}, "muted_teams[0]", 200),
]  # fmt: skip

# Serializers that add only response fields to one in the table take its references with it.
SAME_BODY_AS = {
    "AnnouncementCreatedSerializer": "AnnouncementSerializer",
    "ChannelConfigCreatedSerializer": "ChannelConfigSerializer",
}


@pytest.fixture
def tenants():
    return _tenant("admin"), _tenant("owner")


@pytest.fixture
def client(api_client, tenants):
    api_client.force_authenticate(tenants[0].user)
    return api_client


def _ask(client, reference: Reference, me: Tenant, value: Any):
    send = getattr(client, reference.method)
    return send(reference.url, reference.body(me, value), format="json")


def _message(response, reference: Reference, value: Any) -> str:
    assert response.status_code == 400, (str(reference), response.status_code, response.content)
    errors = response.json()
    assert reference.error in errors, (str(reference), errors)
    return re.sub(rf"\b{value}\b", "<id>", " ".join(errors[reference.error]))


@pytest.mark.parametrize("reference", TABLE, ids=str)
def test_another_tenants_id_is_refused_like_one_that_does_not_exist(client, tenants, reference):
    me, them = tenants
    theirs = them.rows[reference.kind].pk
    missing = type(them.rows[reference.kind]).objects.order_by("-pk").first().pk + 1_000
    refused = _message(_ask(client, reference, me, theirs), reference, theirs)
    absent = _message(_ask(client, reference, me, missing), reference, missing)
    assert refused == absent
    mine = _ask(client, reference, me, me.rows[reference.kind].pk)
    assert mine.status_code == reference.ok, (str(reference), mine.content)


def test_a_resource_links_only_to_its_own_team(client, tenants):
    """Within the caller's organization too: an insight on one team cannot sit on another
    team's dashboard (both the caller's, so saying so reveals nothing)."""
    me, _ = tenants
    other_team = TeamFactory(organization=me.team.organization)
    MembershipFactory(team=other_team, user=me.user, role="admin")
    elsewhere = DashboardFactory(team=other_team, created_by=me.user)
    body = {"team": me.team.pk, "name": "Revenue", "dashboard": elsewhere.pk}
    response = client.post("/api/insights/", body, format="json")
    assert response.status_code == 400
    assert response.json()["dashboard"] == ["must be in the insight's team"]
    insight = client.post("/api/insights/", {**body, "dashboard": None}, format="json")
    assert insight.status_code == 201, insight.content
    moved = client.patch(
        f"/api/insights/{insight.json()['id']}/", {"dashboard": elsewhere.pk}, format="json"
    )
    assert moved.status_code == 400 and "dashboard" in moved.json()


# --- the table covers every reference ------------------------------------------------------


def _api_serializers() -> list[type[serializers.BaseSerializer]]:
    for module in pkgutil.iter_modules(api.__path__):
        importlib.import_module(f"api.{module.name}")
    found, todo = set(), [serializers.BaseSerializer]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("api."):
                found.add(sub)
    return sorted(found, key=lambda cls: (cls.__module__, cls.__name__))


RELATION_NAMES = frozenset(
    field.name for model in apps.get_models() for field in model._meta.get_fields()
    if field.is_relation
)  # fmt: skip


def _is_reference(serializer: type, name: str, field: serializers.Field) -> bool:
    if isinstance(field, serializers.RelatedField | serializers.ManyRelatedField):
        return True
    model = getattr(getattr(serializer, "Meta", None), "model", None)
    if model is not None and field.source not in ("*", None):
        try:
            return model._meta.get_field(field.source.split(".")[0]).is_relation
        except FieldDoesNotExist:
            pass
    ids = isinstance(field, serializers.IntegerField) or (
        isinstance(field, serializers.ListField)
        and isinstance(field.child, serializers.IntegerField)
    )
    return ids and name in RELATION_NAMES


def test_every_reference_in_the_api_is_in_the_table():
    covered = {(row.serializer, row.field) for row in TABLE}
    found = set()
    for serializer in _api_serializers():
        if issubclass(serializer, serializers.ModelSerializer) and not hasattr(serializer, "Meta"):
            continue  # a base the others fill in
        for name, field in serializer().fields.items():
            if not field.read_only and _is_reference(serializer, name, field):
                found.add((SAME_BODY_AS.get(serializer.__name__, serializer.__name__), name))
    assert found, "the walk found no serializers"
    missing = sorted(found - covered)
    assert not missing, f"body references with no row in TABLE (scope, then add one): {missing}"
    assert not covered - found, f"rows for fields that no longer exist: {sorted(covered - found)}"


@pytest.mark.parametrize(
    ("kind", "key", "config"),
    [
        ("insight_threshold", "insight_id", {"upper": 5}),
        ("experiment_significance", "experiment_id", {}),
        ("cohort_membership", "cohort_id", {}),
    ],
)
def test_a_trigger_config_names_only_its_teams_resources(client, tenants, kind, key, config):
    me, them = tenants
    model = {"insight_id": w.Insight, "experiment_id": w.Experiment, "cohort_id": w.Cohort}[key]
    theirs = model.objects.create(team=them.team, name="Theirs")
    body = {"team": me.team.pk, "name": "t", "kind": kind, "config": {**config, key: theirs.pk}}
    response = client.post("/api/triggers/", body, format="json")
    assert response.status_code == 400 and f"config.{key}" in response.json(), response.content
