"""``POST /api/ingest/``: a team's analytics events in, envelope v1 events onto Kafka.

The team's ``api_token`` in the body is the credential (no session, no DRF token), as in
PostHog's capture API. The endpoint answers ``202 {"accepted": n}`` only after Kafka has
acknowledged every event of the batch; a batch is accepted or rejected whole.

Event ids make retries safe: an event carries the client's ``uuid`` if it sent one,
otherwise a uuid5 over (team id, event, distinct_id, timestamp as sent, canonical JSON of
properties). A client that retries a batch after a ``503`` therefore produces the same ids,
and the consumer's dedup (event id x trigger x recipient) absorbs what the failed attempt
may already have written. An event sent without a timestamp gets ``now`` as its timestamp
and in its id, so two such sends are two events, and retrying one is not idempotent:
clients that retry should send ``timestamp`` or ``uuid``.

:func:`ingest_batch` validates and builds the envelopes (no I/O); the view authenticates,
maps errors to responses and publishes. Limits: ``NOTIFLOW_INGEST_MAX_EVENTS`` events per
batch (default 1000, read per request) and a 5 MB body (413 beyond either), and 1 MB per
encoded event (a 400 naming ``properties``: Kafka would never accept it).

Also refused, each with a 400 naming the event's index and field: a name under
``activity.`` or ``check.`` (the system's own events, which a client could otherwise forge),
a NUL character in any string (PostgreSQL stores none in text or jsonb), and a timestamp
more than :data:`MAX_CLOCK_SKEW` ahead of the server's clock (one client clock set to
tomorrow would otherwise stand ahead of every real event in its trigger's windows).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import BodyTooLarge
from api.permissions import IngestRateThrottle
from notifications.events import (
    LONE_SURROGATE,
    MAX_NAME_LENGTH,
    MAX_PROPERTIES_DEPTH,
    NUL,
    SYSTEM_NAME,
    Event,
    InvalidEvent,
    Source,
    has_lone_surrogate,
    is_system_name,
    nested_deeper_than,
    nul_path,
    parse_timestamp,
)
from notifications.stream import PublishFailed, publish_events
from workspace.models import Team

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
# One encoded envelope; kafka-python refuses records over max_request_size (1 MiB by
# default) and so does the broker (message.max.bytes), so a bigger event could never be
# published and its client would retry a 503 forever. Leave room for key and headers.
MAX_EVENT_BYTES = 1_000_000
MAX_CLOCK_SKEW = timedelta(hours=1)
"""How far ahead of the server's clock an event's timestamp may be (docs/decisions.md)."""
# Fixed forever: changing it changes every derived event id, and retries stop deduplicating.
INGEST_ID_NAMESPACE = uuid.UUID("5f0c8a52-6d1e-4f1b-9a57-3c2f6e0d9b41")
# Compared against when no team has the key, so a miss costs what a hit costs.
_NO_TEAM_TOKEN = "phc_" + "0" * 32
# api_key -> team, per process: a batch needs no query while its key was seen in the last
# TEAM_CACHE_SECONDS. A change to any team empties this process's cache at once; other
# processes see a rotated or deleted key within TEAM_CACHE_SECONDS (docs/decisions.md).
TEAM_CACHE_SECONDS = 5.0
TEAM_CACHE_SIZE = 1024
_teams: dict[bytes, tuple[float, Team]] = {}


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


def team_for_api_key(*, api_key: Any) -> Team | None:
    """The team whose ``api_token`` is ``api_key``, or None; the final check is constant-time.

    Found teams are cached for :data:`TEAM_CACHE_SECONDS` under the key's SHA-256 (so the
    lookup compares digests, never the key itself); unknown keys are not cached.
    """
    if not isinstance(api_key, str) or not api_key:
        return None
    digest = hashlib.sha256(api_key.encode()).digest()
    clock = time.monotonic()
    cached = _teams.get(digest)
    if cached is not None and cached[0] > clock:
        return cached[1]
    team = Team.objects.filter(api_token=api_key).only("id", "organization_id", "api_token").first()
    stored = team.api_token if team is not None else _NO_TEAM_TOKEN
    if not hmac.compare_digest(stored.encode(), api_key.encode()):
        return None
    if len(_teams) >= TEAM_CACHE_SIZE:
        _teams.clear()
    _teams[digest] = (clock + TEAM_CACHE_SECONDS, team)
    return team


@receiver(post_save, sender=Team, dispatch_uid="ingest-forget-teams-on-save")
@receiver(post_delete, sender=Team, dispatch_uid="ingest-forget-teams-on-delete")
def forget_teams(**_: Any) -> None:
    """A team's token or existence changed: this process asks the database again."""
    _teams.clear()


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


def _errors_response(errors: list[FieldError]) -> Response:
    return Response({"errors": [e.to_dict() for e in errors]}, status=status.HTTP_400_BAD_REQUEST)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class BoundedJSONParser(BaseParser):
    """JSON bodies up to :data:`MAX_BODY_BYTES`; larger ones raise :class:`BodyTooLarge`.

    DRF's ``JSONParser`` reads ``HttpRequest.body``, which Django caps at
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB by default) with a bare 400. This parser reads
    the stream itself, at most one byte past the limit, so ingest's own limit applies.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request else 0
        except ValueError:
            declared = 0
        if declared > MAX_BODY_BYTES:
            raise BodyTooLarge(MAX_BODY_BYTES)
        raw = stream.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise BodyTooLarge(MAX_BODY_BYTES)
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
            lone_surrogate = has_lone_surrogate(data, raw)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        if lone_surrogate:
            raise ParseError(f"JSON parse error - a string {LONE_SURROGATE}")
        return data


_Detail = inline_serializer("IngestDetail", {"detail": serializers.CharField()})


class IngestView(APIView):
    """Accept a batch of a team's events; 202 once Kafka has acknowledged all of them."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    parser_classes = [BoundedJSONParser]
    # Per client IP; the rate is REST_FRAMEWORK's "ingest" throttle rate.
    throttle_classes = [IngestRateThrottle]

    @extend_schema(
        summary="Ingest a batch of analytics events",
        request=inline_serializer(
            "IngestRequest",
            {
                "api_key": serializers.CharField(help_text="The team's api_token."),
                "batch": serializers.ListField(
                    child=inline_serializer(
                        "IngestEvent",
                        {
                            "event": serializers.CharField(max_length=MAX_NAME_LENGTH),
                            "distinct_id": serializers.CharField(),
                            "properties": serializers.DictField(required=False),
                            "timestamp": serializers.DateTimeField(
                                required=False,
                                help_text="ISO 8601 with a UTC offset; defaults to now.",
                            ),
                            "uuid": serializers.UUIDField(
                                required=False,
                                help_text="Client-chosen event id; derived from the event "
                                "when absent, so retries keep their ids.",
                            ),
                        },
                    ),
                    min_length=1,
                    help_text="At most NOTIFLOW_INGEST_MAX_EVENTS (default 1000) events.",
                ),
            },
        ),
        responses={
            202: inline_serializer("IngestAccepted", {"accepted": serializers.IntegerField()}),
            400: OpenApiResponse(
                inline_serializer(
                    "IngestErrors",
                    {
                        "errors": inline_serializer(
                            "IngestError",
                            {
                                "index": serializers.IntegerField(
                                    required=False,
                                    help_text="Position in batch; absent for body-level errors.",
                                ),
                                "field": serializers.CharField(),
                                "message": serializers.CharField(),
                            },
                            many=True,
                        )
                    },
                ),
                description="Malformed body or events; every bad event is listed, none is "
                "published.",
            ),
            401: OpenApiResponse(_Detail, description="Missing or unknown api_key."),
            413: OpenApiResponse(_Detail, description="Too many events, or body over 5 MB."),
            503: OpenApiResponse(_Detail, description="Kafka unavailable; retry the batch."),
        },
    )
    def post(self, request):
        body = request.data  # BoundedJSONParser: 413 over MAX_BODY_BYTES, 400 if not JSON
        if not isinstance(body, dict):
            return _errors_response(
                [FieldError("body", f"must be a JSON object, got {type(body).__name__}")]
            )
        team = team_for_api_key(api_key=body.get("api_key"))
        if team is None:
            return Response(
                {"detail": "api_key is missing or does not belong to any team"},
                status=status.HTTP_401_UNAUTHORIZED,
            )
        try:
            events = ingest_batch(team=team, batch=body.get("batch"), now=timezone.now())
        except BatchTooLarge as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        except BatchRejected as exc:
            return _errors_response(exc.errors)
        try:
            accepted = publish_events(events)
        except PublishFailed as exc:
            logger.warning(
                "ingest: %d events for team %s not published: %s", len(events), team.id, exc
            )
            return Response(
                {"detail": "event stream unavailable, retry"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        return Response({"accepted": accepted}, status=status.HTTP_202_ACCEPTED)
