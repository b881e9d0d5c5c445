"""Unit tests for trigger validation and evaluation (pure, no database)."""

from datetime import UTC, datetime, timedelta

import pytest

from notifications.triggers import (
    InvalidTrigger,
    Kind,
    ThresholdState,
    TriggerIndex,
    check_regex,
    compile_filter,
    compile_trigger,
    threshold_state,
    validate_config,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("operator", "value", "properties", "expected"),
    [
        ("exact", "EUR", {"currency": "EUR"}, True),
        ("exact", "EUR", {"currency": "eur"}, True),
        ("exact", 100, {"amount": "100"}, True),
        ("exact", "EUR", {}, False),
        ("is_not", "EUR", {"currency": "USD"}, True),
        ("is_not", "EUR", {}, True),
        ("is_not", "EUR", {"currency": "EUR"}, False),
        ("icontains", "Fail", {"message": "payment failed"}, True),
        ("icontains", "ok", {"message": None}, False),
        ("regex", r"^card_\d+$", {"code": "card_42"}, True),
        ("regex", r"^card_\d+$", {"code": "bank_42"}, False),
        ("gt", 100, {"amount": 101}, True),
        ("gt", 100, {"amount": 100}, False),
        ("gte", 100, {"amount": 100}, True),
        ("lt", 100, {"amount": "99.5"}, True),
        ("lte", 100, {"amount": 100}, True),
        ("gt", 100, {"amount": "lots"}, False),
        ("gt", 100, {}, False),
        ("is_set", None, {"amount": 0}, True),
        ("is_set", None, {"amount": None}, False),
        ("is_not_set", None, {}, True),
        ("in", ["ios", "android"], {"os": "ios"}, True),
        ("in", ["ios", "android"], {"os": "web"}, False),
    ],
)
def test_operators(operator, value, properties, expected):
    assert (
        compile_filter("x" if not properties else next(iter(properties)), operator, value)(
            properties
        )
        is expected
    )


@pytest.mark.parametrize(
    ("kind", "config", "field"),
    [
        ("event", {}, "config.event"),
        (
            "event",
            {"event": "e", "filters": [{"property": "a", "operator": "like"}]},
            "config.filters[0].operator",
        ),
        (
            "event",
            {"event": "e", "filters": [{"property": "a", "operator": "gt", "value": "x"}]},
            "config.filters[0].value",
        ),
        (
            "event",
            {"event": "e", "filters": [{"property": "a", "operator": "regex", "value": "(a"}]},
            "config.filters[0].value",
        ),
        (
            "event",
            {"event": "e", "filters": [{"property": "a", "operator": "regex", "value": "a(?=b)"}]},
            "config.filters[0].value",
        ),
        (
            "event",
            {"event": "e", "filters": [{"property": "", "operator": "is_set"}]},
            "config.filters[0].property",
        ),
        ("event_count", {"event": "e", "count": 0, "window_minutes": 5}, "config.count"),
        ("insight_threshold", {"insight_id": 1, "upper": "high"}, "config.upper"),
        ("insight_threshold", {"insight_id": 1}, "config.upper"),
        ("experiment_significance", {"experiment_id": 1, "p_value": 2}, "config.p_value"),
        ("cohort_membership", {"cohort_id": 1, "direction": "sideways"}, "config.direction"),
        ("activity", {"actions": ["renamed"]}, "config.actions"),
        ("bogus", {}, "kind"),
    ],
)
def test_invalid_configs_name_the_field(kind, config, field):
    with pytest.raises(InvalidTrigger) as info:
        validate_config(kind, config)
    assert field in info.value.errors


@pytest.mark.parametrize("pattern", [r"(a+)+", r"(.*)*x", r"(a|b*)+", r"((ab)*c)*"])
def test_catastrophic_regexes_are_accepted_as_re2_does_not_backtrack(pattern):
    assert check_regex(pattern) is None


@pytest.mark.parametrize("pattern", [r"^checkout_\w+$", r"a+b+", r"(ab){2,5}", r"\d{3}-\d{4}"])
def test_ordinary_regexes_pass(pattern):
    assert check_regex(pattern) is None


def _event_trigger(id, team_id, event, filters=(), snoozed_until=None):
    return compile_trigger(
        id=id,
        team_id=team_id,
        kind="event",
        name=f"t{id}",
        config={"event": event, "filters": list(filters)},
        snoozed_until=snoozed_until,
    )


def test_index_only_offers_triggers_for_the_team_and_event():
    wanted = _event_trigger(
        1, 10, "checkout_error", [{"property": "amount", "operator": "gt", "value": 100}]
    )
    others = [_event_trigger(i, 10 + i % 7, f"other_{i}") for i in range(2, 2000)]
    index = TriggerIndex([wanted, *others])
    assert index.candidates(10, "checkout_error") == [wanted]
    assert index.match(
        team_id=10, event_name="checkout_error", properties={"amount": 150}, now=NOW
    ) == [wanted]
    assert (
        index.match(team_id=10, event_name="checkout_error", properties={"amount": 50}, now=NOW)
        == []
    )
    assert (
        index.match(team_id=11, event_name="checkout_error", properties={"amount": 150}, now=NOW)
        == []
    )


def test_snoozed_triggers_do_not_match_until_the_snooze_ends():
    trigger = _event_trigger(1, 1, "e", snoozed_until=NOW + timedelta(hours=1))
    index = TriggerIndex([trigger])
    assert index.match(team_id=1, event_name="e", properties={}, now=NOW) == []
    later = NOW + timedelta(hours=2)
    assert index.match(team_id=1, event_name="e", properties={}, now=later) == [trigger]


def test_activity_triggers_filter_by_action_and_resource_type():
    trigger = compile_trigger(
        id=5,
        team_id=1,
        kind=Kind.ACTIVITY,
        name="flags",
        config={"actions": ["updated"], "resource_types": ["featureflag"]},
    )
    index = TriggerIndex([trigger])
    hit = {"action": "updated", "resource_type": "featureflag"}
    assert index.match(
        team_id=1, event_name="activity.featureflag.updated", properties=hit, now=NOW
    ) == [trigger]
    miss = {"action": "updated", "resource_type": "insight"}
    assert (
        index.match(team_id=1, event_name="activity.insight.updated", properties=miss, now=NOW)
        == []
    )


@pytest.mark.parametrize(
    ("value", "previous", "upper", "lower", "change", "expected"),
    [
        (120, None, 100, None, "absolute", ThresholdState.FIRING),
        (80, None, 100, None, "absolute", ThresholdState.NOT_FIRING),
        (5, None, None, 10, "absolute", ThresholdState.FIRING),
        (130, 100, 0.2, None, "relative", ThresholdState.FIRING),
        (110, 100, 0.2, None, "relative", ThresholdState.NOT_FIRING),
        (110, None, 0.2, None, "relative", ThresholdState.NOT_FIRING),
    ],
)
def test_threshold_state(value, previous, upper, lower, change, expected):
    assert (
        threshold_state(value=value, previous=previous, upper=upper, lower=lower, change=change)
        == expected
    )


@pytest.mark.parametrize(
    ("kind", "config", "field", "bound"),
    [
        (
            "event_count",
            {"event": "e", "count": 5, "window_minutes": 10_081},
            "window_minutes",
            10_080,
        ),
        ("event_count", {"event": "e", "count": 10**6 + 1, "window_minutes": 5}, "count", 10**6),
        (
            "cohort_membership",
            {"cohort_id": 1, "interval_minutes": 10**9},
            "interval_minutes",
            10_080,
        ),
        ("insight_threshold", {"insight_id": 1, "lower": -(10**16)}, "lower", 10**15),
    ],
)
def test_numbers_beyond_their_bound_name_the_field_and_the_bound(kind, config, field, bound):
    with pytest.raises(InvalidTrigger) as info:
        validate_config(kind, config)
    assert f"at most {bound}" in info.value.errors[f"config.{field}"]


def test_a_stored_window_beyond_its_bound_runs_at_the_bound_and_says_so(caplog):
    """Saved before the bound: 10**12 minutes overflowed timedelta in the consumer."""
    config = {"event": "e", "count": 10**9, "window_minutes": 10**12}
    with caplog.at_level("WARNING", logger="notifications.triggers"):
        trigger = compile_trigger(id=77, team_id=1, kind="event_count", name="t", config=config)
    assert (trigger.count, trigger.window_minutes, trigger.refused) == (10**6, 10_080, "")
    assert timedelta(minutes=trigger.window_minutes)  # no OverflowError
    assert "trigger 77: its stored config is read at its bounds" in caplog.text


def test_a_stored_config_todays_rules_refuse_matches_nothing_and_says_why(caplog):
    config = {"event": "check.insight_threshold", "filters": [{"property": "p", "operator": "in"}]}
    with caplog.at_level("WARNING", logger="notifications.triggers"):
        trigger = compile_trigger(id=78, team_id=1, kind="event", name="t", config=config)
    assert "config.event" in trigger.refused and "config.filters[0].value" in trigger.refused
    index = TriggerIndex([trigger])
    assert (
        index.match(team_id=1, event_name="check.insight_threshold", properties={}, now=NOW) == []
    )
    assert "trigger 78: its stored config is refused, so it matches nothing" in caplog.text


def test_a_stored_delivery_beyond_its_bounds_is_read_within_them():
    trigger = compile_trigger(
        id=1,
        team_id=1,
        kind="event",
        name="t",
        config={"event": "e"},
        delivery={"mode": "rollup", "window_seconds": 10**12, "max_items": 0},
        channels=[{"type": "slack", "target": "#a"}, "junk", {"target": "#b"}],
    )
    assert (trigger.delivery.window_seconds, trigger.delivery.max_items) == (86_400, 1)
    assert [c.type for c in trigger.channels] == ["slack"]
