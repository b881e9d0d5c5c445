"""Integration: what the trigger form says beside its fields, kept — through the API, the
ingestion endpoint, the real consumer, the local SMTP and Slack servers, and the page.
The sentences are in ``frontend/templates/frontend/trigger_form.html`` and the schema;
``docs/promises.md`` lists them with these tests."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from digests.runs import digest_run
from digests.windows import Period
from notifications.checks import run_due_checks
from notifications.models import Delivery, Notification, TriggerCheck
from notifications.tasks import flush_rollups
from tests.factories import DashboardFactory, InsightFactory
from tests.notifications.test_delivery import slack_config
from workspace.models import FeatureFlag

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def owner(team, member_of):
    return member_of(team, email="olive@example.com")


@pytest.fixture
def client(api_client, owner):
    api_client.force_authenticate(owner)
    return api_client


def create_trigger(client, team, **fields):
    body = {"team": team.pk, "name": "Promise", "kind": "event", **fields}
    response = client.post("/api/triggers/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def ingest(client, team, *properties, event="checkout_error"):
    batch = [
        {"event": event, "distinct_id": f"u{i}", "properties": props}
        for i, props in enumerate(properties)
    ]
    response = client.post(
        "/api/ingest/", {"api_key": team.api_token, "batch": batch}, format="json"
    )
    assert response.status_code == 202, response.content


def inbox(client, user):
    client.force_authenticate(user)
    return client.get("/api/notifications/").json()["results"]


def test_property_filters_all_must_match(client, team, owner, drain):
    """ "Property filters — all must match"."""
    create_trigger(
        client,
        team,
        config={
            "event": "checkout_error",
            "filters": [
                {"property": "amount", "operator": "gt", "value": 100},
                {"property": "country", "operator": "exact", "value": "DE"},
            ],
        },
    )
    ingest(
        client,
        team,
        {"amount": 500, "country": "DE", "n": "both"},
        {"amount": 500, "country": "FR", "n": "amount only"},
        {"amount": 50, "country": "DE", "n": "country only"},
    )
    drain(expected=3)
    [note] = inbox(client, owner)
    assert "n=both" in note["body"]


def test_no_resource_type_ticked_means_every_type(client, team, owner, member_of, drain):
    """ "Resource types — none ticked means all": an activity trigger with no types hears
    of a dashboard, an insight and a feature flag alike."""
    editor = member_of(team)
    watched = member_of(team)
    create_trigger(
        client,
        team,
        kind="activity",
        config={"actions": ["updated"], "resource_types": []},
        subscribers=[watched.pk],
    )
    flag = FeatureFlag.objects.create(team=team, created_by=owner, name="Nav", key="nav")
    resources = [
        ("dashboards", DashboardFactory(team=team, created_by=owner)),
        ("insights", InsightFactory(team=team, created_by=owner)),
        ("feature-flags", flag),
    ]
    client.force_authenticate(editor)
    for path, resource in resources:
        response = client.patch(f"/api/{path}/{resource.pk}/", {"name": "Renamed"}, format="json")
        assert response.status_code == 200, response.content
    drain(expected=6)  # three creations, three edits
    titles = [n["title"] for n in inbox(client, watched)]
    assert len(titles) == 3, titles
    for label in ("dashboard", "insight", "feature flag"):
        assert any(label in title for title in titles), (label, titles)


def test_an_email_channel_goes_to_each_subscribers_own_address_unless_given_one(
    client, team, owner, member_of, drain, smtp_server
):
    """The email row's hint: "each subscriber's own address" when left empty; with an
    address, that one address instead."""
    other = member_of(team, email="sam@example.com")
    create_trigger(
        client,
        team,
        config={"event": "checkout_error"},
        channels=[{"type": "email"}],
        subscribers=[owner.pk, other.pk],
    )
    create_trigger(
        client,
        team,
        config={"event": "signup"},
        channels=[{"type": "email", "target": "oncall@example.com"}],
        subscribers=[owner.pk, other.pk],
    )
    ingest(client, team, {"amount": 1})
    ingest(client, team, {"plan": "pro"}, event="signup")
    drain(expected=2)
    to = sorted(address for m in smtp_server.messages for address in m.rcpt_tos)
    assert to == ["olive@example.com", "oncall@example.com", "sam@example.com"]


def test_digest_mode_sends_nothing_of_its_own_and_the_next_digest_carries_it(
    client, team, owner, drain, smtp_server, slack_server
):
    """ "Digest — no message of its own: in subscribers' notification centers and their
    next digest": the trigger's Slack and email channels send nothing; the in-app row is
    there at once and the daily digest mails it."""
    slack_config(team)
    create_trigger(
        client,
        team,
        config={"event": "checkout_error"},
        channels=[{"type": "slack", "target": "#alerts"}, {"type": "email"}],
        delivery={"mode": "digest"},
    )
    ingest(client, team, {"amount": 1})
    drain(expected=1)
    [note] = inbox(client, owner)
    assert note["title"].startswith("Promise: ")
    assert not Delivery.objects.exists()
    assert not slack_server.requests and not smtp_server.messages

    tomorrow = datetime.now(UTC) + timedelta(days=1)
    digest_run(period=Period.DAILY, now=tomorrow.replace(hour=9, minute=30))
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == [owner.email]
    assert "Promise" in mail.part("text/plain")


def test_a_check_left_without_an_interval_runs_as_often_as_the_form_says(client, team, owner):
    """The form's "Check every (minutes)" shows the interval a check gets when the field is
    left empty, and the scheduler keeps it."""
    page = form_page(owner)
    shown = re.search(r'id="f-interval"[^>]*placeholder="(\d+)"', page)
    assert shown, "the interval field shows no default"
    minutes = int(shown.group(1))
    insight = InsightFactory(team=team, created_by=owner, last_value=1)
    trigger = create_trigger(
        client,
        team,
        kind="insight_threshold",
        config={"insight_id": insight.pk, "upper": 100},
    )
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert run_due_checks(now=start) == 1
    assert run_due_checks(now=start + timedelta(minutes=minutes - 1)) == 0
    assert run_due_checks(now=start + timedelta(minutes=minutes)) == 1
    assert TriggerCheck.objects.filter(trigger_id=trigger["id"]).count() == 2
    assert not Notification.objects.filter(trigger_id=trigger["id"]).exists()


def form_page(user) -> str:
    browser = Client()
    browser.force_login(user)
    response = browser.get("/triggers/new/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_roll_up_closes_early_at_max_items_with_the_summary_the_form_quotes(
    client, team, owner, drain, slack_server
):
    """Schema: a window is "closed early once ``max_items`` matches arrived", its summary
    keeping at most 5 sample lines; the form quotes the summary as Slack gets it."""
    slack_config(team)
    create_trigger(
        client,
        team,
        name="Checkout errors",
        config={"event": "checkout_error"},
        channels=[{"type": "slack", "target": "#alerts"}],
        delivery={"mode": "rollup", "window_seconds": 3600, "max_items": 7},
    )
    ingest(client, team, *({"amount": i} for i in range(7)))
    drain(expected=7)
    assert flush_rollups() == 1  # well inside the hour: max_items closed it
    [post] = slack_server.posts
    quoted = re.search(
        r"“seen ([\d,]+ times between \d\d:\d\d and \d\d:\d\d UTC)”", form_page(owner)
    )
    assert quoted, "the form quotes no summary"
    assert re.search(r"checkout_error seen 7 times between \d\d:\d\d and \d\d:\d\d UTC", post.text)
    blocks = json.dumps(post.blocks)
    assert 1 <= blocks.count("amount=") <= 5, post.blocks


def test_a_relative_threshold_is_a_fraction_as_the_form_says_and_the_alert_names_the_change(
    client, team, owner, drain
):
    """ "Compare: the change since the last check, as a fraction (0.2 = +20 %)": a rise of
    30 % passes an upper bound of 0.2, one of 10 % does not, and the alert says the change."""
    assert "as a fraction (0.2 = +20 %)" in form_page(owner)
    insight = InsightFactory(team=team, created_by=owner, name="Signups", last_value=100)
    create_trigger(
        client,
        team,
        kind="insight_threshold",
        config={
            "insight_id": insight.pk,
            "upper": 0.2,
            "change": "relative",
            "interval_minutes": 5,
        },
    )
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    for minutes, value in ((0, 100), (5, 110), (10, 143)):
        type(insight).objects.filter(pk=insight.pk).update(last_value=value)
        assert run_due_checks(now=start + timedelta(minutes=minutes)) == 1
    drain(expected=2)  # the insight's creation, one transition into firing
    [note] = inbox(client, owner)
    assert "“Signups” changed by +30% since the last check, to 143: above +20%" in note["title"]
