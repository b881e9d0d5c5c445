"""Digest schedules, their execution history, and a preview of the caller's next digest.

Everyone sees their own profile (``profile_id`` is the user's id); staff see every
profile's executions. History lives in Redis for 7 days; when Redis cannot be reached the
history endpoints answer 503 with the reason.
"""

from __future__ import annotations

import redis
from django.urls import path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from digests import history
from digests.models import DigestChannel
from digests.preview import digest_preview
from digests.render import plain_text
from digests.schedules import schedules_for
from digests.windows import Period
from notifications.channels.base import Destination
from notifications.channels.email import build_email

MAX_LIMIT = 500


class ExecutionSerializer(serializers.Serializer):
    execution_id = serializers.CharField()
    run_id = serializers.CharField()
    profile_id = serializers.IntegerField()
    schedule_type = serializers.ChoiceField(choices=[p.value for p in Period])
    status = serializers.ChoiceField(choices=[s.value for s in history.ExecutionStatus])
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    as_of = serializers.DateTimeField(help_text="The time the run computed windows for.")
    message_count = serializers.IntegerField()
    digest_count = serializers.IntegerField()
    duration_seconds = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class WindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    label = serializers.CharField()


class ScheduleSerializer(serializers.Serializer):
    profile_id = serializers.IntegerField()
    schedule_type = serializers.ChoiceField(choices=[p.value for p in Period])
    enabled = serializers.BooleanField()
    timezone = serializers.CharField()
    digest_hour = serializers.IntegerField()
    channels = serializers.ListField(child=serializers.CharField())
    last_run = serializers.DateTimeField(allow_null=True)
    next_run = serializers.DateTimeField(allow_null=True)
    next_window = WindowSerializer(allow_null=True)


class PreviewSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=DigestChannel.choices)
    schedule_type = serializers.ChoiceField(choices=[p.value for p in Period])
    window = WindowSerializer()
    due_at = serializers.DateTimeField()
    item_count = serializers.IntegerField()
    unread_count = serializers.IntegerField()
    subject = serializers.CharField(allow_blank=True)
    text = serializers.CharField(allow_blank=True, help_text="What the message says, as text.")
    html = serializers.CharField(allow_blank=True, help_text="The email's HTML part (email).")
    lines = serializers.ListField(child=serializers.CharField())


def _window(window) -> dict | None:
    if window is None:
        return None
    return {"start": window.start, "end": window.end, "label": window.label()}


def _limit(request) -> int:
    raw = request.query_params.get("limit", "50")
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({"limit": f"{raw!r} is not a whole number"}) from None
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationError({"limit": f"must be between 1 and {MAX_LIMIT}"})
    return value


def _schedule_type(request) -> str | None:
    value = request.query_params.get("schedule_type")
    if value is None:
        return None
    if value not in {p.value for p in Period}:
        raise ValidationError({"schedule_type": f"{value!r} is not hourly, daily or weekly"})
    return value


def _executions(*, profile_id: int | None, request) -> Response:
    try:
        records = history.executions_list(
            profile_id=profile_id, limit=_limit(request), schedule_type=_schedule_type(request)
        )
    except redis.RedisError as exc:
        return Response(
            {"detail": f"execution history is unavailable: {exc}"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return Response(ExecutionSerializer([r.to_dict() for r in records], many=True).data)


BAD_QUERY = OpenApiResponse(OpenApiTypes.OBJECT, description="A query parameter is not valid.")

HISTORY_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description=f"1–{MAX_LIMIT}, default 50"),
    OpenApiParameter("schedule_type", OpenApiTypes.STR, enum=[p.value for p in Period]),
]


class ExecutionsView(APIView):
    """Recent digest executions, newest first: the caller's own, or everyone's for staff."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="digest_executions_list",
        parameters=HISTORY_PARAMETERS,
        responses={200: ExecutionSerializer(many=True), 400: BAD_QUERY},
    )
    def get(self, request):
        profile_id = None if request.user.is_staff else request.user.pk
        return _executions(profile_id=profile_id, request=request)


class ProfileExecutionsView(APIView):
    """One profile's executions (kept 7 days). Only staff may read another profile's."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="digest_executions_for_profile",
        parameters=HISTORY_PARAMETERS,
        responses={200: ExecutionSerializer(many=True), 400: BAD_QUERY},
    )
    def get(self, request, profile_id: int):
        if profile_id != request.user.pk and not request.user.is_staff:
            raise NotFound("No such profile.")
        return _executions(profile_id=profile_id, request=request)


class SchedulesView(APIView):
    """The caller's hourly, daily and weekly schedules: which is on, last and next run."""

    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="digest_schedules", responses=ScheduleSerializer(many=True))
    def get(self, request):
        try:
            schedules = schedules_for(user_id=request.user.pk, now=timezone.now())
        except redis.RedisError as exc:
            return Response(
                {"detail": f"schedule history is unavailable: {exc}"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        data = [
            {
                "profile_id": s.profile_id,
                "schedule_type": s.schedule_type,
                "enabled": s.enabled,
                "timezone": s.timezone,
                "digest_hour": s.digest_hour,
                "channels": list(s.channels),
                "last_run": s.last_run,
                "next_run": s.next_run,
                "next_window": _window(s.next_window),
            }
            for s in schedules
        ]
        return Response(ScheduleSerializer(data, many=True).data)


class PreviewView(APIView):
    """The caller's next digest on each of their channels, rendered as it stands now.
    Sends nothing and writes nothing."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="digest_preview",
        parameters=[OpenApiParameter("channel", OpenApiTypes.STR, enum=list(DigestChannel.values))],
        responses={200: PreviewSerializer(many=True), 400: BAD_QUERY},
    )
    def get(self, request):
        channel = request.query_params.get("channel")
        if channel is not None and channel not in DigestChannel.values:
            raise ValidationError({"channel": f"{channel!r} is not email, slack or telegram"})
        rendered = digest_preview(user_id=request.user.pk, now=timezone.now(), channel=channel)
        data = []
        for r in rendered:
            text = html = ""
            lines: list[str] = []
            if r.message is not None:
                lines = list(r.message.lines)
                if r.channel == DigestChannel.EMAIL:
                    mail = build_email(r.message, Destination(address=request.user.email))
                    text = str(mail.body)
                    html = next(
                        (str(body) for body, kind in mail.alternatives if kind == "text/html"), ""
                    )
                else:
                    text = plain_text(r.message)
            data.append(
                {
                    "channel": r.channel,
                    "schedule_type": r.window.period.value,
                    "window": _window(r.window),
                    "due_at": r.due_at,
                    "item_count": r.view.item_count,
                    "unread_count": r.view.unread_count,
                    "subject": r.view.subject() if r.message is not None else "",
                    "text": text,
                    "html": html,
                    "lines": lines,
                }
            )
        return Response(PreviewSerializer(data, many=True).data)


urlpatterns = [
    path("digest/executions", ExecutionsView.as_view(), name="digest-executions"),
    path(
        "digest/executions/<int:profile_id>",
        ProfileExecutionsView.as_view(),
        name="digest-executions-profile",
    ),
    path("digest/schedules", SchedulesView.as_view(), name="digest-schedules"),
    path("digest/preview", PreviewView.as_view(), name="digest-preview"),
]
