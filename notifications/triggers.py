"""Trigger conditions: validation of stored configs and their evaluation. Pure functions.

A stored trigger is compiled once into a :class:`CompiledTrigger`; a :class:`TriggerIndex`
groups compiled triggers by ``(team_id, event_name)`` so evaluating an event only looks at
triggers that could match it — adding triggers for other teams or events costs nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import re2
from django.db.models.enums import TextChoices  # plain enums: no settings, no database


class Kind(TextChoices):
    """The one list of trigger kinds, with the labels the admin and the API schema show
    (``notifications.models.TriggerKind`` is this class)."""

    EVENT = "event", "Event seen"
    EVENT_COUNT = "event_count", "Event seen N times within M minutes"
    ACTIVITY = "activity", "Activity on a resource"
    INSIGHT_THRESHOLD = "insight_threshold", "Insight crosses a threshold"
    EXPERIMENT_SIGNIFICANCE = "experiment_significance", "Experiment reaches significance"
    COHORT_MEMBERSHIP = "cohort_membership", "Someone enters or leaves a cohort"


STREAM_KINDS = frozenset({Kind.EVENT, Kind.EVENT_COUNT, Kind.ACTIVITY})
"""Kinds evaluated by the consumer; the others are checked on a schedule."""


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
    def from_config(cls, data: Mapping[str, Any] | None) -> DeliverySpec:
        data = data or {}
        return cls(
            mode=Mode(data.get("mode", Mode.INSTANT)),
            window_seconds=int(data.get("window_seconds", 60)),
            max_window_seconds=data.get("max_window_seconds"),
            max_items=data.get("max_items"),
        )


@dataclass(frozen=True)
class ChannelSpec:
    """One channel of a trigger: ``in_app``, and ``email`` without a target, go to each
    recipient; ``slack``, ``webhook``, ``telegram`` and an email with a target go to
    ``target`` (a #channel, a URL, a chat id, an address)."""

    type: str
    target: str = ""

    @property
    def per_recipient(self) -> bool:
        return self.type == "in_app" or (self.type == "email" and not self.target)


IN_APP_ONLY = (ChannelSpec("in_app"),)


def channel_specs(data: Iterable[Mapping[str, Any]] | None) -> tuple[ChannelSpec, ...]:
    specs = tuple(ChannelSpec(str(c["type"]), str(c.get("target") or "")) for c in data or ())
    return specs or IN_APP_ONLY


ACTIVITY_ACTIONS = ("created", "updated", "deleted", "sent", "failed")
MAX_REGEX_LENGTH = 300
MAX_REGEX_PROGRAM = 1_000
"""RE2 instructions a pattern may compile to: matching costs at most (text length) x (program
size) steps, so this and MAX_MATCHED_TEXT bound each regex filter's time per event."""
MAX_MATCHED_TEXT = 2_000
MAX_FILTERS = 20


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


def _validate_filters(filters: Any, errors: dict[str, str]) -> None:
    if filters is None:
        return
    if not isinstance(filters, list):
        errors["config.filters"] = "must be a list"
        return
    if len(filters) > MAX_FILTERS:
        errors["config.filters"] = f"at most {MAX_FILTERS} filters"
        return
    for i, item in enumerate(filters):
        path = f"config.filters[{i}]"
        if not isinstance(item, dict):
            errors[path] = "must be an object with property, operator, value"
            continue
        prop = item.get("property")
        if not isinstance(prop, str) or not prop:
            errors[f"{path}.property"] = "must be a non-empty string"
        try:
            op = Operator(str(item.get("operator")))
        except ValueError:
            errors[f"{path}.operator"] = (
                f"unknown operator {item.get('operator')!r}; use one of "
                + ", ".join(o.value for o in Operator)
            )
            continue
        value = item.get("value")
        if op in (Operator.GT, Operator.GTE, Operator.LT, Operator.LTE) and not _is_number(value):
            errors[f"{path}.value"] = f"must be a number for {op}, got {value!r}"
        elif op == Operator.REGEX and (reason := check_regex(value)):
            errors[f"{path}.value"] = reason
        elif op == Operator.IN and not (isinstance(value, list) and value):
            errors[f"{path}.value"] = "must be a non-empty list for in"
        elif op in (Operator.EXACT, Operator.IS_NOT) and value is None:
            errors[f"{path}.value"] = f"is required for {op}"
        elif op == Operator.ICONTAINS and not isinstance(value, str):
            errors[f"{path}.value"] = "must be a string for icontains"


def _require_event(config: dict[str, Any], errors: dict[str, str]) -> None:
    event = config.get("event")
    if not isinstance(event, str) or not event.strip():
        errors["config.event"] = "must be the name of an event"
    elif len(event) > 200:
        errors["config.event"] = "is longer than 200 characters"


def _require_positive_int(config: dict[str, Any], key: str, errors: dict[str, str]) -> None:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        errors[f"config.{key}"] = f"must be a whole number of at least 1, got {value!r}"


def validate_config(kind: str, config: Any) -> dict[str, Any]:
    """Return ``config`` if it is valid for ``kind``; raise :class:`InvalidTrigger` if not."""
    try:
        kind = Kind(kind)
    except ValueError:
        raise InvalidTrigger(
            {"kind": f"unknown kind {kind!r}; use one of " + ", ".join(k.value for k in Kind)}
        ) from None
    if not isinstance(config, dict):
        raise InvalidTrigger({"config": "must be an object"})
    errors: dict[str, str] = {}
    if kind in (Kind.EVENT, Kind.EVENT_COUNT):
        _require_event(config, errors)
        _validate_filters(config.get("filters"), errors)
    if kind == Kind.EVENT_COUNT:
        _require_positive_int(config, "count", errors)
        _require_positive_int(config, "window_minutes", errors)
    if kind == Kind.ACTIVITY:
        actions = config.get("actions", list(ACTIVITY_ACTIONS))
        if not isinstance(actions, list) or not all(a in ACTIVITY_ACTIONS for a in actions):
            errors["config.actions"] = "must be a list of " + ", ".join(ACTIVITY_ACTIONS)
        types = config.get("resource_types", [])
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            errors["config.resource_types"] = "must be a list of resource type names"
    if kind == Kind.INSIGHT_THRESHOLD:
        _require_positive_int(config, "insight_id", errors)
        upper, lower = config.get("upper"), config.get("lower")
        if upper is None and lower is None:
            errors["config.upper"] = "set upper, lower or both"
        for key, value in (("upper", upper), ("lower", lower)):
            if value is not None and not _is_number(value):
                errors[f"config.{key}"] = f"must be a number, got {value!r}"
        if config.get("change", "absolute") not in ("absolute", "relative"):
            errors["config.change"] = "must be absolute or relative"
    if kind == Kind.EXPERIMENT_SIGNIFICANCE:
        _require_positive_int(config, "experiment_id", errors)
        p_value = config.get("p_value", 0.05)
        if not _is_number(p_value) or not 0 < p_value < 1:
            errors["config.p_value"] = f"must be a number between 0 and 1, got {p_value!r}"
    if kind == Kind.COHORT_MEMBERSHIP:
        _require_positive_int(config, "cohort_id", errors)
        if config.get("direction", "entry") not in ("entry", "exit"):
            errors["config.direction"] = "must be entry or exit"
    if kind not in STREAM_KINDS and "interval_minutes" in config:
        _require_positive_int(config, "interval_minutes", errors)
    if errors:
        raise InvalidTrigger(errors)
    return config


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
    """One property filter as a predicate over an event's properties."""
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
        try:
            pattern = compile_regex(value)
        except (re2.error, UnicodeEncodeError):
            # Saved before trigger regexes ran on RE2 (a lookaround, a backreference): it
            # matches nothing until edited, rather than stop the trigger reload of every team.
            return lambda p: False
        # UTF-8 bytes are what RE2 matches (a str would be encoded on every call); a lone
        # surrogate, which the decoder refuses anyway, must not raise here.
        return lambda p: (
            (v := p.get(prop)) is not None
            and pattern.search(_text(v)[:MAX_MATCHED_TEXT].encode("utf-8", "surrogatepass"))
            is not None
        )
    test = _compare(op, value if _is_number(value) else float(value))
    return lambda p: (n := _as_number(p.get(prop))) is not None and test(n)


@dataclass(frozen=True, eq=False)
class CompiledTrigger:
    """What the consumer needs of a trigger, with its filters compiled once."""

    id: int
    team_id: int
    kind: Kind
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
    config: Mapping[str, Any],
    snoozed_until: datetime | None = None,
    channels: Iterable[Mapping[str, Any]] | None = None,
    delivery: Mapping[str, Any] | None = None,
) -> CompiledTrigger:
    kind = Kind(kind)
    filters = (config.get("filters") or ()) if kind in (Kind.EVENT, Kind.EVENT_COUNT) else ()
    predicates = tuple(
        compile_filter(f["property"], f["operator"], f.get("value")) for f in filters
    )
    return CompiledTrigger(
        id=id,
        team_id=team_id,
        kind=kind,
        name=name,
        event_name=str(config.get("event", "")),
        predicates=predicates,
        # Only the keys validate_config checks for this kind: an unchecked "count" on an
        # event trigger must not stop the consumer's trigger reload.
        count=int(config.get("count", 1)) if kind == Kind.EVENT_COUNT else 1,
        window_minutes=int(config.get("window_minutes", 0)) if kind == Kind.EVENT_COUNT else 0,
        actions=frozenset(config.get("actions", ACTIVITY_ACTIONS))
        if kind == Kind.ACTIVITY
        else frozenset(ACTIVITY_ACTIONS),
        resource_types=frozenset(config.get("resource_types", ()))
        if kind == Kind.ACTIVITY
        else frozenset(),
        snoozed_until=snoozed_until,
        channels=channel_specs(channels),
        delivery=DeliverySpec.from_config(delivery),
    )


ACTIVITY_EVENT_PREFIX = "activity."


class TriggerIndex:
    """Stream triggers grouped by ``(team_id, event_name)``, activity triggers by team, and
    every trigger by id (for events a scheduled check published)."""

    def __init__(self, triggers: Iterable[CompiledTrigger]) -> None:
        self._by_event: dict[tuple[int, str], list[CompiledTrigger]] = defaultdict(list)
        self._activity: dict[int, list[CompiledTrigger]] = defaultdict(list)
        self.by_id: dict[int, CompiledTrigger] = {}
        for trigger in triggers:
            self.by_id[trigger.id] = trigger
            if trigger.kind == Kind.ACTIVITY:
                self._activity[trigger.team_id].append(trigger)
            elif trigger.kind in STREAM_KINDS:
                self._by_event[(trigger.team_id, trigger.event_name)].append(trigger)

    def candidates(self, team_id: int, event_name: str) -> list[CompiledTrigger]:
        if event_name.startswith(ACTIVITY_EVENT_PREFIX):
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
        """Triggers whose condition this one event satisfies (event_count still needs N)."""
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
    if properties.get("action") not in trigger.actions:
        return False
    return not trigger.resource_types or properties.get("resource_type") in trigger.resource_types


class ThresholdState(TextChoices):
    """The one list of check states (``TriggerCheck.State`` is this class)."""

    NOT_FIRING = "not_firing"
    FIRING = "firing"
    ERRORED = "errored"
    SNOOZED = "snoozed"


def threshold_state(
    *,
    value: float,
    previous: float | None,
    upper: float | None,
    lower: float | None,
    change: str = "absolute",
) -> ThresholdState:
    """Whether an insight value is outside its bounds (relative: change vs ``previous``)."""
    measured = value
    if change == "relative":
        if previous in (None, 0):
            return ThresholdState.NOT_FIRING
        measured = (value - previous) / abs(previous)
    if upper is not None and measured > upper:
        return ThresholdState.FIRING
    if lower is not None and measured < lower:
        return ThresholdState.FIRING
    return ThresholdState.NOT_FIRING
