"""The event envelope: the one typed, versioned schema every producer writes and the
consumer reads. Pure: no ORM, no Kafka.

``decode`` turns bytes into an :class:`Event` or raises :class:`InvalidEvent` whose
``field`` and ``reason`` say exactly what is wrong; the consumer sends such messages to
the dead-letter topic with that reason. Among them: text PostgreSQL cannot store (a lone
surrogate, a NUL character) and an ``ingest`` event under a system name
(:data:`SYSTEM_NAME_PREFIXES`).
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

SCHEMA_VERSION = 1
MAX_NAME_LENGTH = 200
ACTIVITY_PREFIX = "activity."
CHECK_PREFIX = "check."
SYSTEM_NAME_PREFIXES = (ACTIVITY_PREFIX, CHECK_PREFIX)
"""Event names the system itself publishes (activity on resources, scheduled checks); no
client may send one, or it could forge "someone deleted …" alerts."""
SYSTEM_NAME = "names starting with activity. or check. are reserved for the system's own events"
NUL = "holds a NUL character (\\u0000), which PostgreSQL cannot store"
MAX_PROPERTIES_DEPTH = 32
"""Lists and objects inside ``properties``: deeper ones would reach Python's recursion limit
in ``repr``, ``json.dumps`` or ``asdict`` somewhere downstream and fail their batch."""


class Source(StrEnum):
    ACTIVITY = "activity"
    INGEST = "ingest"
    CHECK = "check"


class InvalidEvent(ValueError):
    """An envelope that breaks the schema; ``field`` names the offending key."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Actor:
    id: int | None
    name: str


@dataclass(frozen=True)
class Subject:
    type: str
    id: str
    name: str
    url: str = ""


@dataclass(frozen=True)
class Event:
    name: str
    team_id: int
    org_id: int
    source: Source
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    actor: Actor | None = None
    subject: Subject | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The envelope as JSON-ready data (``properties`` shared, not copied)."""
        return {
            "id": str(self.id),
            "schema": self.schema,
            "source": str(self.source),
            "name": self.name,
            "team_id": self.team_id,
            "org_id": self.org_id,
            "actor": {"id": self.actor.id, "name": self.actor.name} if self.actor else None,
            "subject": (
                {
                    "type": self.subject.type,
                    "id": self.subject.id,
                    "name": self.subject.name,
                    "url": self.subject.url,
                }
                if self.subject
                else None
            ),
            "properties": self.properties,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }

    @functools.cached_property
    def encoded(self) -> bytes:
        """The wire form, computed once per event (size checks and publishing share it)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str).encode()

    def encode(self) -> bytes:
        return self.encoded


_FIELDS = {
    "id",
    "schema",
    "source",
    "name",
    "team_id",
    "org_id",
    "actor",
    "subject",
    "properties",
    "occurred_at",
}
_REQUIRED = _FIELDS - {"actor", "subject", "properties"}
_SOURCES = {s.value: s for s in Source}


def is_system_name(name: str) -> bool:
    return name.startswith(SYSTEM_NAME_PREFIXES)


_ACTIVITY_NAME = re.compile(r"^activity\.(?P<type>[a-z_]+)\.(?P<action>[a-z_]+)$")


def activity_event_name(resource_type: str, action: str) -> str:
    """The name of the event for ``action`` on a resource: ``activity.<type>.<action>``."""
    return f"{ACTIVITY_PREFIX}{resource_type}.{action}"


def parse_activity_event_name(name: str) -> tuple[str, str] | None:
    """(resource type, action) of a name :func:`activity_event_name` wrote; None for any
    other name."""
    match = _ACTIVITY_NAME.match(name)
    return (match["type"], match["action"]) if match else None


def nul_path(value: Any, path: str) -> str | None:
    """Where a JSON value holds a NUL character (``"\\u0000"`` in JSON): ``path`` extended
    with ``.key`` and ``[i]`` steps, ``"a key of <path>"`` for a key; None if nowhere.
    Iterative, as the value may nest deeply."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return f"a key of {where}"
                stack.append((child, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return None


def _positive_int(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidEvent(key, f"must be a positive integer, got {value!r}")
    return value


def _string(data: dict[str, Any], key: str, path: str, *, required: bool = True) -> str:
    value = data.get(key, "" if not required else None)
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidEvent(path, f"must be a non-empty string, got {value!r}")
    return value


def parse_timestamp(value: Any, path: str = "occurred_at") -> datetime:
    """An ISO 8601 timestamp with an offset (``Z`` allowed), normalised to UTC."""
    if not isinstance(value, str):
        raise InvalidEvent(path, f"must be an ISO 8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent(path, f"is not ISO 8601: {value!r}") from None
    if parsed.tzinfo is None:
        raise InvalidEvent(path, f"needs a UTC offset: {value!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable UTC time
        raise InvalidEvent(path, f"is out of range in UTC: {value!r}") from None


_CONTAINERS = (dict, list)


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether a JSON value nests lists and objects more than ``limit`` levels deep.
    Iterative: the value may be deeper than Python's stack. Only containers are pushed, so
    a flat object costs one pass over its values."""
    stack: list[tuple[Any, int]] = [(value, 0)] if isinstance(value, _CONTAINERS) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if not children:
            continue
        if depth >= limit:
            return True
        for child in children:
            if isinstance(child, _CONTAINERS):
                stack.append((child, depth + 1))
    return False


def _actor(value: Any) -> Actor | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"id", "name"}:
        raise InvalidEvent("actor", "must be null or an object with id and name")
    actor_id = value.get("id")
    if actor_id is not None and (isinstance(actor_id, bool) or not isinstance(actor_id, int)):
        raise InvalidEvent("actor.id", f"must be an integer or null, got {actor_id!r}")
    return Actor(id=actor_id, name=_string(value, "name", "actor.name"))


def _subject(value: Any) -> Subject | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"type", "id", "name", "url"}:
        raise InvalidEvent("subject", "must be null or an object with type, id, name, url")
    subject_id = value.get("id")
    if isinstance(subject_id, int) and not isinstance(subject_id, bool):
        subject_id = str(subject_id)
    if not isinstance(subject_id, str) or not subject_id:
        raise InvalidEvent(
            "subject.id", f"must be a non-empty string or integer, got {subject_id!r}"
        )
    return Subject(
        type=_string(value, "type", "subject.type"),
        id=subject_id,
        name=_string(value, "name", "subject.name"),
        url=_string(value, "url", "subject.url", required=False),
    )


def from_dict(data: Any) -> Event:
    """Validate a decoded envelope; raise :class:`InvalidEvent` naming the first bad field."""
    if not isinstance(data, dict):
        raise InvalidEvent("envelope", f"must be a JSON object, got {type(data).__name__}")
    if "schema" not in data:
        raise InvalidEvent("schema", "is missing")
    if data["schema"] != SCHEMA_VERSION:
        raise InvalidEvent(
            "schema", f"unknown version {data['schema']!r}, expected {SCHEMA_VERSION}"
        )
    keys = data.keys()
    if not keys <= _FIELDS:
        raise InvalidEvent(min(keys - _FIELDS), "is not a field of the envelope")
    if not keys >= _REQUIRED:
        raise InvalidEvent(min(_REQUIRED - keys), "is missing")
    try:
        event_id = uuid.UUID(str(data["id"]))
    except ValueError:
        raise InvalidEvent("id", f"must be a UUID, got {data['id']!r}") from None
    source = _SOURCES.get(data["source"]) if isinstance(data["source"], str) else None
    if source is None:
        raise InvalidEvent(
            "source", f"must be one of {', '.join(s.value for s in Source)}, got {data['source']!r}"
        )
    name = _string(data, "name", "name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidEvent("name", f"is longer than {MAX_NAME_LENGTH} characters")
    if source == Source.INGEST and is_system_name(name):
        raise InvalidEvent("name", SYSTEM_NAME)
    properties = data.get("properties") or {}
    if not isinstance(properties, dict):
        raise InvalidEvent("properties", f"must be an object, got {type(properties).__name__}")
    if nested_deeper_than(properties, MAX_PROPERTIES_DEPTH):
        raise InvalidEvent("properties", f"nest deeper than {MAX_PROPERTIES_DEPTH} levels")
    return Event(
        id=event_id,
        schema=SCHEMA_VERSION,
        source=source,
        name=name,
        team_id=_positive_int(data, "team_id"),
        org_id=_positive_int(data, "org_id"),
        actor=_actor(data.get("actor")),
        subject=_subject(data.get("subject")),
        properties=properties,
        occurred_at=parse_timestamp(data["occurred_at"]),
    )


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
LONE_SURROGATE = "holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text"


def has_lone_surrogate(data: Any, raw: bytes | None = None) -> bool:
    """Whether decoded JSON holds a lone UTF-16 surrogate. JSON may spell one
    (``"\\ud800"``) and Python reads it into a ``str`` that no UTF-8 encoder accepts, so
    PostgreSQL refuses any row that carries it. Given ``raw``, the JSON text, most bodies
    cost one scan: without a ``\\uD800``-``\\uDFFF`` escape there can be none."""
    if raw is not None and not _SURROGATE_ESCAPE.search(raw):
        return False
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_DIGITS_AS_ZEROS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def _loads(raw: bytes) -> Any:
    """``json.loads``, with orjson's 4x faster parser for the common case. orjson refuses
    what the standard parser reads (NaN, 1e400, lone surrogates, UTF-16) — those fall
    back — and reads an integer beyond 64 bits as a float, so a body with a run of 19
    digits anywhere is left to ``json.loads`` too (found by mapping every digit to ``0``
    and everything else to a space: a C-speed pass, where a regex costs more than orjson)."""
    if isinstance(raw, bytes) and _LONG_DIGIT_RUN not in raw.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def decode(raw: bytes | None) -> Event:
    """Bytes from Kafka → a valid :class:`Event`, or :class:`InvalidEvent` with the reason."""
    if raw is None:
        raise InvalidEvent("envelope", "message has no value")
    try:
        data = _loads(raw)
        lone_surrogate = has_lone_surrogate(data, raw if isinstance(raw, bytes) else None)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8, bad JSON and integers longer than Python's digit
        # limit; RecursionError is JSON nested deeper than the interpreter's stack.
        raise InvalidEvent("envelope", f"is not JSON: {exc}") from None
    if lone_surrogate:
        raise InvalidEvent("envelope", LONE_SURROGATE)
    # JSON spells NUL only as an escape, so a body without one needs no walk.
    if isinstance(raw, bytes) and b"\\u0000" in raw and (where := nul_path(data, "envelope")):
        raise InvalidEvent(where.replace("envelope.", "", 1), NUL)
    return from_dict(data)
