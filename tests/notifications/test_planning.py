"""Unit tests for the planning function: who hears about a match, on which channel."""

from datetime import UTC, datetime

from notifications.events import Actor, Event, Source, Subject
from notifications.planning import Audience, Match, plan
from notifications.triggers import compile_trigger

NOW = datetime(2026, 11, 23, 14, 2, tzinfo=UTC)
TEAM = 7


def event(**changes):
    fields = dict(
        name="checkout_error",
        team_id=TEAM,
        org_id=1,
        source=Source.INGEST,
        occurred_at=NOW,
        properties={"amount": 120},
    )
    return Event(**{**fields, **changes})


def trigger(channels, delivery=None):
    return compile_trigger(
        id=3,
        team_id=TEAM,
        kind="event",
        name="Big errors",
        config={"event": "checkout_error"},
        channels=channels,
        delivery=delivery or {"mode": "instant"},
    )


def audience(members=(1, 2, 3), **kw):
    return Audience(
        members={TEAM: frozenset(members)},
        muted=kw.get("muted", {}),
        off=kw.get("off", {}),
        addresses={"email": {1: "one@example.com", 2: "two@example.com"}},
    )


def test_instant_in_app_and_email_go_per_recipient_and_slack_once():
    t = trigger([{"type": "in_app"}, {"type": "email"}, {"type": "slack", "target": "#alerts"}])
    result = plan([Match(event(), t, frozenset({1, 2}), "why")], audience())
    assert sorted(d.recipient_id for d in result.notifications) == [1, 2]
    assert sorted((d.channel, d.destination) for d in result.deliveries) == [
        ("email", "one@example.com"),
        ("email", "two@example.com"),
        ("slack", "#alerts"),
    ]
    assert result.rollup_hits == []


def test_rollup_counts_into_windows_instead_of_sending():
    t = trigger(
        [{"type": "in_app"}, {"type": "slack", "target": "#alerts"}],
        {"mode": "rollup", "window_seconds": 60},
    )
    result = plan([Match(event(), t, frozenset({1}), "why")], audience())
    assert result.notifications == [] and result.deliveries == []
    assert sorted((h.channel, h.destination) for h in result.rollup_hits) == [
        ("in_app", "1"),
        ("slack", "#alerts"),
    ]


def test_digest_mode_only_stores_in_app_rows():
    t = trigger([{"type": "email"}], {"mode": "digest"})
    result = plan([Match(event(), t, frozenset({1}), "why")], audience())
    assert [d.recipient_id for d in result.notifications] == [1]
    assert result.deliveries == []


def test_preferences_non_members_and_the_actor_are_left_out():
    t = trigger([{"type": "in_app"}, {"type": "email"}])
    e = event(actor=Actor(id=3, name="Ann"))
    result = plan(
        [Match(e, t, frozenset({1, 2, 3, 99}), "why")],
        audience(off={2: frozenset({("alert", "email")})}),
    )
    assert sorted(d.recipient_id for d in result.notifications) == [1, 2]
    assert [d.destination for d in result.deliveries] == ["one@example.com"]


def test_activity_reads_like_a_sentence_with_the_changes():
    e = event(
        name="activity.insight.updated",
        source=Source.ACTIVITY,
        actor=Actor(id=2, name="Eddie"),
        subject=Subject("insight", "9", "Revenue", "/insights/9"),
        properties={
            "action": "updated",
            "changes": {"name": {"before": "Rev", "after": "Revenue"}},
        },
    )
    [draft] = plan([Match(e, None, frozenset({1, 2}), "why")], audience()).notifications
    assert draft.title == "Eddie edited insight “Revenue”"
    assert draft.body == "Changed name: Rev → Revenue"
    assert draft.category == "activity"
