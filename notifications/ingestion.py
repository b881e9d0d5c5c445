r"""Ingestion envelopes: a client's batch of analytics events → envelope v1 :class:`Event`\ s,
beside :mod:`notifications.events` (the schema they must satisfy). No ORM, no Kafka: the
caller authenticates the team and publishes (``api.ingest`` for ``POST /api/ingest/``;
``notifications.demo`` puts them in the outbox).

Event ids make retries safe: an event carries the client's ``uuid`` if it sent one,
otherwise a uuid5 over (team id, event, distinct_id, timestamp as sent, canonical JSON of
properties). A client that retries a batch after a ``503`` therefore produces the same ids,
and the consumer's dedup (event id x trigger x recipient) absorbs what the failed attempt
may already have written. An event sent without a timestamp gets ``now`` as its timestamp
and in its id, so two such sends are two events, and retrying one is not idempotent:
clients that retry should send ``timestamp`` or ``uuid``.

A batch is accepted or refused whole, every problem listed (:class:`BatchRejected`). Limits:
``NOTIFLOW_INGEST_MAX_EVENTS`` events per batch (default 1000, read per call;
:class:`BatchTooLarge`) and 1 MB per encoded event (an error naming ``properties``: Kafka
would never accept it). Also refused, each naming the event's index and field: a name under
``activity.`` or ``check.`` (the system's own events, which a client could otherwise forge),
a NUL character in any string (PostgreSQL stores none in text or jsonb), and a timestamp
more than :data:`MAX_CLOCK_SKEW` ahead of the server's clock (one client clock set to
tomorrow would otherwise stand ahead of every real event in its trigger's windows).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings

from notifications.events import (
    MAX_NAME_LENGTH,
    MAX_PROPERTIES_DEPTH,
    NUL,
    SYSTEM_NAME,
    Event,
    InvalidEvent,
    Source,
    is_system_name,
    nested_deeper_than,
    nul_path,
    parse_timestamp,
)

if TYPE_CHECKING:
    from workspace.models import Team

# One encoded envelope; kafka-python refuses records over max_request_size (1 MiB by
# default) and so does the broker (message.max.bytes), so a bigger event could never be
# published and its client would retry a 503 forever. Leave room for key and headers.
MAX_EVENT_BYTES = 1_000_000
MAX_CLOCK_SKEW = timedelta(hours=1)
"""How far ahead of the server's clock an event's timestamp may be (docs/decisions.md)."""
# Fixed forever: changing it changes every derived event id, and retries stop deduplicating.
INGEST_ID_NAMESPACE = uuid.UUID("5f0c8a52-6d1e-4f1b-9a57-3c2f6e0d9b41")


@dataclass(frozen=True)
class FieldError:
    """One problem with the request; ``index`` is the event's position, None for the body."""

    field: str
    message: str
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.index is None:
            del data["index"]
        return data


class BatchRejected(ValueError):
    """The batch is malformed; ``errors`` lists every problem found, not just the first."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.index}.{e.field}: {e.message}" for e in errors))
        self.errors = errors


class BatchTooLarge(ValueError):
    """The batch has more events than ``NOTIFLOW_INGEST_MAX_EVENTS`` allows."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"batch has {size} events; at most {limit} are accepted per request")
        self.size = size
        self.limit = limit


def max_events() -> int:
    return settings.NOTIFLOW_INGEST_MAX_EVENTS


_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode


def derived_event_id(
    *, team_id: int, event: str, distinct_id: str, timestamp: str, properties: dict[str, Any]
) -> uuid.UUID:
    """The id an event without a client ``uuid`` gets: equal inputs, equal id, every time."""
    name = _canonical_json([team_id, event, distinct_id, timestamp, properties])
    return uuid.uuid5(INGEST_ID_NAMESPACE, name)


def _non_empty_string(item: dict[str, Any], key: str, index: int, errors: list[FieldError]) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError(key, f"must be a non-empty string, got {value!r}", index))
        return ""
    return value


def _build_event(
    *, team: Team, item: Any, index: int, now: datetime, errors: list[FieldError]
) -> Event | None:
    """One batch item → an envelope, or None after appending each of its errors."""
    if not isinstance(item, dict):
        kind = type(item).__name__
        errors.append(FieldError("batch", f"each item must be a JSON object, got {kind}", index))
        return None
    found = len(errors)

    name = _non_empty_string(item, "event", index, errors)
    if len(name) > MAX_NAME_LENGTH:
        errors.append(FieldError("event", f"is longer than {MAX_NAME_LENGTH} characters", index))
    elif is_system_name(name):
        errors.append(FieldError("event", SYSTEM_NAME, index))
    distinct_id = _non_empty_string(item, "distinct_id", index, errors)

    properties = item.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        errors.append(
            FieldError("properties", f"must be an object, got {type(properties).__name__}", index)
        )
    elif nested_deeper_than(properties, MAX_PROPERTIES_DEPTH):
        message = f"nest deeper than {MAX_PROPERTIES_DEPTH} levels"
        errors.append(FieldError("properties", message, index))

    raw_timestamp = item.get("timestamp")
    occurred_at = now
    if raw_timestamp is not None:
        try:
            occurred_at = parse_timestamp(raw_timestamp, "timestamp")
        except InvalidEvent as exc:
            errors.append(FieldError("timestamp", exc.reason, index))
        else:
            if occurred_at - now > MAX_CLOCK_SKEW:
                message = (
                    f"is more than 1 hour ahead of the server's clock ({now:%Y-%m-%dT%H:%M}Z): "
                    "send the time the event happened, with its UTC offset, or no timestamp"
                )
                errors.append(FieldError("timestamp", message, index))

    raw_uuid = item.get("uuid")
    event_id: uuid.UUID | None = None
    if raw_uuid is not None:
        try:
            event_id = uuid.UUID(raw_uuid) if isinstance(raw_uuid, str) else None
        except ValueError:
            event_id = None
        if event_id is None:
            errors.append(FieldError("uuid", f"must be a UUID string, got {raw_uuid!r}", index))

    if len(errors) > found:
        return None
    if event_id is None:
        event_id = derived_event_id(
            team_id=team.id,
            event=name,
            distinct_id=distinct_id,
            timestamp=raw_timestamp if raw_timestamp is not None else occurred_at.isoformat(),
            properties=properties,
        )
    event = Event(
        id=event_id,
        source=Source.INGEST,
        name=name,
        team_id=team.id,
        org_id=team.organization_id,
        occurred_at=occurred_at,
        properties={**properties, "distinct_id": distinct_id},
        actor=None,
        subject=None,
    )
    encoded = event.encode()
    # JSON spells NUL only as an escape: most events need no walk to know they hold none.
    if b"\\u0000" in encoded and (where := _nul_field(name, distinct_id, properties)):
        errors.append(FieldError(where[0], f"{where[1]} {NUL}", index))
        return None
    size = len(encoded)
    if size > MAX_EVENT_BYTES:
        errors.append(
            FieldError(
                "properties",
                f"are too large: the event is {size} bytes encoded, at most {MAX_EVENT_BYTES}",
                index,
            )
        )
        return None
    return event


def _nul_field(name: str, distinct_id: str, properties: Any) -> tuple[str, str] | None:
    """(field, where) of the first NUL character in an event, or None."""
    for field, value in (("event", name), ("distinct_id", distinct_id)):
        if "\x00" in value:
            return field, field
    where = nul_path(properties, "properties")
    return ("properties", where) if where else None


def ingest_batch(*, team: Team, batch: Any, now: datetime) -> list[Event]:
    """Validate a batch and build one envelope per item, in order. No I/O.

    Raises :class:`BatchRejected` listing every problem (an empty or non-list batch, and
    each bad field of each bad item), or :class:`BatchTooLarge` before looking at items.
    ``now`` is the timestamp of items that carry none.
    """
    if not isinstance(batch, list) or not batch:
        raise BatchRejected([FieldError("batch", "must be a non-empty list of events")])
    limit = max_events()
    if len(batch) > limit:
        raise BatchTooLarge(len(batch), limit)
    errors: list[FieldError] = []
    now = now.astimezone(UTC)
    built = [
        _build_event(team=team, item=item, index=index, now=now, errors=errors)
        for index, item in enumerate(batch)
    ]
    if errors:
        raise BatchRejected(errors)
    return [event for event in built if event is not None]
