"""The trigger writes in ``notifications.services``: the one home of every trigger change.

Each write raises the trigger revision inside its transaction (the ordering promise of
``test_trigger_ordering.py`` rests on it), and the page's form starts from the same fields
the API writes. Integration: PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from api.triggers import TriggerSerializer
from notifications import services
from notifications.models import Trigger, trigger_revision
from notifications.triggers import Kind
from tests.factories import TriggerFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def owner(team, member_of):
    return member_of(team)


@pytest.fixture
def trigger(team, owner):
    return TriggerFactory(team=team, owner=owner)


def raises_the_revision(change) -> bool:
    before = trigger_revision()
    change()
    return trigger_revision() > before


def test_creating_raises_the_revision_and_fills_the_defaults(team, owner, member_of):
    teammate = member_of(team)
    created = []

    assert raises_the_revision(
        lambda: created.append(
            services.trigger_create(
                owner=owner,
                team=team,
                name="Checkout errors",
                kind=Kind.EVENT,
                config={"event": "checkout_error"},
                subscribers=[teammate.pk],
            )
        )
    )

    trigger = Trigger.objects.get(pk=created[0].pk)
    assert trigger.owner == owner and trigger.event_name == "checkout_error"
    assert trigger.channels == [{"type": "in_app"}]
    assert trigger.delivery == {"mode": "instant"}
    assert list(trigger.subscribers.all()) == [teammate]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda t, _: services.trigger_update(trigger=t, name="Renamed"), id="update"),
        pytest.param(
            lambda t, user: services.trigger_update(trigger=t, subscribers=[user.pk]),
            id="subscribers",
        ),
        pytest.param(
            lambda t, _: services.trigger_snooze(
                trigger=t, until=timezone.now() + timedelta(hours=1)
            ),
            id="snooze",
        ),
        pytest.param(
            lambda t, _: services.trigger_set_enabled(trigger=t, enabled=False), id="disable"
        ),
        pytest.param(lambda t, _: services.trigger_delete(trigger=t), id="delete"),
    ],
)
def test_every_change_raises_the_revision(trigger, team, member_of, change):
    teammate = member_of(team)
    assert raises_the_revision(lambda: change(trigger, teammate))


def test_an_update_changes_only_what_it_names(trigger):
    services.trigger_update(trigger=trigger, delivery={"mode": "digest"})

    stored = Trigger.objects.get(pk=trigger.pk)
    assert stored.delivery == {"mode": "digest"}
    assert stored.name == trigger.name and stored.enabled


def test_a_field_that_is_no_setting_is_refused(trigger, owner, team):
    with pytest.raises(TypeError, match="owner"):
        services.trigger_update(trigger=trigger, owner=owner)
    with pytest.raises(TypeError, match="updated_at"):
        services.trigger_create(owner=owner, team=team, name="x", kind="event", updated_at=None)


def test_the_form_starts_from_what_the_api_writes(trigger, team, member_of):
    """The page's form and the API's body are the same fields with the same values."""
    trigger.subscribers.set([member_of(team)])
    api = TriggerSerializer(trigger).data
    writable = {name for name, field in TriggerSerializer().fields.items() if not field.read_only}

    values = services.trigger_values(trigger=trigger)

    assert set(values) == writable | {"id"}
    assert {name: values[name] for name in values if name != "snoozed_until"} == {
        name: api[name] for name in values if name != "snoozed_until"
    }
