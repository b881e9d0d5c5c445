"""Evaluation is total (hypothesis): no event's properties, however odd, make trigger
matching, activity matching, planning or rendering raise, for every kind and operator; and
no stored trigger, however broken, makes ``compile_trigger`` raise or its evaluation fail.

Properties are arbitrary JSON (what ``events.decode`` can hand the consumer): lists and
objects where text is expected, numbers past 2**53 and 1e308, NaN and infinities, text that
looks like numbers. Keys are drawn mostly from the names conditions read (``action``,
``resource_type``, ``changes``, ``summary``, the filters' property), so the odd values land
where they hurt. Pure: no database, no services.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from notifications.events import Actor, Event, Source, Subject, nul_path
from notifications.planning import Audience, Match, describe_changes, plan, render
from notifications.triggers import (
    ACTIVITY_ACTIONS,
    MAX_ABS_NUMBER,
    MAX_COUNT,
    MAX_FILTER_TEXT,
    MAX_WINDOW_MINUTES,
    InvalidTrigger,
    Kind,
    Operator,
    TriggerIndex,
    compile_trigger,
    validate_config,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TEAM = 1
RUNS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = st.sampled_from(["action", "resource_type", "changes", "summary", "p", "q", "owner_id"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**53 + 1, 10**30, 10**308, 10**400, -(10**400)]),
    st.floats(),  # NaN and the infinities too: json.loads reads them
    st.text(max_size=8),
    st.sampled_from(["updated", "deleted", "insight", "100", "1e400", "nan", "true", ""]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=4)), inner, max_size=3),
    ),
    max_leaves=8,
)
PROPERTIES = st.dictionaries(st.one_of(KEYS, st.text(max_size=4)), JSON, max_size=6)


# --- triggers the API accepts, of every kind and operator ------------------------------


def _storable(value: Any) -> bool:
    """A value the API stores: a list or object compared for equality is at most
    ``MAX_FILTER_TEXT`` characters of JSON (three numbers of 400 digits are not)."""
    return not isinstance(value, list | dict) or len(json.dumps(value)) <= MAX_FILTER_TEXT


@st.composite
def filters(draw) -> dict[str, Any]:
    operator = draw(st.sampled_from(list(Operator)))
    if operator in (Operator.GT, Operator.GTE, Operator.LT, Operator.LTE):
        value: Any = draw(
            st.one_of(
                st.integers(-MAX_ABS_NUMBER, MAX_ABS_NUMBER),
                st.floats(-MAX_ABS_NUMBER, MAX_ABS_NUMBER),
            )
        )
    elif operator == Operator.REGEX:
        value = draw(st.sampled_from([r"^up", r"\d+", r"(?i)insight", r"^$", r"\[\]", "a|b"]))
    elif operator == Operator.ICONTAINS:
        value = draw(st.text(max_size=4))
    elif operator == Operator.IN:
        value = draw(st.lists(JSON, min_size=1, max_size=3).filter(_storable))
    elif operator in (Operator.EXACT, Operator.IS_NOT):
        value = draw(JSON.filter(lambda v: v is not None and _storable(v)))
    else:
        value = None
    assume(nul_path(value, "value") is None)  # refused on save (a NUL cannot be stored)
    return {"property": draw(KEYS), "operator": operator.value, "value": value}


@st.composite
def triggers(draw, id: int) -> Any:
    kind = draw(st.sampled_from(list(Kind)))
    config: dict[str, Any]
    if kind in (Kind.EVENT, Kind.EVENT_COUNT):
        config = {"event": "e", "filters": draw(st.lists(filters(), max_size=3))}
        if kind == Kind.EVENT_COUNT:
            config["count"] = draw(st.integers(1, MAX_COUNT))
            config["window_minutes"] = draw(st.integers(1, MAX_WINDOW_MINUTES))
    elif kind == Kind.ACTIVITY:
        config = {
            "actions": draw(st.lists(st.sampled_from(ACTIVITY_ACTIONS), unique=True)),
            "resource_types": draw(
                st.lists(st.sampled_from(["insight", "dashboard", "featureflag"]), unique=True)
            ),
        }
    elif kind == Kind.INSIGHT_THRESHOLD:
        config = {"insight_id": 1, "upper": draw(st.integers(-MAX_ABS_NUMBER, MAX_ABS_NUMBER))}
    elif kind == Kind.EXPERIMENT_SIGNIFICANCE:
        config = {"experiment_id": 1}
    else:
        config = {"cohort_id": 1, "direction": draw(st.sampled_from(["entry", "exit"]))}
    validate_config(kind, config)
    mode = draw(st.sampled_from(["instant", "rollup", "digest"]))
    return compile_trigger(
        id=id,
        team_id=TEAM,
        kind=kind,
        name=f"t{id}",
        config=config,
        channels=draw(
            st.lists(
                st.sampled_from(
                    [{"type": "in_app"}, {"type": "email"}, {"type": "slack", "target": "#a"}]
                ),
                min_size=1,
                max_size=3,
                unique_by=lambda c: c["type"],
            )
        ),
        delivery={"mode": mode, "window_seconds": 60} if mode == "rollup" else {"mode": mode},
    )


NAMES = st.sampled_from(["e", "activity.insight.updated", "check.insight_threshold", "other"])
EVENTS = st.builds(
    Event,
    name=NAMES,
    team_id=st.just(TEAM),
    org_id=st.just(1),
    source=st.sampled_from(list(Source)),
    occurred_at=st.just(NOW),
    properties=PROPERTIES,
    actor=st.one_of(st.none(), st.builds(Actor, id=st.none() | st.integers(1, 3), name=NAMES)),
    subject=st.one_of(st.none(), st.builds(Subject, type=NAMES, id=NAMES, name=NAMES)),
)
AUDIENCE = Audience(
    members={TEAM: frozenset({1, 2, 3})},
    muted={},
    off={2: frozenset({("alert", "email")})},
    addresses={"email": {1: "one@example.com", 2: "two@example.com"}},
)


@RUNS
@given(st.lists(st.integers(1, 50).flatmap(triggers), min_size=1, max_size=4), EVENTS)
@example([compile_trigger(id=1, team_id=TEAM, kind="activity", name="t", config={})], None)
def test_no_event_makes_matching_planning_or_rendering_raise(compiled, event):
    """Every kind x every operator x arbitrary JSON properties: matching answers a list,
    and whatever matched, and built-in activity, plan and render without raising."""
    if event is None:  # the case: a list in action, an object in resource_type
        event = Event(
            name="activity.insight.deleted",
            team_id=TEAM,
            org_id=1,
            source=Source.ACTIVITY,
            occurred_at=NOW,
            properties={"action": ["deleted"], "resource_type": {"a": 1}, "changes": [1]},
        )
    index = TriggerIndex(compiled)
    matched = index.match(team_id=TEAM, event_name=event.name, properties=event.properties, now=NOW)
    assert all(trigger in compiled for trigger in matched)
    matches = [Match(event, trigger, frozenset({1, 2, 3}), "why") for trigger in matched]
    matches.append(Match(event, None, frozenset({1, 2}), "built-in activity"))
    planned = plan(matches, AUDIENCE)
    assert all(len(draft.title) <= 400 for draft in planned.notifications)
    for trigger in (*compiled, None):
        render(event, trigger)


@RUNS
@given(PROPERTIES)
@example({"action": ["deleted"], "resource_type": {"type": "insight"}})
@example({"action": {"updated": 1}, "resource_type": ["insight"]})
def test_odd_types_in_an_activity_event_do_not_match(properties):
    """Activity events are the system's; a non-text ``action`` or ``resource_type`` matches
    no activity trigger."""
    trigger = compile_trigger(id=1, team_id=TEAM, kind="activity", name="t", config={})
    matched = TriggerIndex([trigger]).match(
        team_id=TEAM, event_name="activity.insight.deleted", properties=properties, now=NOW
    )
    action = properties.get("action")
    if not (isinstance(action, str) and action in ACTIVITY_ACTIONS):
        assert matched == []


@RUNS
@given(st.dictionaries(st.one_of(KEYS, st.text(max_size=4)), JSON, max_size=4))
@example({"title": {"before": "a"}})
@example({"title": {"before": [1, {"x": None}], "after": 10**400}})
def test_any_changes_object_renders(changes):
    assert isinstance(describe_changes(changes), str)


# --- whatever is stored ----------------------------------------------------------------

CONFIG_KEYS = st.sampled_from(
    [
        "event",
        "filters",
        "count",
        "window_minutes",
        "interval_minutes",
        "actions",
        "resource_types",
        "insight_id",
        "upper",
        "lower",
        "change",
        "experiment_id",
        "p_value",
        "cohort_id",
        "direction",
    ]
)
STORED_FILTERS = st.lists(
    st.one_of(
        JSON,
        st.fixed_dictionaries(
            {
                "property": st.one_of(KEYS, JSON),
                "operator": st.one_of(st.sampled_from(list(Operator)), JSON),
            },
            optional={"value": JSON},
        ),
    ),
    max_size=3,
)
STORED_CONFIGS = st.one_of(
    JSON,
    st.dictionaries(
        CONFIG_KEYS,
        st.one_of(JSON, st.integers(), STORED_FILTERS, st.just("e")),
        max_size=6,
    ),
)


@RUNS
@given(
    st.one_of(st.sampled_from(list(Kind)), JSON),
    STORED_CONFIGS,
    st.one_of(JSON, st.lists(st.one_of(JSON, st.fixed_dictionaries({"type": JSON})))),
    st.one_of(
        JSON, st.dictionaries(st.sampled_from(["mode", "window_seconds", "max_items"]), JSON)
    ),
    PROPERTIES,
)
@example("event_count", {"event": "e", "count": 10**9, "window_minutes": 10**12}, None, None, {})
@example(
    "event",
    {"event": "e", "filters": [{"property": "p", "operator": "in", "value": 5}]},
    {},
    {},
    {},
)
@example("activity", {"actions": [["created"]]}, [{"type": 1}], {"mode": "sometimes"}, {})
@example("cohort_membership", {"cohort_id": 1, "interval_minutes": 10**400}, "x", 7, {})
def test_no_stored_trigger_makes_compiling_or_evaluating_raise(
    kind, config, channels, delivery, properties
):
    """Rows saved before today's rules (or edited in the database) compile: valid, clamped
    to their bounds, or refused and matching nothing."""
    trigger = compile_trigger(
        id=1, team_id=TEAM, kind=kind, name="t", config=config, channels=channels, delivery=delivery
    )
    try:
        validate_config(kind, config)
    except InvalidTrigger:
        pass
    else:
        assert not trigger.refused
    if trigger.refused:
        assert TriggerIndex([trigger]).by_id == {}
    assert trigger.window_minutes <= MAX_WINDOW_MINUTES and trigger.count <= MAX_COUNT
    index = TriggerIndex([trigger])
    for name in (trigger.event_name, "activity.insight.deleted"):
        index.match(team_id=TEAM, event_name=name, properties=properties, now=NOW)
