"""``GET|PUT /api/preferences/``: the caller's own notification settings.

The body::

    {"channels": {"alert": {"in_app": true, "email": true, "slack": true, "telegram": true},
                  "activity": {…}, "subscription": {…}, "announcement": {…},
                  "digest": {"email": true, "slack": true, "telegram": true}},
     "critical": {"alert": ["in_app"]},
     "digest_cadence": "daily", "digest_hour": 9,
     "quiet_hours_start": "22:00:00", "quiet_hours_end": "07:00:00",
     "timezone": "Europe/Berlin", "muted_teams": [3],
     "critical_categories": ["alert"], "dnd_until": null,
     "next_digest_at": "2026-03-31T07:00:00Z"}

``channels`` is the category × channel grid (the ``digest`` row switches the per-user
digest per channel). A ``PUT`` changes only what it sends, and the grid cell by cell, so the
page can send one switch; ``critical`` lists the switches that stay on (turning one off is
a 400 saying so). ``muted_teams`` only takes the caller's teams. Emails to the caller
(their only push: a trigger's Slack, webhook and Telegram go to channels; digests keep
their hour) inside the quiet hours wait and go out as one summary when they end;
``critical_categories`` pass them (and do-not-disturb, read-only here as ``dnd_until`` and
set with ``/api/preferences/dnd/``). ``next_digest_at`` is null
when digests are off and absent when the digest schedule is not installed. Errors use the
flat shape of :mod:`api.errors` (``"channels.alert.in_app": ["…"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import FIELD_ERRORS, FlatErrorsMixin
from notifications import services
from notifications.channels import registry
from notifications.models import Category, DigestCadence, Preference
from notifications.quiet import DND_MAX_AHEAD, Attention, dnd_preset
from workspace.models import teams_of, validate_timezone


def preference_grid() -> dict[str, tuple[str, ...]]:
    """Rows (categories) and their columns (channels) of the grid, in order: every
    notification category × every channel that reaches a person (the registry's
    ``TO_PEOPLE``: in_app, email, slack, telegram), then the digest row (per digest
    channel) when the digests app provides one."""
    grid = {category: registry.TO_PEOPLE for category in Category.values}
    try:
        from digests.models import DIGEST_PREFERENCE, DigestChannel
    except ImportError:
        return grid
    grid[DIGEST_PREFERENCE] = tuple(DigestChannel.values)
    return grid


def next_digest_at(
    *, preference: Preference, timezone_name: str, now: datetime
) -> tuple[bool, datetime | None]:
    """(known, when): when the caller's next digest goes out, None when digests are off;
    ``known`` is False when the digest window rules (``digests.windows.next_due``) are not
    installed, and the field is left out."""
    try:
        from digests.windows import next_due
    except ImportError:
        return False, None
    if preference.digest_cadence == DigestCadence.OFF:
        return True, None
    return True, next_due(preference.digest_cadence, now, timezone_name, preference.digest_hour)


class GridRowSerializer(serializers.Serializer):
    """One category's switches. Subclassed per row by :func:`grid_row_serializer`, so each
    row is its own schema component with exactly its channels."""

    category: str = ""
    channels: tuple[str, ...] = ()

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = {
                key: [f"unknown channel '{key}'; use one of " + ", ".join(self.channels)]
                for key in data
                if key not in self.channels
            }
            if unknown:
                raise ValidationError(unknown)
        cells = super().to_internal_value(data)
        critical = {
            channel: [services.critical_message(self.category, channel)]
            for channel, on in cells.items()
            if not on and services.is_critical(self.category, channel)
        }
        if critical:
            raise ValidationError(critical)
        return cells


def grid_row_serializer(category: str, channels: tuple[str, ...]) -> type[GridRowSerializer]:
    fields: dict[str, Any] = {
        channel: serializers.BooleanField(required=False, help_text=f"{channel} on/off")
        for channel in channels
    }
    name = "".join(part.title() for part in category.split("_")) + "PreferenceRow"
    return type(name, (GridRowSerializer,), {**fields, "category": category, "channels": channels})


class PreferenceGridSerializer(serializers.Serializer):
    """Category → channel → on/off. Unknown categories and channels are errors."""

    def get_fields(self):
        return {
            category: grid_row_serializer(category, channels)(required=False)
            for category, channels in preference_grid().items()
        }

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            return super().to_internal_value(data)
        grid = preference_grid()
        errors: dict[str, Any] = {
            key: [f"unknown category '{key}'; use one of " + ", ".join(grid)]
            for key in data
            if key not in grid
        }
        try:
            cells = super().to_internal_value({k: v for k, v in data.items() if k in grid})
        except ValidationError as exc:
            errors.update(exc.detail)
        if errors:
            raise ValidationError(errors)
        return cells


class PreferenceSerializer(serializers.Serializer):
    channels = PreferenceGridSerializer(required=False)
    critical = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        read_only=True,
        help_text="Switches that cannot be turned off: category → channels.",
    )
    digest_cadence = serializers.ChoiceField(choices=DigestCadence.choices, required=False)
    digest_hour = serializers.IntegerField(
        min_value=0, max_value=23, required=False, help_text="Local hour daily/weekly digests go."
    )
    quiet_hours_start = serializers.TimeField(required=False, allow_null=True)
    quiet_hours_end = serializers.TimeField(required=False, allow_null=True)
    timezone = serializers.CharField(
        required=False, max_length=64, help_text="IANA name, e.g. Europe/Berlin."
    )
    muted_teams = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        help_text="Ids of the caller's teams they hear nothing about.",
    )
    critical_categories = serializers.ListField(
        child=serializers.ChoiceField(
            choices=services.CRITICAL_CHOICES,
            error_messages={
                "invalid_choice": "unknown category '{input}'; use one of "
                + ", ".join(services.CRITICAL_CHOICES)
            },
        ),
        required=False,
        max_length=len(services.CRITICAL_CHOICES),
        help_text="Categories that reach you during quiet hours and do-not-disturb.",
    )
    dnd_until = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="Do not disturb: pushes wait until then (null when off); set it with "
        "/api/preferences/dnd/.",
    )
    next_digest_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        required=False,
        help_text="When the next digest goes out; null when digests are off.",
    )

    def validate_timezone(self, value: str) -> str:
        try:
            validate_timezone(value)
        except DjangoValidationError as exc:
            raise ValidationError(exc.messages) from None
        return value

    def validate_muted_teams(self, value: list[int]) -> list[int]:
        mine = set(teams_of(self.context["request"].user).values_list("id", flat=True))
        errors = {
            index: [f"team {team_id} is not one of your teams"]
            for index, team_id in enumerate(value)
            if team_id not in mine
        }
        if errors:
            raise ValidationError(errors)
        return list(dict.fromkeys(value))

    def validate(self, attrs):
        preference: Preference = self.context["preference"]
        start = attrs.get("quiet_hours_start", preference.quiet_hours_start)
        end = attrs.get("quiet_hours_end", preference.quiet_hours_end)
        if "quiet_hours_start" in attrs or "quiet_hours_end" in attrs:
            if (start is None) != (end is None):
                missing = "quiet_hours_end" if end is None else "quiet_hours_start"
                raise ValidationError(
                    {missing: ["set both quiet_hours_start and quiet_hours_end, or neither"]}
                )
            if start is not None and start == end:
                raise ValidationError({"quiet_hours_end": ["must differ from quiet_hours_start"]})
            attrs["quiet_hours"] = (start, end)
        return attrs


def preference_payload(*, user, preference: Preference, now: datetime) -> dict[str, Any]:
    grid = preference_grid()
    tz_name = services.notification_timezone(user=user)
    mine = teams_of(user).values_list("id", flat=True)
    payload: dict[str, Any] = {
        "channels": services.notification_preference_cells(preference=preference, grid=grid),
        "critical": {
            category: [channel for channel in channels if services.is_critical(category, channel)]
            for category, channels in grid.items()
            if any(services.is_critical(category, channel) for channel in channels)
        },
        "digest_cadence": preference.digest_cadence,
        "digest_hour": preference.digest_hour,
        "quiet_hours_start": preference.quiet_hours_start,
        "quiet_hours_end": preference.quiet_hours_end,
        "timezone": tz_name,
        "muted_teams": sorted(
            preference.muted_teams.filter(id__in=mine).values_list("id", flat=True)
        ),
        "critical_categories": list(preference.critical_categories),
        "dnd_until": services.notification_dnd_active(preference=preference, now=now),
    }
    known, when = next_digest_at(preference=preference, timezone_name=tz_name, now=now)
    if known:
        payload["next_digest_at"] = when
    return payload


class PreferencesView(FlatErrorsMixin, APIView):
    """The caller's notification preferences; see the module docstring for the body."""

    def _respond(self, request, preference: Preference) -> Response:
        payload = preference_payload(user=request.user, preference=preference, now=timezone.now())
        return Response(PreferenceSerializer(payload).data)

    @extend_schema(responses=PreferenceSerializer)
    def get(self, request):
        return self._respond(request, services.notification_preference(user=request.user))

    @extend_schema(
        request=PreferenceSerializer,
        responses={200: PreferenceSerializer, 400: FIELD_ERRORS},
        description="Change what is sent; anything left out keeps its value, and the grid "
        "changes cell by cell.",
    )
    def put(self, request):
        preference = services.notification_preference(user=request.user)
        body = PreferenceSerializer(
            data=request.data, context={"request": request, "preference": preference}
        )
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            preference = services.notification_preference_update(
                user=request.user,
                channels=data.get("channels"),
                digest_cadence=data.get("digest_cadence"),
                digest_hour=data.get("digest_hour"),
                quiet_hours=data.get("quiet_hours"),
                timezone_name=data.get("timezone"),
                muted_team_ids=data.get("muted_teams"),
                critical_categories=data.get("critical_categories"),
            )
        except services.NotificationActionRefused as exc:
            raise ValidationError({"channels": [str(exc)]}) from None
        return self._respond(request, preference)


class DoNotDisturbSerializer(serializers.Serializer):
    """Either ``{"preset": "hour"}`` (an hour from now), ``{"preset": "morning"}`` (the next
    08:00 in the caller's zone) or ``{"until": ISO 8601}`` (a time without an offset is read
    in the caller's zone): in the future and at most 30 days ahead."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["until"].timezone = ZoneInfo(self.context.get("timezone", "UTC"))

    PRESETS = ("hour", "morning")

    preset = serializers.ChoiceField(
        choices=PRESETS,
        required=False,
        error_messages={"invalid_choice": "unknown preset '{input}'; use one of hour, morning"},
    )
    until = serializers.DateTimeField(required=False)

    def validate(self, attrs):
        if ("preset" in attrs) == ("until" in attrs):
            raise ValidationError({"until": ["send either a preset or until, not both or neither"]})
        now = self.context["now"]
        if "preset" in attrs:
            attention = Attention(zone=self.context["timezone"])
            return {"until": dnd_preset(attrs["preset"], attention, now)}
        until = attrs["until"]
        if until <= now:
            raise ValidationError({"until": ["must be in the future (DELETE turns it off)"]})
        if until > now + DND_MAX_AHEAD:
            raise ValidationError({"until": [f"must be at most {DND_MAX_AHEAD.days} days ahead"]})
        return attrs


class DoNotDisturbStateSerializer(serializers.Serializer):
    dnd_until = serializers.DateTimeField(allow_null=True, help_text="null when off")
    timezone = serializers.CharField()
    label = serializers.CharField(help_text="“until 08:00 Europe/Berlin”; empty when off")


class DoNotDisturbView(FlatErrorsMixin, APIView):
    """``/api/preferences/dnd/``: pause emails to yourself (your only push; digests
    keep their hour) until a time; they are held and released as one summary when it
    ends. In-app notifications and critical ones still arrive."""

    def _state(self, request, preference: Preference) -> Response:
        payload = services.notification_dnd_state(
            user=request.user, preference=preference, now=timezone.now()
        )
        return Response(DoNotDisturbStateSerializer(payload).data)

    @extend_schema(responses=DoNotDisturbStateSerializer)
    def get(self, request):
        return self._state(request, services.notification_preference(user=request.user))

    @extend_schema(
        request=DoNotDisturbSerializer,
        responses={200: DoNotDisturbStateSerializer, 400: FIELD_ERRORS},
    )
    def put(self, request):
        now = timezone.now()
        body = DoNotDisturbSerializer(
            data=request.data,
            context={"now": now, "timezone": services.notification_timezone(user=request.user)},
        )
        body.is_valid(raise_exception=True)
        preference = services.notification_dnd_set(
            user=request.user, until=body.validated_data["until"], now=now
        )
        return self._state(request, preference)

    @extend_schema(request=None, responses={200: DoNotDisturbStateSerializer})
    def delete(self, request):
        return self._state(request, services.notification_dnd_set(user=request.user, until=None))
