"""The event envelope: the one typed, versioned schema every producer writes and the
consumer reads. Pure: no ORM, no Kafka.

``decode`` turns bytes into an :class:`Event` or raises :class:`InvalidEvent` whose
``field`` and ``reason`` say exactly what is wrong; the consumer sends such messages to
the dead-letter topic with that reason.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1
MAX_NAME_LENGTH = 200


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
        data = asdict(self)
        data["id"] = str(self.id)
        data["source"] = str(self.source)
        data["occurred_at"] = self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return data

    def encode(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str).encode()


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
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise InvalidEvent(unknown[0], "is not a field of the envelope")
    for key in sorted(_REQUIRED):
        if key not in data:
            raise InvalidEvent(key, "is missing")
    try:
        event_id = uuid.UUID(str(data["id"]))
    except ValueError:
        raise InvalidEvent("id", f"must be a UUID, got {data['id']!r}") from None
    try:
        source = Source(data["source"])
    except ValueError:
        raise InvalidEvent(
            "source", f"must be one of {', '.join(s.value for s in Source)}, got {data['source']!r}"
        ) from None
    name = _string(data, "name", "name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidEvent("name", f"is longer than {MAX_NAME_LENGTH} characters")
    properties = data.get("properties") or {}
    if not isinstance(properties, dict):
        raise InvalidEvent("properties", f"must be an object, got {type(properties).__name__}")
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


def decode(raw: bytes | None) -> Event:
    """Bytes from Kafka → a valid :class:`Event`, or :class:`InvalidEvent` with the reason."""
    if raw is None:
        raise InvalidEvent("envelope", "message has no value")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8, bad JSON and integers longer than Python's digit
        # limit; RecursionError is JSON nested deeper than the interpreter's stack.
        raise InvalidEvent("envelope", f"is not JSON: {exc}") from None
    return from_dict(data)
