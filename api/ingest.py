"""``POST /api/ingest/``: a team's analytics events in, envelope v1 events onto Kafka.

The team's ``api_token`` in the body is the credential (no session, no DRF token), as in
PostHog's capture API. The endpoint answers ``202 {"accepted": n}`` only after Kafka has
acknowledged every event of the batch; a batch is accepted or rejected whole.

The view parses the body, authenticates, hands the batch to
:func:`notifications.ingestion.ingest_batch` (which validates it and builds the envelopes;
its docstring says how event ids are derived and what is refused), maps errors to
responses and publishes. Limits here: a 5 MB body (413 beyond it, as for more than
``NOTIFLOW_INGEST_MAX_EVENTS`` events).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

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
from notifications.events import LONE_SURROGATE, MAX_NAME_LENGTH, has_lone_surrogate
from notifications.ingestion import BatchRejected, BatchTooLarge, FieldError, ingest_batch
from notifications.stream import PublishFailed, publish_events
from workspace.models import Team

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
# Compared against when no team has the key, so a miss costs what a hit costs.
_NO_TEAM_TOKEN = "phc_" + "0" * 32
# api_key -> team, per process: a batch needs no query while its key was seen in the last
# TEAM_CACHE_SECONDS. A change to any team empties this process's cache at once; other
# processes see a rotated or deleted key within TEAM_CACHE_SECONDS (docs/decisions.md).
TEAM_CACHE_SECONDS = 5.0
TEAM_CACHE_SIZE = 1024
_teams: dict[bytes, tuple[float, Team]] = {}


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
