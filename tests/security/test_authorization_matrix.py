"""Every API endpoint × every kind of caller, against a table of expected status codes.

The callers: ``anonymous``; ``outsider``, the owner of a team in another organization (the
most an outsider can be); and a ``member``, an ``admin`` and the ``owner`` of team A, whose
objects the URLs name. The table below is the specification: change it when an endpoint's
rules change, and add a row when an endpoint is added —
:func:`test_every_endpoint_in_the_schema_has_a_row` fails until then.

Reading a row: ``(anonymous, outsider, member, admin, owner)``. The rules it encodes:

- anonymous gets 401 everywhere except health, ingest (its key is in the body), the schema
  and the docs;
- an outsider gets 404 on any URL naming team A's objects (never 403, which would confirm
  they exist), 400 when a body names team A or its organization, and their own (empty)
  lists;
- a member reads everything in the team, writes resources and their own triggers, and gets
  403 on channel writes, announcements and on triggers they do not own;
- admins and owners write the organization's channels (2xx);
- notifications, preferences and digest history are the caller's own: a teammate's
  notification id is 404 even for the owner.

Each caller's request runs in a savepoint that is rolled back, so every row sees the same
world (a DELETE by the admin does not turn the owner's DELETE into a 404).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from notifications.models import Announcement, ChannelConfig, Notification
from notifications.secrets import encrypt
from tests.factories import (
    DashboardFactory,
    InsightFactory,
    MembershipFactory,
    TeamFactory,
    TriggerFactory,
)
from workspace import models as w

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "outsider", "member", "admin", "owner")
UP = (200, 503)
"""Health reports the services, not the caller: 503 while one is down, for anyone."""
RESOURCES = ("cohorts", "dashboards", "experiments", "feature-flags", "insights", "surveys")

# fmt: off
Code = int | tuple[int, ...]
EXPECTED: dict[tuple[str, str], tuple[Code, Code, Code, Code, Code]] = {
    #                                                   anon outsider member admin owner
    ("GET", "/api/health/"):                           (UP, UP, UP, UP, UP),
    ("GET", "/api/schema/"):                           (200, 200, 200, 200, 200),
    ("GET", "/api/docs/"):                             (200, 200, 200, 200, 200),
    ("POST", "/api/ingest/"):                          (400, 400, 400, 400, 400),
    ("GET", "/api/me/"):                               (401, 200, 200, 200, 200),
    ("GET", "/api/teams/"):                            (401, 200, 200, 200, 200),
    ("GET", "/api/preferences/"):                      (401, 200, 200, 200, 200),
    ("PUT", "/api/preferences/"):                      (401, 200, 200, 200, 200),
    ("GET", "/api/preferences/dnd/"):                  (401, 200, 200, 200, 200),
    ("PUT", "/api/preferences/dnd/"):                  (401, 200, 200, 200, 200),
    ("DELETE", "/api/preferences/dnd/"):               (401, 200, 200, 200, 200),
    ("GET", "/api/deliveries/"):                       (401, 200, 200, 200, 200),

    ("GET", "/api/announcements/"):                    (401, 200, 200, 200, 200),
    ("POST", "/api/announcements/"):                   (401, 400, 403, 201, 201),
    ("GET", "/api/announcements/{id}/"):               (401, 404, 200, 200, 200),

    ("GET", "/api/channels/"):                         (401, 200, 200, 200, 200),
    ("POST", "/api/channels/"):                        (401, 400, 403, 201, 201),
    ("GET", "/api/channels/{id}/"):                    (401, 404, 200, 200, 200),
    ("PUT", "/api/channels/{id}/"):                    (401, 404, 403, 200, 200),
    ("PATCH", "/api/channels/{id}/"):                  (401, 404, 403, 200, 200),
    ("DELETE", "/api/channels/{id}/"):                 (401, 404, 403, 204, 204),

    ("GET", "/api/triggers/"):                         (401, 200, 200, 200, 200),
    ("POST", "/api/triggers/"):                        (401, 400, 201, 201, 201),
    ("GET", "/api/triggers/{id}/"):                    (401, 404, 200, 200, 200),
    ("PUT", "/api/triggers/{id}/"):                    (401, 404, 403, 200, 200),
    ("PATCH", "/api/triggers/{id}/"):                  (401, 404, 403, 200, 200),
    ("DELETE", "/api/triggers/{id}/"):                 (401, 404, 403, 204, 204),
    ("POST", "/api/triggers/{id}/test/"):              (401, 404, 200, 200, 200),
    ("POST", "/api/triggers/{id}/snooze/"):            (401, 404, 403, 200, 200),
    ("POST", "/api/triggers/{id}/enable/"):            (401, 404, 403, 200, 200),
    ("POST", "/api/triggers/{id}/disable/"):           (401, 404, 403, 200, 200),

    # The notification is the member's: nobody else, however senior, can see it.
    ("GET", "/api/notifications/"):                    (401, 200, 200, 200, 200),
    ("GET", "/api/notifications/unread_count/"):       (401, 200, 200, 200, 200),
    ("POST", "/api/notifications/read_all/"):          (401, 200, 200, 200, 200),
    ("POST", "/api/notifications/seen_all/"):          (401, 200, 200, 200, 200),
    ("POST", "/api/notifications/{id}/read/"):         (401, 404, 204, 404, 404),
    ("POST", "/api/notifications/{id}/seen/"):         (401, 404, 204, 404, 404),
    ("POST", "/api/notifications/{id}/archive/"):      (401, 404, 204, 404, 404),
    ("POST", "/api/notifications/{id}/snooze/"):       (401, 404, 204, 404, 404),
    ("GET", "/api/notifications/{id}/why/"):           (401, 404, 200, 404, 404),
    ("POST", "/api/notifications/{id}/mute_trigger/"): (401, 404, 200, 404, 404),

    # Digest history is per profile (the member's id here); staff would see all.
    ("GET", "/api/digest/executions"):                 (401, 200, 200, 200, 200),
    ("GET", "/api/digest/executions/{profile_id}"):    (401, 404, 200, 404, 404),
    ("GET", "/api/digest/preview"):                    (401, 200, 200, 200, 200),
    ("GET", "/api/digest/schedules"):                  (401, 200, 200, 200, 200),
}
for _prefix in RESOURCES:  # the host product's resources: any member of the team writes
    EXPECTED.update({
        ("GET", f"/api/{_prefix}/"):                   (401, 200, 200, 200, 200),
        ("POST", f"/api/{_prefix}/"):                  (401, 400, 201, 201, 201),
        ("GET", f"/api/{_prefix}/{{id}}/"):            (401, 404, 200, 200, 200),
        ("PUT", f"/api/{_prefix}/{{id}}/"):            (401, 404, 200, 200, 200),
        ("PATCH", f"/api/{_prefix}/{{id}}/"):          (401, 404, 200, 200, 200),
        ("DELETE", f"/api/{_prefix}/{{id}}/"):         (401, 404, 204, 204, 204),
    })
# fmt: on

NOT_IN_SCHEMA = {("GET", "/api/schema/"), ("GET", "/api/docs/")}
"""Served, but left out of the schema they describe (SERVE_INCLUDE_SCHEMA = False)."""


@dataclass
class World:
    team: w.Team
    users: dict[str, Any]
    ids: dict[str, int]


@pytest.fixture
def world() -> World:
    team = TeamFactory()
    users: dict[str, Any] = {"anonymous": None}
    for role in ("member", "admin", "owner"):
        users[role] = MembershipFactory(team=team, role=role).user
    users["outsider"] = MembershipFactory(team=TeamFactory(), role="owner").user
    owner, member, admin = users["owner"], users["member"], users["admin"]

    trigger = TriggerFactory(team=team, owner=owner, subscribers=[owner, member])
    channel = ChannelConfig.objects.create(
        organization=team.organization,
        type="slack",
        name="Slack",
        config={"default_target": "#alerts"},
        secret_encrypted=encrypt("xoxb-matrix"),
        created_by=admin,
    )
    now = timezone.now()
    notification = Notification.objects.create(
        recipient=member,
        team=team,
        category="alert",
        title="Checkout errors",
        trigger=trigger,
        dedup_key="matrix:1",
        first_seen_at=now,
        last_seen_at=now,
    )
    announcement = Announcement.objects.create(
        organization=team.organization, author=admin, title="News"
    )
    flag = w.FeatureFlag.objects.create(team=team, name="Flag", key="flag")
    resources = {
        "dashboards": DashboardFactory(team=team, created_by=owner),
        "insights": InsightFactory(team=team, created_by=owner),
        "feature-flags": flag,
        "experiments": w.Experiment.objects.create(team=team, name="Experiment"),
        "surveys": w.Survey.objects.create(team=team, name="Survey"),
        "cohorts": w.Cohort.objects.create(team=team, name="Cohort"),
    }
    ids = {
        "announcements": announcement.pk,
        "channels": channel.pk,
        "triggers": trigger.pk,
        "notifications": notification.pk,
        "executions": member.pk,
        **{prefix: resource.pk for prefix, resource in resources.items()},
    }
    return World(team=team, users=users, ids=ids)


def url_for(path: str, world: World) -> str:
    """The path with its ``{id}`` (or ``{profile_id}``) filled from team A's objects."""
    collection = re.match(r"/api/(?:digest/)?([\w-]+)/", path)
    assert collection, path
    return re.sub(r"\{\w+\}", str(world.ids.get(collection.group(1), 0)), path)


def body_for(method: str, path: str, world: World) -> dict | None:
    """A body the most privileged caller would get a 2xx with."""
    team, org = world.team.pk, world.team.organization_id
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    prefix = path.split("/")[2]
    if path == "/api/ingest/":
        # Authenticated by the key; the empty batch is refused after that check.
        return {"api_key": world.team.api_token, "batch": []}
    if path == "/api/preferences/":
        return {"digest_hour": 8}
    if path == "/api/preferences/dnd/":
        return {"preset": "hour"}
    if path == "/api/announcements/":
        return {"organization": org, "title": "Hello"}
    if prefix == "channels" and method == "POST":
        return {
            "type": "webhook",
            "name": "Hook",
            "organization": org,
            "config": {"url": "https://hooks.example.com/notiflow"},
            "secret": "s" * 24,
        }
    if prefix == "channels" and method == "PUT":
        return {
            "type": "slack",
            "name": "Renamed",
            "organization": org,
            "config": {"default_target": "#renamed"},
        }
    if prefix == "channels" and method == "PATCH":
        return {"name": "Renamed"}
    if prefix == "triggers":
        if path.endswith("/test/"):
            return {"event": "checkout_error", "properties": {}}
        if path.endswith("/snooze/"):
            return {"until": future}
        if method in ("POST", "PUT") and path.count("/") <= 4:
            return {"team": team, "name": "T", "kind": "event", "config": {"event": "x"}}
        if method == "PATCH":
            return {"name": "Renamed"}
        return {}
    if prefix == "notifications":
        return {"until": future} if path.endswith("/snooze/") else {}
    if prefix in RESOURCES and method in ("POST", "PUT", "PATCH"):
        body: dict[str, Any] = {"name": f"{method} resource"}
        if method != "PATCH":
            body["team"] = team
        if prefix == "feature-flags" and method != "PATCH":
            body["key"] = f"flag-{method.lower()}"
        return body
    return None


def call(method: str, path: str, world: World, role: str) -> int:
    client = Client()
    if world.users[role] is not None:
        client.force_login(world.users[role])
    url = url_for(path, world)
    body = body_for(method, path, world)
    request = getattr(client, method.lower())
    if method == "GET":
        response = request(url)
    else:
        response = request(url, body or {}, content_type="application/json")
    return response.status_code


def ok(status: int, expected: Code) -> bool:
    return status in (expected if isinstance(expected, tuple) else (expected,))


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED), ids=lambda v: v)
def test_each_role_gets_the_expected_status(world, method, path):
    got = {}
    for role in ROLES:
        with transaction.atomic():
            got[role] = call(method, path, world, role)
            transaction.set_rollback(True)
    expected = dict(zip(ROLES, EXPECTED[(method, path)], strict=True))
    wrong = {
        role: (got[role], expected[role]) for role in ROLES if not ok(got[role], expected[role])
    }
    assert not wrong, f"{method} {path}: role → (got, expected): {wrong}"


def test_every_endpoint_in_the_schema_has_a_row(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    in_schema = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert in_schema == set(EXPECTED) - NOT_IN_SCHEMA, {
        "in the schema, not in EXPECTED": sorted(in_schema - set(EXPECTED)),
        "in EXPECTED, not in the schema": sorted(set(EXPECTED) - NOT_IN_SCHEMA - in_schema),
    }


def test_the_outsider_is_a_real_admin_elsewhere(world):
    """The outsider row means something only if the outsider could do these things in
    their own organization."""
    outsider = world.users["outsider"]
    [membership] = outsider.memberships.all()
    assert membership.role == "owner"
    assert membership.team.organization_id != world.team.organization_id
    client = Client()
    client.force_login(outsider)
    response = client.post(
        "/api/channels/",
        {
            "type": "webhook",
            "name": "Theirs",
            "organization": membership.team.organization_id,
            "config": {"url": "https://hooks.example.com/theirs"},
            "secret": "s" * 24,
        },
        content_type="application/json",
    )
    assert response.status_code == 201


def test_anonymous_ingest_without_a_key_is_401(client):
    response = client.post(
        "/api/ingest/",
        {"batch": [{"event": "e", "distinct_id": "u"}]},
        content_type="application/json",
    )
    assert response.status_code == 401
