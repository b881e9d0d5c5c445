"""schemathesis against our own ``/api/schema/``: every operation, called in-process through
the WSGI application as a member with a token, answers generated requests (valid and
invalid ones) without a 5xx, with a documented status code and content type, and with
headers and a body that match the schema.

Bounded: 15 examples per operation, derandomized, no deadline; the coverage and stateful
phases are off (the coverage phase is not bounded by ``max_examples``). All operations run
as subtests of one test, in one transaction that is rolled back at the end.

Ids: an even integer id that schemathesis draws in a path is replaced by the id of a live
object of that kind the caller may see (created again if an earlier example deleted it),
and an even ``team`` in a body by the caller's team, so responses about real objects and
real creates are checked too; any other id stays as drawn and exercises the 404 or 400
path. That is also why DELETE operations stay in: a deleted object comes back for
the next example that needs one.

Checks: ``not_a_server_error`` and the four conformance checks (status code, content
type, response headers, response body). Not schemathesis' ``positive_data_acceptance``:
the API rightly answers 400 to many schema-valid bodies (another tenant's team id, an
invalid regex in a trigger, quiet hours that start and end at once).

Excluded: ``POST /api/ingest/`` (it publishes to Kafka, authenticates by team API key, not
by user token, and has its own tests in ``test_ingest.py``).
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.resources import ROUTES
from notifications.models import Announcement, ChannelConfig, Delivery, Notification, Trigger
from tests.factories import MembershipFactory, TriggerFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

CONFIG = schemathesis.Config.from_dict(
    {"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}}
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
_keys = itertools.count()


@pytest.fixture
def _keep_test_connection(db):
    """Calling the WSGI application directly sends ``request_started``/``request_finished``,
    whose ``close_old_connections`` would close the connection holding the test's
    transaction (Django's own test client disconnects it the same way)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(_keep_test_connection):
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/", application, config=CONFIG)


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/api/ingest/")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    """schemathesis 4.32 renames the running item through ``node._nodeid``, which pytest
    9.2 no longer has (``nodeid`` is derived from ``_id``); give it the attribute."""
    request.node._nodeid = request.node.nodeid


class Live:
    """Objects of every kind the API has ids for, visible to ``user``; one is made again
    whenever an example deleted the last."""

    def __init__(self, user, team):
        self.user, self.team = user, team

    def _make_notification(self, **fields) -> Notification:
        now = timezone.now()
        return Notification.objects.create(
            recipient=self.user,
            team=self.team,
            category="alert",
            title="checkout_error",
            dedup_key=f"fuzz:{next(_keys)}",
            first_seen_at=now - timedelta(minutes=1),
            last_seen_at=now - timedelta(minutes=1),
            **fields,
        )

    def _one(self, queryset, make):
        found = queryset.order_by("pk").first()
        return (found or make()).pk

    def id_for(self, path: str) -> int | None:
        user, team = self.user, self.team
        kind = path.split("/")[2]
        if kind == "notifications":
            return self._one(Notification.objects.filter(recipient=user), self._make_notification)
        if kind == "triggers":
            return self._one(
                Trigger.objects.filter(team=team, owner=user),
                lambda: TriggerFactory(team=team, owner=user),
            )
        if kind == "channels":
            return self._one(
                ChannelConfig.objects.filter(organization=team.organization),
                lambda: ChannelConfig.objects.create(
                    organization=team.organization,
                    type="webhook",
                    name=f"hook {next(_keys)}",
                    config={"url": "https://hooks.example.com/notiflow"},
                ),
            )
        if kind == "announcements":
            return self._one(
                Announcement.objects.filter(organization=team.organization),
                lambda: Announcement.objects.create(
                    organization=team.organization, title="What's new", body="Digests."
                ),
            )
        if kind == "digest":
            return user.pk
        if kind in ROUTES:
            model = ROUTES[kind]
            extra = {"key": "fuzz-flag"} if kind == "feature-flags" else {}
            return self._one(
                model.objects.filter(team=team),
                lambda: model.objects.create(team=team, name="fuzz", created_by=user, **extra),
            )
        return None


@pytest.fixture
def live(team, member_of):
    user = member_of(team)
    MembershipFactory(user=user)  # a second team, in another organization
    live = Live(user, team)
    trigger = TriggerFactory(team=team, owner=user)
    live._make_notification(trigger=trigger, event_name="checkout_error", reason="You own it.")
    live._make_notification(read_at=timezone.now())
    Delivery.objects.create(
        idempotency_key=f"fuzz:{next(_keys)}",
        channel="email",
        destination=user.email,
        team=team,
        recipient=user,
        trigger=trigger,
    )
    for path in ("/api/channels/", "/api/announcements/", *(f"/api/{r}/" for r in ROUTES)):
        live.id_for(path)
    return live


@pytest.fixture
def token(live):
    return Token.objects.create(user=live.user).key


def _even(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value % 2 == 0


@schema.parametrize()
@settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, live, token):
    for name, value in case.path_parameters.items():
        if _even(value):
            case.path_parameters[name] = live.id_for(case.operation.path)
    if isinstance(case.body, dict) and _even(case.body.get("team")):
        case.body["team"] = live.team.pk
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
