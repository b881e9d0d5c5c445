"""A trigger's personal channel goes where its declaration says: a throwaway channel
declared here (to each subscriber, at a user field) and registered for the test only is
planned once per subscriber with that subscriber's address, as email is. Nothing in
triggers, processing or planning names it."""

import pytest

from notifications.channels import base, registry
from notifications.planning import Match, plan
from notifications.processing import audience_of
from tests.notifications.test_planning import event as planned_event
from tests.notifications.test_planning import trigger as planned_trigger

# There is no phone field on the user; the throwaway channel keeps its numbers in last_name.
SMS = base.ChannelDeclaration(
    type="sms_stub",
    label="SMS",
    noun="text messages",
    sender=None,
    target=base.Target("Phone number (optional)", "each subscriber's own number"),
    to_people=True,
    to_each_subscriber=True,
    address_field="last_name",
)


@pytest.fixture
def sms(monkeypatch):
    monkeypatch.setattr(registry, "BY_TYPE", {**registry.BY_TYPE, SMS.type: SMS})


def test_a_personal_channel_without_a_target_goes_to_each_subscriber_at_their_address(
    sms, team, member_of
):
    ann = member_of(team, last_name="+15550001")
    bob = member_of(team, last_name="+15550002")
    trigger = planned_trigger([{"type": "sms_stub"}, {"type": "sms_stub", "target": "+15559999"}])
    event = planned_event(team_id=team.pk, org_id=team.organization_id)
    matches = [Match(event, trigger, frozenset({ann.pk, bob.pk}), "why")]

    planned = plan(matches, audience_of(matches))

    assert {(d.channel, d.recipient_id, d.destination) for d in planned.deliveries} == {
        ("sms_stub", ann.pk, "+15550001"),
        ("sms_stub", bob.pk, "+15550002"),
        ("sms_stub", None, "+15559999"),
    }
    assert len(planned.deliveries) == 3
