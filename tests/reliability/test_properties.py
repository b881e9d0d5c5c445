"""Property-based tests (hypothesis) for the pure core the consumer runs on every event.

- ``events.decode`` turns any bytes into an :class:`Event` or an :class:`InvalidEvent`,
  never another exception (anything else would crash the consumer instead of going to the
  dead-letter topic), and a valid event survives ``encode`` → ``decode`` unchanged.
- ``triggers.validate_config`` answers any kind/config with the config or
  :class:`InvalidTrigger`; whatever it accepts compiles, and the compiled trigger evaluates
  any property dict without raising (one trigger that cannot compile stops the consumer's
  trigger reload for every team).
- Each filter operator agrees with :func:`reference`, a small table of what the operators
  mean, written here independently of ``notifications.triggers``.
- Trigger regexes run on RE2: the classic catastrophic patterns are accepted and answer
  fast, whatever ``check_regex`` accepts matches a 2,000-character adversarial value within
  a generous bound, and what RE2 lacks (lookarounds, backreferences…) is refused by name.

Pure: no database, no services. Example counts are bounded so the module runs in seconds.
"""

from __future__ import annotations

import json
import math
import signal
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import re2
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from notifications import events
from notifications.events import Actor, Event, InvalidEvent, Source, Subject, nul_path
from notifications.triggers import (
    MAX_ABS_NUMBER,
    MAX_MATCHED_TEXT,
    InvalidTrigger,
    Kind,
    Operator,
    TriggerIndex,
    check_regex,
    compile_filter,
    compile_trigger,
    validate_config,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- JSON values ----------------------------------------------------------------------

BIG_INTS = st.sampled_from([2**53 - 1, 2**53, 2**53 + 1, 10**30, 10**308, 10**400, -(10**400)])
NUMBERS = st.one_of(
    st.integers(),
    BIG_INTS,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, -1, 1.0, 0.5, 100, 99.5, 1e16]),
)
TRICKY_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "true",
        "TRUE",
        "false",
        "False",
        "null",
        "None",
        "1",
        "1.0",
        " 1 ",
        "01",
        "1e3",
        "-0",
        "100",
        "99.5",
        "nan",
        "inf",
        "-Infinity",
        "1e400",
        "1_000",
        "١٢",
        "EUR",
        "eur",
        "Straße",
        "İ",
        "<script>",
        "*bold*",
        "\u202egnp.exe",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    st.floats(),  # NaN and infinities too: json.loads accepts them, so events can carry them
    st.text(max_size=12),
    TRICKY_STRINGS,
    NUMBERS.map(str),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
OBJECTS = st.dictionaries(st.text(max_size=8), JSON, max_size=5)


# --- the envelope decoder -------------------------------------------------------------


def decodes_or_refuses(raw: bytes) -> Event | None:
    """The decoder's whole contract: an Event, or InvalidEvent (anything else fails)."""
    try:
        event = events.decode(raw)
    except InvalidEvent as exc:
        assert exc.field and exc.reason
        return None
    assert isinstance(event, Event)
    return event


def valid_envelope() -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=7)),
        "schema": 1,
        "source": "ingest",
        "name": "checkout_error",
        "team_id": 3,
        "org_id": 1,
        "actor": {"id": 7, "name": "Alice"},
        "subject": {"type": "insight", "id": "9", "name": "Revenue", "url": "/insights/9"},
        "properties": {"amount": 120},
        "occurred_at": "2026-11-23T14:02:00Z",
    }


FIELDS = sorted(valid_envelope())
NESTED = {"actor": ("id", "name"), "subject": ("type", "id", "name", "url")}
EDGE_TIMESTAMPS = st.sampled_from(
    [
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59.999999Z",
        "2026-02-30T00:00:00Z",
        "2026-11-23T14:02:00+24:00",
        "2026-11-23",
        "2026-11-23T14:02:00",
        "2026-11-23T14:02:00ZZ",
        "",
    ]
)


@st.composite
def mutated_envelopes(draw) -> dict[str, Any]:
    """A valid envelope with up to four fields deleted, replaced, nested or added."""
    data = valid_envelope()
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from([*FIELDS, "extra"]))
        action = draw(st.sampled_from(["delete", "replace", "nested", "timestamp"]))
        if action == "delete":
            data.pop(key, None)
        elif action == "replace":
            data[key] = draw(JSON)
        elif action == "timestamp":
            data["occurred_at"] = draw(st.one_of(EDGE_TIMESTAMPS, st.text(max_size=30)))
        elif key in NESTED and isinstance(data.get(key), dict):
            inner = draw(st.sampled_from([*NESTED[key], "extra"]))
            data[key] = {**data[key], inner: draw(JSON)}
    return data


@FAST
@given(st.binary(max_size=300))
@example(b"")
@example(b"\xff\xfe")
@example(b"[" * 10_000)
@example(b'{"a":' * 5_000)
@example(b"1" * 5_000)
@example(b"NaN")
@example(b'"\\ud800"')
def test_decode_of_arbitrary_bytes_never_raises_anything_but_invalid_event(raw):
    decodes_or_refuses(raw)


def test_decode_of_no_value_is_invalid():
    assert decodes_or_refuses(None) is None  # type: ignore[arg-type]


@FAST
@given(JSON)
def test_decode_of_arbitrary_json_values_never_raises_anything_but_invalid_event(value):
    decodes_or_refuses(json.dumps(value).encode())


@FAST
@given(mutated_envelopes())
@example({**valid_envelope(), "occurred_at": "0001-01-01T00:00:00+01:00"})
@example({**valid_envelope(), "occurred_at": "9999-12-31T23:59:59-01:00"})
@example({**valid_envelope(), "team_id": 10**400})
@example({**valid_envelope(), "schema": True})
@example({**valid_envelope(), "properties": {"n": 10**400, "deep": [[[[[[[[]]]]]]]]}})
def test_decode_of_mutated_envelopes_is_an_event_or_invalid_event(data):
    event = decodes_or_refuses(json.dumps(data).encode())
    if event is None:
        return
    # Whatever got through is a well-formed event, and stays the same through the stream.
    assert event.team_id > 0 and event.org_id > 0
    assert event.name.strip() and len(event.name) <= events.MAX_NAME_LENGTH
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert isinstance(event.properties, dict)
    assert events.decode(event.encode()) == event


STORABLE = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
"""Text an event can hold: PostgreSQL stores no NUL, and a lone surrogate is not text
(``decode`` refuses both: ``tests/reliability/test_bad_input.py``)."""
NAMES = st.text(STORABLE, min_size=1, max_size=events.MAX_NAME_LENGTH).filter(
    lambda s: s.strip() and not events.is_system_name(s)
)
SAFE_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),  # NaN != NaN, so it cannot compare equal after a trip
        st.text(STORABLE, max_size=12),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(STORABLE, max_size=6), inner, max_size=4),
    ),
    max_leaves=10,
)
EVENTS = st.builds(
    Event,
    name=NAMES,
    team_id=st.integers(1, 2**63),
    org_id=st.integers(1, 2**63),
    source=st.sampled_from(Source),
    # Fixed offsets: a zoneinfo time inside a DST fold never compares equal across zones.
    occurred_at=st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2200, 1, 1),
        timezones=st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m))),
    ),
    properties=st.dictionaries(st.text(STORABLE, max_size=8), SAFE_JSON, max_size=5),
    actor=st.one_of(st.none(), st.builds(Actor, id=st.none() | st.integers(), name=NAMES)),
    subject=st.one_of(
        st.none(),
        st.builds(Subject, type=NAMES, id=NAMES, name=NAMES, url=st.text(STORABLE, max_size=20)),
    ),
    id=st.uuids(),
)


@FAST
@given(EVENTS)
def test_a_valid_event_round_trips(event):
    assert events.decode(event.encode()) == event


# --- trigger configs -----------------------------------------------------------------

OPERATOR_NAMES = st.one_of(st.sampled_from([o.value for o in Operator]), st.text(max_size=8))
REGEXES = st.one_of(
    st.sampled_from(
        [
            r"^card_\d+$",
            r"(a+)+$",
            r"(a|a)*c",
            r"a{99999999999}",
            r"a{4294967295}",
            "(" * 120 + ")" * 120,
            r"[",
            r"(?<=a+)b",
            r"\N{bogus}",
            "x" * 301,
        ]
    ),
    st.text(alphabet="ab()[]{}|*+?.^$\\d0123456789,", max_size=20),
)
FILTER_VALUES = st.one_of(JSON, REGEXES, st.lists(JSON, max_size=3))
FILTERS = st.fixed_dictionaries(
    {"property": st.one_of(st.text(max_size=6), JSON), "operator": OPERATOR_NAMES},
    optional={"value": FILTER_VALUES},
)
CONFIG_VALUES = {
    "event": st.one_of(st.text(max_size=10), JSON),
    "filters": st.one_of(st.lists(st.one_of(FILTERS, JSON), max_size=4), JSON),
    "count": st.one_of(st.integers(-2, 5), JSON, BIG_INTS),
    "window_minutes": st.one_of(st.integers(-2, 5), JSON),
    "actions": st.one_of(
        st.lists(st.sampled_from(["created", "updated", "deleted", "sent", "failed"])),
        st.lists(JSON, max_size=3),
        JSON,
    ),
    "resource_types": st.one_of(st.lists(st.text(max_size=5), max_size=3), JSON),
    "insight_id": st.one_of(st.integers(-1, 5), JSON),
    "upper": st.one_of(NUMBERS, JSON),
    "lower": st.one_of(NUMBERS, JSON),
    "change": st.one_of(st.sampled_from(["absolute", "relative"]), JSON),
    "experiment_id": st.one_of(st.integers(-1, 5), JSON),
    "p_value": st.one_of(st.floats(0, 1), JSON),
    "cohort_id": st.one_of(st.integers(-1, 5), JSON),
    "direction": st.one_of(st.sampled_from(["entry", "exit"]), JSON),
    "interval_minutes": st.one_of(st.integers(-1, 90), JSON),
}


@st.composite
def configs(draw) -> Any:
    """Mostly dicts with the keys some kind reads (valid or not), sometimes any JSON."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON)
    keys = draw(st.lists(st.sampled_from(sorted(CONFIG_VALUES)), unique=True, max_size=6))
    config = {key: draw(CONFIG_VALUES[key]) for key in keys}
    if draw(st.booleans()):
        config["event"] = draw(st.text(min_size=1, max_size=10).filter(str.strip))
    return config


KINDS = st.one_of(st.sampled_from([k.value for k in Kind]), st.text(max_size=8), JSON)


@FAST
@given(KINDS, configs(), st.lists(OBJECTS, min_size=1, max_size=3))
@example(
    "event",
    {"event": "e", "filters": [{"property": "p", "operator": "gt", "value": 10**400}]},
    [{}],
)
@example("event", {"event": "e", "count": "lots"}, [{}])
@example("activity", {"actions": [{"a": 1}]}, [{}])
@example("activity", {"actions": ["created"], "window_minutes": None}, [{}])
@example(
    "event",
    {"event": "e", "filters": [{"property": "p", "operator": "regex", "value": "a{99999999999}"}]},
    [{}],
)
@example("insight_threshold", {"insight_id": 1, "upper": 10**400}, [{}])
def test_validate_config_raises_only_invalid_trigger_and_what_it_accepts_compiles(
    kind, config, samples
):
    try:
        accepted = validate_config(kind, config)
    except InvalidTrigger as exc:
        assert exc.errors and all(isinstance(k, str) for k in exc.errors)
        return
    trigger = compile_trigger(id=1, team_id=1, kind=kind, name="t", config=accepted)
    index = TriggerIndex([trigger])
    for properties in samples:
        trigger.matches_properties(properties)
        index.match(team_id=1, event_name=trigger.event_name, properties=properties, now=NOW)
        index.match(team_id=1, event_name="activity.x", properties=properties, now=NOW)


# --- evaluation against a reference ----------------------------------------------------

MISSING = object()


def ref_text(value: Any) -> str:
    """A property as the user wrote it in their event's JSON: booleans are true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ref_number(value: Any) -> int | float | None:
    """The number a value stands for: a JSON number (never a boolean; integers exactly,
    however large), or a string Python reads as a finite number; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def ref_equal(value: Any, target: Any) -> bool:
    """``exact``'s notion of equal: numbers by value (``"100"`` is 100), text without
    regard to case, booleans as the words true/false (never as 1/0), anything else by
    plain equality."""
    if isinstance(value, bool):
        value = ref_text(value)
    if isinstance(target, bool):
        target = ref_text(target)
    a, b = ref_number(value), ref_number(target)
    if a is not None and b is not None:
        return a == b
    if isinstance(value, str) and isinstance(target, str):
        return value.lower() == target.lower()
    return bool(value == target)


def reference(operator: str, target: Any, properties: Mapping[str, Any], prop: str) -> bool:
    value = properties.get(prop, MISSING)
    present = value is not MISSING
    is_set = present and value is not None
    if operator == "exact":
        return present and ref_equal(value, target)
    if operator == "is_not":
        return not (present and ref_equal(value, target))
    if operator == "in":
        return present and any(ref_equal(value, option) for option in target)
    if operator == "icontains":
        return is_set and target.lower() in ref_text(value).lower()
    if operator == "regex":  # RE2's semantics (ASCII \d, \w; $ only at the very end)
        return is_set and re2.search(target, ref_text(value)[:MAX_MATCHED_TEXT]) is not None
    if operator in ("gt", "gte", "lt", "lte"):
        number = ref_number(value) if is_set else None
        if number is None:
            return False
        return {
            "gt": number > target,
            "gte": number >= target,
            "lt": number < target,
            "lte": number <= target,
        }[operator]
    if operator == "is_set":
        return is_set
    if operator == "is_not_set":
        return not is_set
    raise AssertionError(f"no reference for {operator}")


PROPERTY_VALUES = st.one_of(
    SCALARS,
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
    st.lists(SCALARS, max_size=2),
)
SAFE_REGEXES = st.one_of(
    st.sampled_from(
        [r"^true$", r"^True$", r"^1$", r"(?i)^eur$", r"\d", r"^\s*$", r"^$", r"None", r"e"]
    ),
    st.text(min_size=1, max_size=4).map(re2.escape),
)


@st.composite
def filters(draw) -> tuple[str, Any]:
    """An operator and a value ``validate_config`` accepts for it."""
    operator = draw(st.sampled_from([o.value for o in Operator]))
    if operator in ("gt", "gte", "lt", "lte"):
        value: Any = draw(NUMBERS.filter(lambda n: abs(n) <= MAX_ABS_NUMBER))
    elif operator == "icontains":
        value = draw(st.one_of(st.text(max_size=4), TRICKY_STRINGS))
    elif operator == "regex":
        value = draw(SAFE_REGEXES)
    elif operator == "in":
        value = draw(st.lists(PROPERTY_VALUES, min_size=1, max_size=3))
    elif operator in ("exact", "is_not"):
        value = draw(PROPERTY_VALUES.filter(lambda v: v is not None))
    else:
        value = None
    assume(nul_path(value, "value") is None)  # refused on save (a NUL cannot be stored)
    return operator, value


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    filters(),
    st.one_of(
        st.just({}),
        st.fixed_dictionaries({"p": PROPERTY_VALUES}),
        st.fixed_dictionaries({"p": st.none()}),
        st.fixed_dictionaries({"other": PROPERTY_VALUES}),
    ),
)
@example(("exact", 1), {"p": True})
@example(("exact", "true"), {"p": True})
@example(("exact", "FALSE"), {"p": False})
@example(("exact", 0), {"p": False})
@example(("in", [1]), {"p": True})
@example(("is_not", 1), {"p": True})
@example(("regex", r"^true$"), {"p": True})
@example(("exact", 2**53), {"p": 2**53 + 1})
@example(("gt", 100), {"p": 10**400})
@example(("lt", MAX_ABS_NUMBER), {"p": MAX_ABS_NUMBER - 1})
@example(("exact", 10**400), {"p": str(10**400)})
@example(("gte", 99.5), {"p": "99.5"})
@example(("icontains", "İ"), {"p": "i̇"})
def test_each_operator_agrees_with_the_reference(operator_value, properties):
    operator, value = operator_value
    config = {"event": "e", "filters": [{"property": "p", "operator": operator, "value": value}]}
    validate_config("event", config)  # only what the API would store
    expected = reference(operator, value, properties, "p")
    assert compile_filter("p", operator, value)(properties) is expected
    trigger = compile_trigger(id=1, team_id=1, kind="event", name="t", config=config)
    assert trigger.matches_properties(properties) is expected


# --- regexes ---------------------------------------------------------------------------

REGEX_BOUND_SECONDS = 1.0
"""A safety bound, not a benchmark."""


class TooSlow(Exception):
    pass


@contextmanager
def hard_stop(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (SIGALRM; ``re`` checks for signals while it
    backtracks), so a return to a backtracking engine fails the test instead of hanging it.
    RE2 does not look at signals but answers in linear time. Puts back pytest-timeout's own
    alarm afterwards."""

    def expire(signum, frame):
        raise TooSlow(f"still matching after {seconds}s")

    previous_handler = signal.signal(signal.SIGALRM, expire)
    previous_delay, _ = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            elapsed = time.monotonic() - started
            signal.setitimer(signal.ITIMER_REAL, max(previous_delay - elapsed, 0.001))


def adversarial_values(pattern: str, length: int) -> list[str]:
    """Values that make a backtracking matcher work hardest: runs of a character the
    pattern accepts, ending in one it does not — one long run, and many short ones (a
    pattern that needs 25 of something explodes on runs just long enough to try)."""
    alphabet = {c for c in pattern if c.isalnum() or c in " _-.@"} | {"a", "1", " ", "x"}
    values = []
    for char in sorted(alphabet):
        values.append(char * length)
        values.append(char * (length - 1) + "!")
        for run in (24, 40):
            values.append(((char * run + "!") * length)[:length])
    values.append("ab" * (length // 2))
    values.append("a1 " * (length // 3) + "!")
    return values


def match_time(pattern: str, length: int = MAX_MATCHED_TEXT) -> float:
    """The slowest adversarial value through the compiled filter the consumer runs."""
    predicate = compile_filter("p", "regex", pattern)
    slowest = 0.0
    for value in adversarial_values(pattern, length):
        started = time.monotonic()
        with hard_stop(REGEX_BOUND_SECONDS * 2):
            predicate({"p": value})
        slowest = max(slowest, time.monotonic() - started)
    return slowest


CLASSIC_CATASTROPHIC = [
    r"(a+)+",
    r"(a+)+$",
    r"(a*)*b",
    r"([a-zA-Z]+)*$",
    r"(a|aa)+$",
    r"(a|a?)+$",
    r"(a|a)*c",
    r"(.|a)*x",
    r"(.*a){12}",
    r"(a?){25}a{25}",
    r"^(([a-z])+.)+[A-Z]([a-z])+$",
    r"(\w+\s?)+$",
    r"(x+x+)+y",
    r"^(\d+)*$",
    r"((ab)*c)*",
]


@pytest.mark.parametrize("pattern", CLASSIC_CATASTROPHIC)
def test_the_classic_catastrophic_patterns_are_accepted_and_match_in_linear_time(pattern):
    """They exponentially backtrack in ``re``; RE2 has no backtracking to exploit."""
    assert check_regex(pattern) is None
    assert match_time(pattern) < REGEX_BOUND_SECONDS


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        (r"(?=(a+)+b)", "a lookahead (?=…)"),
        (r"(?!(a|a)*c)x", "a negative lookahead (?!…)"),
        (r"(?<=a)b", "a lookbehind (?<=…)"),
        (r"(?<!a)b", "a negative lookbehind (?<!…)"),
        (r"(?>(a+)+)b", "an atomic group (?>…)"),
        (r"(a)\1", r"a backreference \1"),
        (r"(?P<n>a)(?P=n)", "a named backreference (?P=…)"),
        (r"(a)?(?(1)b|c)", "a conditional group"),
        (r"a++b", "a possessive quantifier ++"),
        (r"a{2}+", "a possessive quantifier {2}+"),
        (r"end\Z", r"write \z for the end of the text"),
    ],
)
def test_constructs_re2_lacks_are_refused_by_name(pattern, construct):
    reason = check_regex(pattern) or ""
    assert construct in reason and "RE2" in reason, reason
    with pytest.raises(InvalidTrigger) as refused:
        validate_config(
            "event",
            {"event": "e", "filters": [{"property": "p", "operator": "regex", "value": pattern}]},
        )
    assert refused.value.errors == {"config.filters[0].value": reason}


@pytest.mark.parametrize("pattern", ["(", "a)", "[z-a]", "a**", "x{2,1}", "\ud800"])
def test_check_regex_explains_patterns_that_do_not_compile(pattern):
    reason = check_regex(pattern)
    assert reason and "compile" in reason


@pytest.mark.parametrize("pattern", [r"a{1000}", r"(\w+\s?){300}", r"(\d{10}){100}"])
def test_patterns_that_compile_to_huge_programs_are_refused(pattern):
    """RE2's time is linear in the text times the program; a repeat count multiplies the
    program, so its size is bounded too."""
    assert "too complex" in (check_regex(pattern) or "")


def test_a_stored_pattern_re2_refuses_matches_nothing_instead_of_raising():
    """Saved before trigger regexes ran on RE2: the consumer's trigger reload must go on."""
    config = {
        "event": "e",
        "filters": [{"property": "p", "operator": "regex", "value": r"checkout(?=_error)"}],
    }
    trigger = compile_trigger(id=1, team_id=1, kind="event", name="t", config=config)
    assert "lookahead" in trigger.refused
    index = TriggerIndex([trigger])
    assert index.match(team_id=1, event_name="e", properties={"p": "checkout_error"}, now=NOW) == []


ATOMS = st.sampled_from(
    ["a", "b", "1", " ", "x", ".", r"\d", r"\w", r"\s", r"\S", "[ab]", "[^b]", "a1"]
)
QUANTIFIERS = st.sampled_from(["", "", "?", "*", "+", "*?", "{2}", "{1,3}", "{2,}"])


def _nest(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda p: f"(?:{p[0]}|{p[1]})"),
        st.tuples(inner, QUANTIFIERS).map(lambda p: f"({p[0]}){p[1]}"),
    )


@st.composite
def nested_patterns(draw) -> str:
    """``prefix (body)<quantifier> suffix``: the body nests groups, alternations and
    quantifiers (at most three atoms); prefix and suffix are plain atoms."""
    body = draw(st.recursive(ATOMS, _nest, max_leaves=3))
    prefix = "".join(draw(st.lists(ATOMS, max_size=2)))
    suffix = "".join(draw(st.lists(ATOMS, max_size=2)))
    anchors = draw(st.sampled_from([("", ""), ("^", ""), ("", "$"), ("^", "$")]))
    return f"{anchors[0]}{prefix}({body}){draw(QUANTIFIERS)}{suffix}{anchors[1]}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nested_patterns())
@example(r"(a|a)*c")
@example(r"(a|aa)*c")
@example(r"(a|a?)+c")
@example(r"(.|a)*x")
@example(r"^checkout_\w+$")
@example(r"a+b+")
def test_every_accepted_regex_matches_2000_adversarial_characters_quickly(pattern):
    """Nested repeats and alternations, which backtrack exponentially in ``re``: whatever
    check_regex accepts answers on the full MAX_MATCHED_TEXT within the bound."""
    if check_regex(pattern) is not None:
        return
    assert match_time(pattern) < REGEX_BOUND_SECONDS, pattern


@pytest.mark.parametrize(
    "pattern",
    [r"^checkout_\w+$", r"^card_\d+$", r"a+b+", r"\d{3}-\d{4}", r"^(GET|POST) /api/", "timeout"],
)
def test_accepted_regexes_match_2000_adversarial_characters_quickly(pattern):
    assert check_regex(pattern) is None
    assert match_time(pattern) < REGEX_BOUND_SECONDS


@pytest.mark.parametrize(
    "pattern",
    [r".*a.*c", r"a*a*c", r"\d+\d+x", "a?" * 25 + "a" * 25, r"\w*\s"],
    ids=["dot-star-twice", "a-star-twice", "digits-twice", "25-optional-then-25", "word-star"],
)
def test_regexes_with_repeats_in_a_row_are_refused_or_bounded(pattern):
    """Polynomial (O(n³) for two repeats) or exponential in the optional pieces under
    ``re``; linear under RE2."""
    if check_regex(pattern) is not None:
        return
    assert match_time(pattern) < REGEX_BOUND_SECONDS
