"""Every registered channel declares everything, and everything else asks the registry.

A channel module's ``DECLARATION`` is the one home of what the channel is; these tests fail
when a declaration is incomplete, when a list elsewhere (a model's choices, the API's
choices, the pages' channel lists, the contract suite's harnesses) stops coming from the
registry, or when a type the registry does not know reaches a code path that looks it up.
"""

from __future__ import annotations

import importlib
import json
import re

import pytest
from django.contrib.auth import get_user_model

from notifications.channels import registry
from notifications.channels.base import ChannelNotConfigured
from notifications.delivery import channel_destination
from notifications.models import ChannelConfig, Delivery, RollupWindow
from notifications.secrets import encrypt
from tests.notifications.channels.conftest import CHANNEL_NAMES

DECLARATIONS = registry.DECLARATIONS
UNKNOWN = "carrier_pigeon"  # not "sms": a real channel may take that name one day


@pytest.mark.parametrize("declaration", DECLARATIONS, ids=lambda d: d.type)
def test_every_channel_declares_everything(declaration):
    module = importlib.import_module(f"notifications.channels.{declaration.type}")
    assert module.DECLARATION is declaration
    assert declaration.type == module.TYPE
    assert re.fullmatch(r"[a-z][a-z0-9_]{0,15}", declaration.type)  # fits the 16-char columns
    assert declaration.label.strip() and declaration.noun.strip()
    if declaration.sender is not None:
        assert declaration.sender.type == declaration.type
    if declaration.target is not None:
        assert declaration.target.label.strip() and declaration.target.placeholder.strip()
    if declaration.to_each_subscriber:
        assert declaration.to_people, "what goes to each subscriber has a preferences column"
        assert declaration.target is None or not declaration.target.required
    if declaration.address_field:
        assert declaration.to_each_subscriber, "only a channel sent to each subscriber reads one"
        get_user_model()._meta.get_field(declaration.address_field)  # the user has that field
    if declaration.org_level:
        secret = declaration.secret
        assert secret.name and secret.label and secret.check("") is not None
        assert declaration.sender is not None, "an organization channel sends something"
        assert declaration.settings, "an organization channel has its default target"
        for setting in declaration.settings:
            assert setting.name not in (secret.name, "secret")
    else:
        assert not declaration.settings, "config belongs to organization-level channels"


def test_types_are_unique_and_the_lists_derive_from_the_declarations():
    types = [d.type for d in DECLARATIONS]
    assert len(set(types)) == len(types)
    assert tuple(types) == registry.TYPES
    assert [(d.type, d.label) for d in DECLARATIONS] == registry.CHOICES
    assert set(registry.ORG_LEVEL) == {d.type for d in DECLARATIONS if d.secret is not None}
    assert set(registry.TO_PEOPLE) >= registry.PUSH


def test_every_sending_channel_has_a_contract_harness():
    assert sorted(CHANNEL_NAMES) == sorted(d.type for d in DECLARATIONS if d.sender is not None)


def test_a_target_of_every_checked_channel_can_be_refused():
    for declaration in DECLARATIONS:
        if declaration.target is None:
            assert registry.target_problem(declaration.type, "anything") is not None
            assert registry.target_problem(declaration.type, None) is None
        elif declaration.target.check is not None:
            assert registry.target_problem(declaration.type, "not a target\n") is not None


@pytest.mark.parametrize("type", registry.ORG_LEVEL)
def test_an_unknown_config_key_is_refused_by_name(type):
    problems = registry.config_problems(type, {"no_such_setting": "x"})
    assert problems["no_such_setting"].startswith(f"unknown setting for {type}; use ")


def test_the_models_choices_are_the_registrys():
    assert Delivery._meta.get_field("channel").choices == registry.CHOICES
    assert RollupWindow._meta.get_field("channel").choices == registry.CHOICES
    assert ChannelConfig._meta.get_field("type").choices == registry.ORG_LEVEL_CHOICES


def test_the_apis_choices_are_the_registrys():
    # imported here: importing api.errors before DRF's settings have loaded is a circle
    from api.channels import ChannelConfigSerializer
    from api.triggers import TriggerChannelSerializer

    assert list(TriggerChannelSerializer().fields["type"].choices) == list(registry.TYPES)
    assert list(ChannelConfigSerializer().fields["type"].choices) == list(registry.ORG_LEVEL)


def test_get_channel_answers_every_sending_type_and_refuses_the_rest():
    for declaration in DECLARATIONS:
        if declaration.sender is None:
            with pytest.raises(ChannelNotConfigured):
                registry.get_channel(declaration.type)
        else:
            assert isinstance(registry.get_channel(declaration.type), declaration.sender)


# --- through the database, the API and the pages ------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("type", registry.ORG_LEVEL)
def test_delivery_hands_the_secret_over_under_its_declared_name(team, type):
    declaration = registry.BY_TYPE[type]
    ChannelConfig.objects.create(
        organization=team.organization,
        type=type,
        name="main",
        config={"default_target": "somewhere"},
        secret_encrypted=encrypt("the-secret-value-0123456789"),
    )
    destination = channel_destination(organization=team.organization, channel=type, address="")
    assert destination.settings[declaration.secret.name] == "the-secret-value-0123456789"
    assert destination.address == "somewhere"


@pytest.fixture
def admin_client(api_client, team, member_of):
    api_client.force_authenticate(member_of(team, role="admin"))
    return api_client


@pytest.mark.django_db
@pytest.mark.parametrize("type", [UNKNOWN, "email", "in_app", ""])
def test_a_type_without_an_organization_channel_is_a_field_error(admin_client, team, type):
    body = {"type": type, "name": "x", "organization": team.organization_id, "config": {}}
    response = admin_client.post("/api/channels/", body, format="json")
    assert response.status_code == 400
    assert "type" in response.json()


@pytest.mark.django_db
def test_a_stored_row_of_a_type_no_longer_declared_is_a_field_error(admin_client, team):
    row = ChannelConfig.objects.create(organization=team.organization, type=UNKNOWN, name="old")
    response = admin_client.patch(f"/api/channels/{row.pk}/", {"config": {}}, format="json")
    assert response.status_code == 400
    assert f"unknown channel type '{UNKNOWN}'" in response.json()["type"][0]
    listed = admin_client.get("/api/channels/")
    assert listed.status_code == 200


@pytest.mark.django_db
def test_an_unknown_trigger_channel_is_a_field_error(admin_client, team):
    body = {
        "team": team.pk,
        "name": "x",
        "kind": "event",
        "config": {"event": "e"},
        "channels": [{"type": UNKNOWN}],
    }
    response = admin_client.post("/api/triggers/", body, format="json")
    assert response.status_code == 400
    message = response.json()["channels[0].type"][0]
    assert message.endswith("use one of " + ", ".join(registry.TYPES))


def _json_script(html: str, element_id: str):
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    assert found, f"no json_script {element_id}"
    return json.loads(found.group(1))


@pytest.mark.django_db
def test_the_pages_list_the_registrys_channels(client, team, member_of):
    client.force_login(member_of(team))
    form = client.get("/triggers/new/").content.decode()
    targets = _json_script(form, "channel-targets")
    assert list(targets) == list(registry.TYPES)
    for declaration in DECLARATIONS:
        shown = targets[declaration.type]
        if declaration.target is None:
            assert shown is None
        else:
            assert shown == {
                "label": declaration.target.label,
                "placeholder": declaration.target.placeholder,
            }
        assert f'<option value="{declaration.type}">{declaration.label}</option>' in form

    preferences = client.get("/preferences/").content.decode()
    assert _json_script(preferences, "pref-channels") == [list(c) for c in registry.CHOICES]
    personal = _json_script(preferences, "pref-personal-channels")
    assert personal == [d.type for d in DECLARATIONS if d.to_people and not d.org_level]
