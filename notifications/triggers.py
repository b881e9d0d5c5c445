"""Trigger conditions: the kinds, validation of stored configs and their evaluation. Pure.

Each kind is declared once, as a :class:`KindSpec` in :data:`KINDS` (its label, config
validation, sentence, title, form fields, and for a scheduled kind its evaluator in
:mod:`notifications.checks`); the API, the admin, the form page, the checks and planning
read the declaration and keep no list of kinds of their own.

A stored trigger is compiled once into a :class:`CompiledTrigger`; a :class:`TriggerIndex`
groups compiled triggers by ``(team_id, event_name)`` so evaluating an event only looks at
triggers that could match it — adding triggers for other teams or events costs nothing.

Two promises, each kept here for the API, the admin, the page and the consumer at once:

- **Every number and list a user sets is bounded.** :func:`validate_config` refuses what
  lies beyond the bounds below, naming the field and the bound. A trigger stored before a
  bound existed still runs: :func:`usable_config` reads a count, window or interval beyond
  its bound as the bound, and anything else today's rules refuse makes the trigger match
  nothing; either way a warning names the trigger and the reason.
- **Evaluation is total.** Whatever JSON an event's properties hold (lists and objects
  where text is expected, huge numbers, NaN), :meth:`TriggerIndex.match` answers; a value of
  the wrong type simply does not match.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import re2
from django.db.models.enums import TextChoices  # plain enums: no settings, no database

from notifications.channels import registry
from notifications.events import (
    ACTIVITY_PREFIX,
    MAX_NAME_LENGTH,
    NUL,
    SYSTEM_NAME,
    is_system_name,
    nul_path,
)
from workspace.resources import Action

log = logging.getLogger(__name__)

# --- bounds on what a user sets (docs/reliability.md, "Input bounds") ------------------

MAX_COUNT = 1_000_000
MAX_WINDOW_MINUTES = 10_080
"""An event_count window, and a scheduled check's interval: at most 7 days."""
MAX_INTERVAL_MINUTES = 10_080
MAX_ID = 2**63 - 1
"""Insight, experiment and cohort ids are PostgreSQL bigints."""
MAX_ABS_NUMBER = 10**15
"""Thresholds and numeric filter values: beyond a quadrillion either way a bound means
nothing, and up to it every whole number is exact in a float."""
MAX_FILTERS = 20
MAX_IN_VALUES = 100
MAX_FILTER_TEXT = 1_000
"""A filter's text value (or a list/object value, as JSON)."""
MAX_PROPERTY_NAME = MAX_NAME_LENGTH
MAX_RESOURCE_TYPES = 20
MAX_REGEX_LENGTH = 300
MAX_REGEX_PROGRAM = 1_000
"""RE2 instructions a pattern may compile to: matching costs at most (text length) x (program
size) steps, so this and MAX_MATCHED_TEXT bound each regex filter's time per event."""
MAX_MATCHED_TEXT = 2_000
MIN_WINDOW_SECONDS = 10
MAX_WINDOW_SECONDS = 86_400
"""A roll-up window, and how far matches may stretch it: 10 seconds to one day."""
MAX_ROLLUP_ITEMS = 1_000_000
MAX_CHANNELS = 10
MAX_SUBSCRIBERS = 1_000

WHOLE_NUMBERS = {
    "count": (1, MAX_COUNT),
    "window_minutes": (1, MAX_WINDOW_MINUTES),
    "interval_minutes": (1, MAX_INTERVAL_MINUTES),
    "insight_id": (1, MAX_ID),
    "experiment_id": (1, MAX_ID),
    "cohort_id": (1, MAX_ID),
}
"""Config keys holding a whole number, and the range it must lie in."""
CLAMPED = ("count", "window_minutes", "interval_minutes")
"""Of those, the ones a stored trigger may have beyond its bound and still run at the
bound (a shorter window, a lower count): an id beyond its bound names nothing."""


class Kind(StrEnum):
    """The trigger kinds' names; what each one is lives in its declaration in :data:`KINDS`."""

    EVENT = "event"
    EVENT_COUNT = "event_count"
    ACTIVITY = "activity"
    INSIGHT_THRESHOLD = "insight_threshold"
    EXPERIMENT_SIGNIFICANCE = "experiment_significance"
    COHORT_MEMBERSHIP = "cohort_membership"


class Operator(StrEnum):
    EXACT = "exact"
    IS_NOT = "is_not"
    ICONTAINS = "icontains"
    REGEX = "regex"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IS_SET = "is_set"
    IS_NOT_SET = "is_not_set"
    IN = "in"


OPERATOR_LABELS = {
    Operator.EXACT: ("equals", "is"),
    Operator.IS_NOT: ("does not equal", "is not"),
    Operator.ICONTAINS: ("contains", "contains"),
    Operator.REGEX: ("matches regex", "matches"),
    Operator.GT: (">", ">"),
    Operator.GTE: ("≥", "≥"),
    Operator.LT: ("<", "<"),
    Operator.LTE: ("≤", "≤"),
    Operator.IS_SET: ("is set", "is set"),
    Operator.IS_NOT_SET: ("is not set", "is not set"),
    Operator.IN: ("is one of", "is one of"),
}
"""Each operator as the trigger form's menu shows it, and as a sentence describing a filter
says it ("amount > 100", "path is \"/home\"")."""


class Mode(StrEnum):
    INSTANT = "instant"
    ROLLUP = "rollup"
    DIGEST = "digest"


@dataclass(frozen=True)
class DeliverySpec:
    """How a trigger's matches go out. For ``rollup``: the first match opens a window of
    ``window_seconds``; with ``max_window_seconds`` each match extends it up to that bound;
    ``max_items`` closes it early."""

    mode: Mode = Mode.INSTANT
    window_seconds: int = 60
    max_window_seconds: int | None = None
    max_items: int | None = None

    @classmethod
    def from_config(cls, data: Any) -> DeliverySpec:
        """Total: what a stored delivery holds beyond today's rules (an unknown mode, a
        window beyond its bounds, saved through the admin or before a bound existed) is
        read as the nearest value they allow, never raised on."""
        data = data if isinstance(data, Mapping) else {}
        mode = data.get("mode")
        return cls(
            mode=Mode(mode) if isinstance(mode, str) and mode in _MODES else Mode.INSTANT,
            window_seconds=_clamp(
                data.get("window_seconds"), MIN_WINDOW_SECONDS, MAX_WINDOW_SECONDS
            )
            or 60,
            max_window_seconds=_clamp(
                data.get("max_window_seconds"), MIN_WINDOW_SECONDS, MAX_WINDOW_SECONDS
            ),
            max_items=_clamp(data.get("max_items"), 1, MAX_ROLLUP_ITEMS),
        )


_MODES = frozenset(m.value for m in Mode)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _clamp(value: Any, low: int, high: int) -> int | None:
    """A whole number moved into ``[low, high]``; None for anything else."""
    return min(max(value, low), high) if _is_whole(value) else None


@dataclass(frozen=True)
class ChannelSpec:
    """One channel of a trigger: without a target, a channel declared to go to each
    subscriber (``in_app``, ``email``) goes to each recipient; the others (``slack``,
    ``webhook``, ``telegram``, an email with a target) go to ``target`` (a #channel, a URL,
    a chat id, an address)."""

    type: str
    target: str = ""

    @property
    def per_recipient(self) -> bool:
        return registry.to_each_subscriber(self.type, self.target)


IN_APP_ONLY = (ChannelSpec("in_app"),)


def channel_specs(data: Any) -> tuple[ChannelSpec, ...]:
    """A stored channel list as specs; total: entries that are not ``{type, target}``
    objects are left out, and at most :data:`MAX_CHANNELS` are read."""
    entries = data[:MAX_CHANNELS] if isinstance(data, list | tuple) else ()
    specs = tuple(
        ChannelSpec(c["type"], c["target"] if isinstance(c.get("target"), str) else "")
        for c in entries
        if isinstance(c, Mapping) and isinstance(c.get("type"), str)
    )
    return specs or IN_APP_ONLY


ACTIVITY_ACTIONS = tuple(Action.values)


class InvalidTrigger(ValueError):
    """A config that cannot be stored; ``errors`` maps a field path to what is wrong."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


# --- validation -----------------------------------------------------------------------


def _regex_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is the user's error, not a log line
    return options


_UNSUPPORTED_GROUPS = (
    ("(?<=", "a lookbehind (?<=…)"),
    ("(?<!", "a negative lookbehind (?<!…)"),
    ("(?=", "a lookahead (?=…)"),
    ("(?!", "a negative lookahead (?!…)"),
    ("(?>", "an atomic group (?>…)"),
    ("(?(", "a conditional group (?(…)"),
    ("(?P", "a named backreference (?P=…)"),  # (?P<name>…) itself compiles
)


def _unsupported_construct(error: str) -> str | None:
    """The construct RE2's compile error is about, named for a user, when it is one that
    backtracking engines have and RE2 leaves out; None for any other error."""
    code, _, arg = error.partition(": ")
    for prefix, name in _UNSUPPORTED_GROUPS:
        if arg.startswith(prefix):
            return name
    if code == "invalid escape sequence" and arg[1:].isdigit():
        return f"a backreference {arg}"
    if code == "invalid escape sequence" and arg == "\\Z":
        return "\\Z (write \\z for the end of the text)"
    if code == "bad repetition operator" and arg.endswith("+") and len(arg) > 1:
        return f"a possessive quantifier {arg}"
    return None


def compile_regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2, which matches in time linear in the text (no
    backtracking). Raises ``re2.error`` or UnicodeEncodeError (a lone surrogate)."""
    return re2.compile(pattern, _regex_options())


def check_regex(pattern: Any) -> str | None:
    """Why ``pattern`` cannot be used, or None when it can. Trigger regexes use RE2's syntax
    (Python's, less lookarounds, backreferences, atomic groups and possessive quantifiers;
    ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII), so that no pattern can backtrack."""
    if not isinstance(pattern, str) or not pattern:
        return "must be a non-empty string"
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"is longer than {MAX_REGEX_LENGTH} characters"
    try:
        compiled = compile_regex(pattern)
    except UnicodeEncodeError:
        return "does not compile: it holds a lone UTF-16 surrogate"
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        error = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        if construct := _unsupported_construct(error):
            return f"uses {construct}, which RE2 (the engine trigger regexes run on) lacks"
        return f"does not compile: {error}"
    # RE2 is linear in the text times the compiled program; bound the program too. The
    # size is only on the wrapped RE2 object.
    size = compiled._regexp.ProgramSize()
    if size > MAX_REGEX_PROGRAM:
        return (
            f"is too complex: it compiles to {size:,} steps, at most {MAX_REGEX_PROGRAM:,} "
            "(lower its repeat counts)"
        )
    return None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)  # math.isfinite(10**400) overflows


def _shown(value: Any) -> str:
    """A value quoted in an error message, cut short: it may be a megabyte of JSON."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int past Python's digit limit, deep nesting
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "…"


def _whole_number_error(value: Any, low: int, high: int) -> str | None:
    if not _is_whole(value) or not low <= value <= high:
        return f"must be a whole number of at least {low} and at most {high}, got {_shown(value)}"
    return None


def _number_error(value: Any) -> str | None:
    if not _is_number(value):
        return f"must be a number, got {_shown(value)}"
    if abs(value) > MAX_ABS_NUMBER:
        return (
            f"must be at least -{MAX_ABS_NUMBER} and at most {MAX_ABS_NUMBER}, got {_shown(value)}"
        )
    return None


def _value_error(value: Any) -> str | None:
    """Why a value compared for equality cannot be stored: text, or a list or object as
    JSON, longer than :data:`MAX_FILTER_TEXT`."""
    if isinstance(value, str):
        size = len(value)
    elif isinstance(value, list | dict):
        try:
            size = len(json.dumps(value))
        except (TypeError, ValueError, RecursionError):
            return "must be a JSON value"
    else:
        return None
    if size > MAX_FILTER_TEXT:
        return f"is longer than {MAX_FILTER_TEXT} characters"
    return None


_COMPARISONS = frozenset({"gt", "gte", "lt", "lte"})


def _filter_value_error(op: Operator, value: Any) -> str | None:
    if op in _COMPARISONS:
        return _number_error(value)
    if op == Operator.REGEX:
        return check_regex(value)
    if op == Operator.IN:
        if not (isinstance(value, list) and value):
            return "must be a non-empty list for in"
        if len(value) > MAX_IN_VALUES:
            return f"must hold at most {MAX_IN_VALUES} values, got {len(value)}"
        return next((f"[{i}] {e}" for i, v in enumerate(value) if (e := _value_error(v))), None)
    if op in (Operator.EXACT, Operator.IS_NOT):
        return f"is required for {op}" if value is None else _value_error(value)
    if op == Operator.ICONTAINS:
        return (
            "must be a string for icontains" if not isinstance(value, str) else _value_error(value)
        )
    return None


def _validate_filters(filters: Any, errors: dict[str, str]) -> None:
    if filters is None:
        return
    if not isinstance(filters, list):
        errors["config.filters"] = "must be a list"
        return
    if len(filters) > MAX_FILTERS:
        errors["config.filters"] = f"at most {MAX_FILTERS} filters, got {len(filters)}"
        return
    for i, item in enumerate(filters):
        path = f"config.filters[{i}]"
        if not isinstance(item, dict):
            errors[path] = "must be an object with property, operator, value"
            continue
        prop = item.get("property")
        if not isinstance(prop, str) or not prop:
            errors[f"{path}.property"] = "must be a non-empty string"
        elif len(prop) > MAX_PROPERTY_NAME:
            errors[f"{path}.property"] = f"is longer than {MAX_PROPERTY_NAME} characters"
        operator = item.get("operator")
        if not isinstance(operator, str) or operator not in _OPERATORS:
            errors[f"{path}.operator"] = (
                f"unknown operator {_shown(operator)}; use one of "
                + ", ".join(o.value for o in Operator)
            )
            continue
        if reason := _filter_value_error(Operator(operator), item.get("value")):
            errors[f"{path}.value"] = reason


def _require_event(config: dict[str, Any], errors: dict[str, str]) -> None:
    event = config.get("event")
    if not isinstance(event, str) or not event.strip():
        errors["config.event"] = "must be the name of an event"
    elif len(event) > MAX_NAME_LENGTH:
        errors["config.event"] = f"is longer than {MAX_NAME_LENGTH} characters"
    elif is_system_name(event):
        errors["config.event"] = f"{SYSTEM_NAME} (use an activity trigger for activity)"


def _require_whole_number(config: dict[str, Any], key: str, errors: dict[str, str]) -> None:
    if reason := _whole_number_error(config.get(key), *WHOLE_NUMBERS[key]):
        errors[f"config.{key}"] = reason


def _validate_activity(config: dict[str, Any], errors: dict[str, str]) -> None:
    actions = config.get("actions", list(ACTIVITY_ACTIONS))
    if (
        not isinstance(actions, list)
        or len(actions) > len(ACTIVITY_ACTIONS)
        or not all(isinstance(a, str) and a in ACTIVITY_ACTIONS for a in actions)
    ):
        errors["config.actions"] = "must be a list of at most one each of " + ", ".join(
            ACTIVITY_ACTIONS
        )
    types = config.get("resource_types", [])
    if not isinstance(types, list) or not all(
        isinstance(t, str) and len(t) <= MAX_NAME_LENGTH for t in types
    ):
        errors["config.resource_types"] = (
            f"must be a list of resource type names of at most {MAX_NAME_LENGTH} characters"
        )
    elif len(types) > MAX_RESOURCE_TYPES:
        errors["config.resource_types"] = (
            f"must hold at most {MAX_RESOURCE_TYPES} resource types, got {len(types)}"
        )


# --- the trigger kinds: one declaration each ------------------------------------------


@dataclass(frozen=True)
class FormField:
    """One config key as the trigger form asks for it. ``integer`` and ``number`` are
    number inputs; ``choice`` a menu of ``options`` (value, label), shown at ``default``
    for a config without the key; ``resource`` a menu of the team's rows of the
    ``workspace`` model ``resource`` (its key holds the row's id, and the API refuses an id
    of another team)."""

    key: str
    label: str
    type: str = "integer"
    options: tuple[tuple[str, str], ...] = ()
    default: str = ""
    resource: str = ""
    placeholder: str = ""
    min: str = ""
    max: str = ""

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(value for value, _ in self.options)

    @property
    def html_id(self) -> str:
        return "f-" + self.key.removesuffix("_id").replace("_", "-")


@dataclass(frozen=True)
class FormSection:
    """A fieldset of the trigger form, shown for the kinds that list it. A section without
    fields is one the page draws itself (``event``: the event name and its filters;
    ``activity``: the actions and resource types)."""

    name: str
    legend: str
    fields: tuple[FormField, ...] = ()


CHECK_TITLE = "{summary}"
"""What a check event is called after its trigger's name, whatever the trigger: the check's
summary of its news."""


@dataclass(frozen=True)
class KindSpec:
    """Everything a trigger kind is, in one place; the API, the admin, the form, the
    checks and planning read it.

    ``validate`` adds ``{"config.<key>": reason}`` for each bad key of a config (an object);
    a scheduled kind's ``interval_minutes`` is checked for it. ``describe`` says a config
    as one sentence and tolerates configs that predate today's rules. ``title`` is what a
    match is called after the trigger's name (``str.format`` with ``event``, ``count``,
    ``window_minutes``, ``summary``); None: it reads as activity on a resource.
    ``evaluator`` (scheduled kinds only) is the dotted path of the function
    ``(config, trigger, previous check) -> checks.Outcome`` that checks it."""

    kind: str
    label: str
    validate: Callable[[dict[str, Any], dict[str, str]], None]
    describe: Callable[[Mapping[str, Any]], str]
    stream: bool = False
    evaluator: str = ""
    title: str | None = CHECK_TITLE
    form: tuple[FormSection, ...] = ()
    filters: bool = False
    """Takes property ``filters`` (and ``validate`` checks them)."""
    lists_properties: bool = False
    """A match's message lists the event's properties."""


def _filters_text(config: Mapping[str, Any]) -> str:
    filters = [f for f in config.get("filters") or () if isinstance(f, Mapping)]
    return f" where {' and '.join(_filter_text(f) for f in filters)}" if filters else ""


def _filter_text(item: Mapping[str, Any]) -> str:
    prop, op, value = item.get("property", "?"), item.get("operator", "exact"), item.get("value")
    said = OPERATOR_LABELS[op][1] if op in OPERATOR_LABELS else op
    if op in (Operator.IS_SET, Operator.IS_NOT_SET):
        return f"{prop} {said}"
    if op == Operator.IN and isinstance(value, list):
        shown = ", ".join(json.dumps(v) for v in value)
        return f"{prop} {said} {shown}"
    return f"{prop} {said} {json.dumps(value)}"


def _require_choice(config: dict[str, Any], field: FormField, errors: dict[str, str]) -> None:
    if config.get(field.key, field.default) not in field.values:
        errors[f"config.{field.key}"] = "must be " + " or ".join(field.values)


def _validate_event(config: dict[str, Any], errors: dict[str, str]) -> None:
    _require_event(config, errors)
    _validate_filters(config.get("filters"), errors)


def _validate_event_count(config: dict[str, Any], errors: dict[str, str]) -> None:
    _validate_event(config, errors)
    _require_whole_number(config, "count", errors)
    _require_whole_number(config, "window_minutes", errors)


def _describe_event(config: Mapping[str, Any]) -> str:
    return f"When “{config.get('event', '')}” is seen{_filters_text(config)}"


def _describe_event_count(config: Mapping[str, Any]) -> str:
    return (
        f"When “{config.get('event', '')}” is seen {config.get('count', '?')} times within "
        f"{config.get('window_minutes', '?')} minutes{_filters_text(config)}"
    )


def _describe_activity(config: Mapping[str, Any]) -> str:
    actions = config.get("actions") or ACTIVITY_ACTIONS
    types = config.get("resource_types") or []
    what = " or ".join(str(t).replace("_", " ") for t in types) if types else "a resource"
    return f"When someone else {', '.join(map(str, actions))} {what} you own or follow"


_CHANGE = FormField(
    "change",
    "Compare",
    "choice",
    options=(
        ("absolute", "the value itself"),
        ("relative", "the change since the last check, as a fraction (0.2 = +20 %)"),
    ),
    default="absolute",
)


def _validate_insight_threshold(config: dict[str, Any], errors: dict[str, str]) -> None:
    _require_whole_number(config, "insight_id", errors)
    upper, lower = config.get("upper"), config.get("lower")
    if upper is None and lower is None:
        errors["config.upper"] = "set upper, lower or both"
    for key, value in (("upper", upper), ("lower", lower)):
        if value is not None and (reason := _number_error(value)):
            errors[f"config.{key}"] = reason
    _require_choice(config, _CHANGE, errors)


def _describe_insight_threshold(config: Mapping[str, Any]) -> str:
    bounds = []
    if config.get("upper") is not None:
        bounds.append(f"goes above {config['upper']}")
    if config.get("lower") is not None:
        bounds.append(f"goes below {config['lower']}")
    relative = " (relative change)" if config.get("change") == "relative" else ""
    return f"When insight #{config.get('insight_id', '?')} {' or '.join(bounds)}{relative}"


def _validate_experiment_significance(config: dict[str, Any], errors: dict[str, str]) -> None:
    _require_whole_number(config, "experiment_id", errors)
    p_value = config.get("p_value", 0.05)
    if not _is_number(p_value) or not 0 < p_value < 1:
        errors["config.p_value"] = f"must be a number between 0 and 1, got {_shown(p_value)}"


def _describe_experiment_significance(config: Mapping[str, Any]) -> str:
    return (
        f"When experiment #{config.get('experiment_id', '?')} reaches significance "
        f"(p < {config.get('p_value', 0.05)})"
    )


_DIRECTION = FormField(
    "direction",
    "When someone",
    "choice",
    options=(("entry", "enters the cohort"), ("exit", "leaves the cohort")),
    default="entry",
)


def _validate_cohort_membership(config: dict[str, Any], errors: dict[str, str]) -> None:
    _require_whole_number(config, "cohort_id", errors)
    _require_choice(config, _DIRECTION, errors)


def _describe_cohort_membership(config: Mapping[str, Any]) -> str:
    verb = "leaves" if config.get("direction") == "exit" else "enters"
    return f"When someone {verb} cohort #{config.get('cohort_id', '?')}"


EVENT_SECTION = FormSection("event", "Event")

KINDS: Mapping[str, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec(
            Kind.EVENT,
            "Event seen",
            _validate_event,
            _describe_event,
            stream=True,
            title="{event}",
            form=(EVENT_SECTION,),
            filters=True,
            lists_properties=True,
        ),
        KindSpec(
            Kind.EVENT_COUNT,
            "Event seen N times within M minutes",
            _validate_event_count,
            _describe_event_count,
            stream=True,
            title="{event} seen {count} times within {window_minutes} minutes",
            form=(
                EVENT_SECTION,
                FormSection(
                    "how_often",
                    "How often",
                    (
                        FormField("count", "At least this many events"),
                        FormField("window_minutes", "Within (minutes)"),
                    ),
                ),
            ),
            filters=True,
        ),
        KindSpec(
            Kind.ACTIVITY,
            "Activity on a resource",
            _validate_activity,
            _describe_activity,
            stream=True,
            title=None,
            form=(FormSection("activity", "Activity"),),
        ),
        KindSpec(
            Kind.INSIGHT_THRESHOLD,
            "Insight crosses a threshold",
            _validate_insight_threshold,
            _describe_insight_threshold,
            evaluator="notifications.checks.insight_threshold",
            form=(
                FormSection(
                    "insight_threshold",
                    "Insight threshold",
                    (
                        FormField(
                            "insight_id",
                            "Insight",
                            "resource",
                            resource="workspace.Insight",
                            placeholder="Choose an insight",
                        ),
                        FormField("upper", "Alert above", "number", placeholder="upper bound"),
                        FormField("lower", "Alert below", "number", placeholder="lower bound"),
                        _CHANGE,
                    ),
                ),
            ),
        ),
        KindSpec(
            Kind.EXPERIMENT_SIGNIFICANCE,
            "Experiment reaches significance",
            _validate_experiment_significance,
            _describe_experiment_significance,
            evaluator="notifications.checks.experiment_significance",
            form=(
                FormSection(
                    "experiment_significance",
                    "Experiment",
                    (
                        FormField(
                            "experiment_id",
                            "Experiment",
                            "resource",
                            resource="workspace.Experiment",
                            placeholder="Choose an experiment",
                        ),
                        FormField(
                            "p_value",
                            "Significant at p below",
                            "number",
                            placeholder="0.05",
                            min="0",
                            max="1",
                        ),
                    ),
                ),
            ),
        ),
        KindSpec(
            Kind.COHORT_MEMBERSHIP,
            "Someone enters or leaves a cohort",
            _validate_cohort_membership,
            _describe_cohort_membership,
            evaluator="notifications.checks.cohort_membership",
            form=(
                FormSection(
                    "cohort_membership",
                    "Cohort",
                    (
                        FormField(
                            "cohort_id",
                            "Cohort",
                            "resource",
                            resource="workspace.Cohort",
                            placeholder="Choose a cohort",
                        ),
                        _DIRECTION,
                    ),
                ),
            ),
        ),
    )
}
"""Every trigger kind, in the order the form and the admin offer them."""


def is_stream(kind: str) -> bool:
    """Whether the consumer evaluates ``kind`` on events (False: checked on a schedule, or
    not a kind)."""
    spec = KINDS.get(kind)
    return spec is not None and spec.stream


def scheduled_kinds() -> tuple[str, ...]:
    """The kinds :mod:`notifications.checks` checks on a schedule."""
    return tuple(spec.kind for spec in KINDS.values() if not spec.stream)


def kind_choices() -> list[tuple[str, str]]:
    """``(kind, label)`` for each kind: ``Trigger.kind``'s choices, read when asked (so a
    new kind needs no migration)."""
    return [(str(spec.kind), spec.label) for spec in KINDS.values()]


def form_sections() -> list[tuple[FormSection, tuple[str, ...]]]:
    """The trigger form's kind-specific sections in order, each with the kinds it shows for
    (the schedule section, shown for :func:`scheduled_kinds`, is the page's own)."""
    kinds: dict[str, list[str]] = {}
    sections: dict[str, FormSection] = {}
    for spec in KINDS.values():
        for section in spec.form:
            sections.setdefault(section.name, section)
            kinds.setdefault(section.name, []).append(spec.kind)
    return [(section, tuple(kinds[name])) for name, section in sections.items()]


def describe_trigger(kind: str, config: Mapping[str, Any]) -> str:
    """A trigger's condition as one sentence ("When “checkout_error” is seen where
    amount > 100"). Tolerates configs that predate today's validation."""
    spec = KINDS.get(kind)
    return spec.describe(config) if spec else f"A {kind} trigger"


def validate_config(kind: Any, config: Any) -> dict[str, Any]:
    """Return ``config`` if it is valid for ``kind``; raise :class:`InvalidTrigger` naming
    each bad field (a path such as ``config.filters[0].value``) and the bound it breaks (a
    NUL character anywhere, which PostgreSQL cannot store, is one)."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidTrigger(
            {"kind": f"unknown kind {_shown(kind)}; use one of " + ", ".join(KINDS)}
        )
    spec = KINDS[kind]
    if not isinstance(config, dict):
        raise InvalidTrigger({"config": "must be an object"})
    errors: dict[str, str] = {}
    spec.validate(config, errors)
    if not spec.stream and "interval_minutes" in config:
        _require_whole_number(config, "interval_minutes", errors)
    if where := nul_path(config, "config"):  # PostgreSQL's jsonb refuses it: a 500, not a 400
        key_of = where.startswith("a key of ")
        errors[where.removeprefix("a key of ")] = f"has a key that {NUL}" if key_of else NUL
    if errors:
        raise InvalidTrigger(errors)
    return config


def usable_config(
    kind: Any, config: Any, *, trigger_id: int | None = None
) -> tuple[dict[str, Any] | None, str]:
    """A stored config as today's rules let it run, and what was done to it ("" if
    nothing). Valid: itself. A count, window or interval beyond its bound (saved before
    the bound existed): a copy holding the bound. Anything else the rules refuse: None,
    and the trigger must match nothing. Never raises. Given ``trigger_id``, a repair or a
    refusal is logged as a warning naming the trigger, once per process."""
    usable, repaired = _usable(kind, config)
    if repaired and trigger_id is not None:
        _log_repair(trigger_id, repaired)
    return usable, repaired


@functools.lru_cache(maxsize=4096)
def _log_repair(trigger_id: int, what: str) -> None:
    """Once per process per trigger and reason: the consumer recompiles every trigger at
    each trigger change, and one old trigger must not fill the log."""
    log.warning("trigger %s: its stored config is %s", trigger_id, what)


def _usable(kind: Any, config: Any) -> tuple[dict[str, Any] | None, str]:
    try:
        return validate_config(kind, config), ""
    except InvalidTrigger as exc:
        refused = exc
    if isinstance(config, dict) and any(
        _is_whole(config.get(key)) and _whole_number_error(config[key], *WHOLE_NUMBERS[key])
        for key in CLAMPED
    ):
        clamped = {
            **config,
            **{
                key: _clamp(config[key], *WHOLE_NUMBERS[key])
                for key in CLAMPED
                if _is_whole(config.get(key))
            },
        }
        try:
            return validate_config(kind, clamped), f"read at its bounds ({refused})"
        except InvalidTrigger as exc:
            refused = exc
    return None, f"refused, so it matches nothing ({refused})"


_OPERATORS = frozenset(o.value for o in Operator)


# --- evaluation -----------------------------------------------------------------------

Predicate = Callable[[Mapping[str, Any]], bool]


def _as_number(value: Any) -> float | None:
    if _is_number(value):
        return value  # an int stays exact: float() rounds past 2**53 and overflows past 1e308
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _text(value: Any) -> str:
    """A property as written in the event's JSON: booleans are ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _same(a: Any, b: Any) -> bool:
    # A boolean equals true/false in any case (the trigger form sends text), never 1/0.
    a, b = (_text(x) if isinstance(x, bool) else x for x in (a, b))
    na, nb = _as_number(a), _as_number(b)
    if na is not None and nb is not None:
        return na == nb
    return str(a).lower() == str(b).lower() if isinstance(a, str) and isinstance(b, str) else a == b


def _compare(op: Operator, bound: float) -> Callable[[float], bool]:
    # Plain comparisons, not a dict of four closures: the consumer compiles every trigger.
    if op == Operator.GT:
        return lambda v: v > bound
    if op == Operator.GTE:
        return lambda v: v >= bound
    if op == Operator.LT:
        return lambda v: v < bound
    return lambda v: v <= bound


def compile_filter(prop: str, op: Operator | str, value: Any) -> Predicate:
    """One property filter as a predicate over an event's properties; ``value`` is one
    :func:`validate_config` accepts for ``op``. The predicate is total over any JSON object
    of properties (text is taken as written in JSON, see :func:`_text`)."""
    op = Operator(op)
    missing = object()
    if op == Operator.IS_SET:
        return lambda p: p.get(prop) is not None
    if op == Operator.IS_NOT_SET:
        return lambda p: p.get(prop) is None
    if op == Operator.EXACT:
        return lambda p: (v := p.get(prop, missing)) is not missing and _same(v, value)
    if op == Operator.IS_NOT:
        return lambda p: (v := p.get(prop, missing)) is missing or not _same(v, value)
    if op == Operator.IN:
        options = list(value)
        return lambda p: (
            (v := p.get(prop, missing)) is not missing and any(_same(v, o) for o in options)
        )
    if op == Operator.ICONTAINS:
        needle = str(value).lower()
        return lambda p: (v := p.get(prop)) is not None and needle in _text(v).lower()
    if op == Operator.REGEX:
        pattern = compile_regex(value)
        # UTF-8 bytes are what RE2 matches (a str would be encoded on every call); a lone
        # surrogate, which the decoder refuses anyway, must not raise here.
        return lambda p: (
            (v := p.get(prop)) is not None
            and pattern.search(_text(v)[:MAX_MATCHED_TEXT].encode("utf-8", "surrogatepass"))
            is not None
        )
    test = _compare(op, value)
    return lambda p: (n := _as_number(p.get(prop))) is not None and test(n)


@dataclass(frozen=True, eq=False)
class CompiledTrigger:
    """What the consumer needs of a trigger, with its filters compiled once."""

    id: int
    team_id: int
    kind: str
    event_name: str
    name: str
    predicates: tuple[Predicate, ...] = ()
    count: int = 1
    window_minutes: int = 0
    actions: frozenset[str] = frozenset(ACTIVITY_ACTIONS)
    resource_types: frozenset[str] = frozenset()
    snoozed_until: datetime | None = None
    channels: tuple[ChannelSpec, ...] = IN_APP_ONLY
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    refused: str = ""
    """Why the stored config cannot run ("" when it can): such a trigger matches nothing."""

    def matches_properties(self, properties: Mapping[str, Any]) -> bool:
        return all(predicate(properties) for predicate in self.predicates)

    def is_snoozed(self, now: datetime) -> bool:
        return self.snoozed_until is not None and now < self.snoozed_until


def compile_trigger(
    *,
    id: int,
    team_id: int,
    kind: str,
    name: str,
    config: Any,
    snoozed_until: datetime | None = None,
    channels: Any = None,
    delivery: Any = None,
) -> CompiledTrigger:
    """One stored trigger, compiled. Never raises, whatever was stored: the consumer
    compiles every team's triggers together, so one bad row must not stop the rest. The
    config goes through :func:`usable_config` (logged when it had to be clamped or
    refused); channels and delivery are read by their total readers."""
    usable, repaired = usable_config(kind, config, trigger_id=id)
    if usable is None:
        known = KINDS[kind].kind if isinstance(kind, str) and kind in KINDS else Kind.EVENT
        return CompiledTrigger(
            id=id, team_id=team_id, kind=known, event_name="", name=name, refused=repaired
        )
    spec = KINDS[kind]
    kind = spec.kind
    filters = (usable.get("filters") or ()) if spec.filters else ()
    # Only the keys validate_config checks for this kind: an unchecked "count" on an
    # event trigger means nothing.
    counting = kind == Kind.EVENT_COUNT
    activity = kind == Kind.ACTIVITY
    return CompiledTrigger(
        id=id,
        team_id=team_id,
        kind=kind,
        name=name,
        event_name=str(usable.get("event", "")),
        predicates=tuple(
            compile_filter(f["property"], f["operator"], f.get("value")) for f in filters
        ),
        count=usable["count"] if counting else 1,
        window_minutes=usable["window_minutes"] if counting else 0,
        actions=frozenset(usable.get("actions", ACTIVITY_ACTIONS))
        if activity
        else frozenset(ACTIVITY_ACTIONS),
        resource_types=frozenset(usable.get("resource_types", ())) if activity else frozenset(),
        snoozed_until=snoozed_until,
        channels=channel_specs(channels),
        delivery=DeliverySpec.from_config(delivery),
    )


class TriggerIndex:
    """Stream triggers grouped by ``(team_id, event_name)``, activity triggers by team, and
    every trigger by id (for events a scheduled check published). A refused trigger is
    in none of them."""

    def __init__(self, triggers: Iterable[CompiledTrigger]) -> None:
        self._by_event: dict[tuple[int, str], list[CompiledTrigger]] = defaultdict(list)
        self._activity: dict[int, list[CompiledTrigger]] = defaultdict(list)
        self.by_id: dict[int, CompiledTrigger] = {}
        for trigger in triggers:
            if trigger.refused:
                continue
            self.by_id[trigger.id] = trigger
            if trigger.kind == Kind.ACTIVITY:
                self._activity[trigger.team_id].append(trigger)
            elif is_stream(trigger.kind):
                self._by_event[(trigger.team_id, trigger.event_name)].append(trigger)

    def candidates(self, team_id: int, event_name: str) -> list[CompiledTrigger]:
        if event_name.startswith(ACTIVITY_PREFIX):
            return self._activity.get(team_id, [])
        return self._by_event.get((team_id, event_name), [])

    def match(
        self,
        *,
        team_id: int,
        event_name: str,
        properties: Mapping[str, Any],
        now: datetime,
    ) -> list[CompiledTrigger]:
        """Triggers whose condition this one event satisfies (event_count still needs N).
        Total over any JSON object of ``properties``: a value of a type a condition does
        not expect does not match it."""
        matched = []
        for trigger in self.candidates(team_id, event_name):
            if trigger.is_snoozed(now):
                continue
            if trigger.kind == Kind.ACTIVITY:
                if not activity_matches(trigger, properties):
                    continue
            elif not trigger.matches_properties(properties):
                continue
            matched.append(trigger)
        return matched


def activity_matches(trigger: CompiledTrigger, properties: Mapping[str, Any]) -> bool:
    """Activity events are the system's, but their properties come from stored rows: an
    ``action`` or ``resource_type`` that is not text matches nothing."""
    action, resource_type = properties.get("action"), properties.get("resource_type")
    if not isinstance(action, str) or action not in trigger.actions:
        return False
    return not trigger.resource_types or (
        isinstance(resource_type, str) and resource_type in trigger.resource_types
    )


class ThresholdState(TextChoices):
    """The one list of check states (``TriggerCheck.State`` is this class)."""

    NOT_FIRING = "not_firing"
    FIRING = "firing"
    ERRORED = "errored"
    SNOOZED = "snoozed"


def threshold_measure(
    *, value: float, previous: float | None, change: str = "absolute"
) -> float | None:
    """What an insight's bounds are compared with: the value itself, or (``relative``) its
    change since the previous check as a fraction of it (0.2 is +20 %); None when there is
    no previous value to compare with."""
    if change != "relative":
        return value
    if previous in (None, 0):
        return None
    return (value - previous) / abs(previous)


def threshold_state(
    *,
    value: float,
    previous: float | None,
    upper: float | None,
    lower: float | None,
    change: str = "absolute",
) -> ThresholdState:
    """Whether an insight value is outside its bounds (relative: change vs ``previous``)."""
    measured = threshold_measure(value=value, previous=previous, change=change)
    if measured is None:
        return ThresholdState.NOT_FIRING
    if upper is not None and measured > upper:
        return ThresholdState.FIRING
    if lower is not None and measured < lower:
        return ThresholdState.FIRING
    return ThresholdState.NOT_FIRING
