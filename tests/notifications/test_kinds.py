"""Each trigger kind is declared once, in ``notifications.triggers.KINDS``. These tests fail
when a declaration lacks something, or when the API, the admin, the form page, the checks
or planning keep a list of kinds of their own: a kind declared only there (a probe) must
reach all of them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.utils.module_loading import import_string

from notifications import triggers
from notifications.checks import Outcome, run_due_checks
from notifications.events import Event, Source, Subject
from notifications.models import Outbox, Trigger, TriggerCheck
from notifications.planning import render
from notifications.triggers import (
    KINDS,
    FormField,
    FormSection,
    Kind,
    KindSpec,
    ThresholdState,
    compile_trigger,
    describe_trigger,
    form_sections,
    kind_choices,
    scheduled_kinds,
    validate_config,
)
from tests.factories import TriggerFactory

FIELD_TYPES = {"integer", "number", "choice", "resource"}
TITLE_KEYS = {"event": "e", "count": 3, "window_minutes": 5, "summary": "s"}


def test_every_kind_has_one_declaration():
    assert list(KINDS) == list(Kind)
    assert all(spec.kind == kind for kind, spec in KINDS.items())


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_declaration_says_everything_a_kind_is(kind):
    spec = KINDS[kind]
    assert spec.label and spec.label[0].isupper()
    try:  # its validation answers in body paths
        validate_config(kind, {})
    except triggers.InvalidTrigger as exc:
        assert all(path.startswith("config.") for path in exc.errors)
    assert describe_trigger(kind, {}).startswith("When ")  # even a config with nothing in it
    assert spec.title is None or spec.title.format(**TITLE_KEYS)
    if spec.stream:
        assert not spec.evaluator
    else:
        assert spec.evaluator.startswith("notifications.checks.")
        assert callable(import_string(spec.evaluator))
        assert spec.title is not None
    assert spec.form, "the form shows nothing for it"
    for section in spec.form:
        for field in section.fields:
            assert field.type in FIELD_TYPES and field.label
            if field.type == "choice":
                assert field.default in field.values
            if field.type == "resource":
                model = apps.get_model(field.resource)
                assert "team" in {f.name for f in model._meta.get_fields()}


def test_the_form_sections_have_unique_names_and_field_ids():
    names = [section.name for section, _ in form_sections()]
    ids = [field.html_id for section, _ in form_sections() for field in section.fields]
    assert len(names) == len(set(names)) and len(ids) == len(set(ids))
    assert "f-interval" not in ids  # the page's own schedule section


# --- a kind declared only in KINDS reaches everything ------------------------------------

PROBE = "probe_ratio"


def probe_check(config: dict[str, Any], trigger: Trigger, previous: TriggerCheck | None) -> Outcome:
    return Outcome(
        state=ThresholdState.FIRING,
        value=float(config["ratio"]),
        summary=f"the ratio is {config['ratio']}",
        subject=Subject("insight", "1", "Ratio", ""),
        snapshot={},
        news="firing" if previous is None else None,
    )


def _validate_probe(config: dict[str, Any], errors: dict[str, str]) -> None:
    if not isinstance(config.get("ratio"), int):
        errors["config.ratio"] = "must be a whole number"


@pytest.fixture
def probe(monkeypatch):
    spec = KindSpec(
        PROBE,  # a throwaway kind: not in the Kind enum
        "Probe ratio crosses a line",
        _validate_probe,
        lambda config: f"When the probe ratio is {config.get('ratio', '?')}",
        evaluator=f"{__name__}.probe_check",
        form=(FormSection("probe", "Probe", (FormField("ratio", "Probe ratio"),)),),
    )
    monkeypatch.setitem(KINDS, PROBE, spec)
    return spec


def test_the_model_admin_and_api_offer_a_declared_kind(probe, team, member_of, api_client):
    assert (PROBE, probe.label) in Trigger._meta.get_field("kind").choices
    assert (PROBE, probe.label) in kind_choices()
    owner = member_of(team)
    api_client.force_authenticate(owner)
    body = {"team": team.pk, "name": "Probe", "kind": PROBE, "config": {"ratio": "x"}}
    refused = api_client.post("/api/triggers/", body, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"config.ratio": ["must be a whole number"]}
    created = api_client.post("/api/triggers/", {**body, "config": {"ratio": 7}}, format="json")
    assert created.status_code == 201, created.json()
    unknown = api_client.post("/api/triggers/", {**body, "kind": "nope"}, format="json")
    assert PROBE in unknown.json()["kind"][0]
    trigger = Trigger.objects.get(pk=created.json()["id"])
    test = api_client.post(f"/api/triggers/{trigger.pk}/test/", {"event": "x"}, format="json")
    assert "checked on a schedule" in test.json()["kind"][0]


def test_the_admin_offers_a_declared_kind(probe, admin_client):
    page = admin_client.get("/admin/notifications/trigger/add/").content.decode()
    assert f'<option value="{PROBE}">{probe.label}</option>' in page


def test_the_form_page_draws_a_declared_kind(probe, team, member_of):
    browser = Client()
    browser.force_login(member_of(team))
    page = browser.get("/triggers/new/").content.decode()
    assert f'<option value="{PROBE}">{probe.label}</option>' in page
    assert re.search(rf'data-kinds="{PROBE}" data-section="probe"', page)
    assert 'id="f-ratio"' in page and 'data-config="ratio"' in page
    schedule = re.search(r'data-kinds="([^"]*)">\s*<legend>Schedule</legend>', page)
    assert schedule and schedule.group(1).split() == list(scheduled_kinds())
    assert PROBE in schedule.group(1).split()


def test_the_checks_run_a_declared_kind_with_its_evaluator(probe, team, member_of):
    trigger = TriggerFactory(team=team, owner=member_of(team), kind=PROBE, config={"ratio": 3})
    assert run_due_checks(now=datetime(2026, 11, 23, 9, tzinfo=UTC)) == 1
    check = TriggerCheck.objects.get(trigger=trigger)
    assert (check.state, check.value) == ("firing", 3.0)
    (row,) = Outbox.objects.all()
    assert row.payload["name"] == f"check.{PROBE}"
    assert row.payload["properties"]["summary"] == "the ratio is 3"


def test_planning_and_explanations_read_a_declared_kind(probe):
    compiled = compile_trigger(id=1, team_id=2, kind=PROBE, name="Probe", config={"ratio": 3})
    assert compiled.kind == PROBE and not compiled.refused
    event = Event(
        name=f"check.{PROBE}",
        team_id=2,
        org_id=1,
        source=Source.CHECK,
        occurred_at=datetime(2026, 11, 23, 9, tzinfo=UTC),
        properties={"trigger_id": 1, "summary": "the ratio is 3"},
    )
    assert render(event, compiled)[:2] == ("alert", "Probe: the ratio is 3")
    assert describe_trigger(PROBE, {"ratio": 3}) == "When the probe ratio is 3"
