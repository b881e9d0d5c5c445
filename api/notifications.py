"""The in-app notification list and what a person does with it, for the caller only:
read, seen (the badge), archive, "why am I seeing this", "mute this trigger".

A notification that is not the caller's does not exist for them (404). ``unread_count``
carries an ``ETag`` built from the count and the newest row, so the page can poll it with
``If-None-Match`` and get ``304 Not Modified`` until something changes; with ``wait`` the
request is held until then (``notifications.live``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, tzinfo
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.http import parse_etags, quote_etag
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import FIELD_ERRORS, FlatErrorsMixin
from api.pagination import KeysetPagination
from notifications import live, services
from notifications.models import Category, Notification
from workspace.models import teams_of


class NotificationSerializer(serializers.ModelSerializer):
    team_name = serializers.CharField(source="team.name", read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id",
            "team",
            "team_name",
            "category",
            "title",
            "body",
            "url",
            "actor_name",
            "trigger",
            "event_id",
            "event_name",
            "reason",
            "count",
            "first_seen_at",
            "last_seen_at",
            "read_at",
            "seen_at",
            "archived_at",
            "snoozed_until",
        ]
        read_only_fields = fields


_LISTED = tuple(
    "team__name" if name == "team_name" else name for name in NotificationSerializer.Meta.fields
)


def _when(value: datetime | None, zone: tzinfo) -> str | None:
    """DRF's ``DateTimeField`` output (ISO 8601 in ``zone``, UTC as ``Z``) with the zone
    looked up once per page rather than once per field."""
    if value is None:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _listed(row: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    """A row of ``.values(*_LISTED)`` as :class:`NotificationSerializer` renders it (the
    schema documents that serializer). Built by hand: the serializer's per-field calls
    were a third of the list's time."""
    event_id = row["event_id"]
    return {
        "id": row["id"],
        "team": row["team"],
        "team_name": row["team__name"],
        "category": row["category"],
        "title": row["title"],
        "body": row["body"],
        "url": row["url"],
        "actor_name": row["actor_name"],
        "trigger": row["trigger"],
        "event_id": None if event_id is None else str(event_id),
        "event_name": row["event_name"],
        "reason": row["reason"],
        "count": row["count"],
        "first_seen_at": _when(row["first_seen_at"], zone),
        "last_seen_at": _when(row["last_seen_at"], zone),
        "read_at": _when(row["read_at"], zone),
        "seen_at": _when(row["seen_at"], zone),
        "archived_at": _when(row["archived_at"], zone),
        "snoozed_until": _when(row["snoozed_until"], zone),
    }


class NewestFirst(KeysetPagination):
    ordering = ("-last_seen_at", "-id")
    page_size = 50


class WhyTriggerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    config = serializers.JSONField()


class WhyEventSerializer(serializers.Serializer):
    id = serializers.UUIDField(allow_null=True)
    name = serializers.CharField(allow_blank=True)


class WhySerializer(serializers.Serializer):
    """Why the caller sees a notification: the trigger (null for built-in activity,
    announcements, a deleted trigger, and one in a team the caller is not in), its rule as
    one sentence, the event that fired it, and the recipient reason stored with the row. A
    notification of a team the caller left is not found (404)."""

    trigger = WhyTriggerSerializer(allow_null=True)
    rule = serializers.CharField()
    event = WhyEventSerializer()
    reason = serializers.CharField(allow_blank=True)


class MutedSerializer(serializers.Serializer):
    """The answer to ``mute_trigger`` (it takes no body)."""

    trigger = serializers.IntegerField(read_only=True)
    muted = serializers.BooleanField(read_only=True)


NOT_FOUND = OpenApiResponse(description="Not one of the caller's notifications.")
NO_CONTENT = OpenApiResponse(description="Done (also when it already was).")
UNREAD = inline_serializer("UnreadCount", {"unread": serializers.IntegerField()})
MARKED = inline_serializer("Marked", {"marked": serializers.IntegerField()})


def _flag(params, name: str) -> bool:
    value = params.get(name, "")
    if value in ("", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise ValidationError({name: ["must be true or false"]})


def _int_param(params, name: str) -> int | None:
    value = params.get(name, "")
    if value == "":
        return None
    if not value.isdigit():
        raise ValidationError({name: ["must be an id"]})
    return int(value)


def unread_etag(state: services.UnreadState, user_id: int) -> str:
    digest = hashlib.sha256(f"{user_id}:{state.version}".encode()).hexdigest()[:32]
    return quote_etag(f"unread-{digest}")


@extend_schema_view(
    read=extend_schema(request=None, responses={204: NO_CONTENT, 404: NOT_FOUND}),
    seen=extend_schema(request=None, responses={204: NO_CONTENT, 404: NOT_FOUND}),
    archive=extend_schema(request=None, responses={204: NO_CONTENT, 404: NOT_FOUND}),
)
class NotificationViewSet(FlatErrorsMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The caller's notifications, newest first; see the module docstring."""

    serializer_class = NotificationSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Notification.objects.none()
        params = self.request.query_params
        user = self.request.user
        inbox = (
            services.notification_inbox(user=user).filter(archived_at__isnull=False)
            if _flag(params, "archived")
            else services.notification_visible(user=user)
        )
        if _flag(params, "unread"):
            inbox = inbox.filter(read_at__isnull=True)
        if (team := _int_param(params, "team")) is not None:
            inbox = inbox.filter(team_id=team)
        if category := params.get("category"):
            if category not in Category.values:
                raise ValidationError(
                    {"category": [f"unknown category; use one of {', '.join(Category.values)}"]}
                )
            inbox = inbox.filter(category=category)
        return inbox

    def _id(self) -> int:
        value = str(self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        if not value.isdigit():
            raise NotFound()
        return int(value)

    @extend_schema(
        parameters=[
            OpenApiParameter("unread", bool),
            OpenApiParameter("team", int),
            OpenApiParameter("category", str, enum=Category.values),
            OpenApiParameter("archived", bool),
        ],
        responses={200: NotificationSerializer(many=True), 400: FIELD_ERRORS},
    )
    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset().values(*_LISTED))
        zone = timezone.get_current_timezone()
        return self.get_paginated_response([_listed(row, zone) for row in page or ()])

    def _done(self, found: bool) -> Response:
        if not found:
            raise NotFound()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        return self._done(
            services.notification_mark_read(user=request.user, notification_id=self._id())
        )

    @extend_schema(request=None, responses=MARKED)
    @action(detail=False, methods=["post"])
    def read_all(self, request):
        return Response({"marked": services.notification_mark_all_read(user=request.user)})

    @action(detail=True, methods=["post"])
    def seen(self, request, pk=None):
        return self._done(
            services.notification_mark_seen(user=request.user, notification_id=self._id())
        )

    @extend_schema(
        request=None,
        responses=MARKED,
        description="Mark everything seen: what opening the bell does.",
    )
    @action(detail=False, methods=["post"])
    def seen_all(self, request):
        return Response({"marked": services.notification_mark_all_seen(user=request.user)})

    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        return self._done(
            services.notification_archive(user=request.user, notification_id=self._id())
        )

    @extend_schema(
        request=inline_serializer(
            "SnoozeRequest", {"until": serializers.DateTimeField(allow_null=True)}
        ),
        responses={204: NO_CONTENT, 400: None, 404: NOT_FOUND},
        description="Hide the notification until a time; `null` brings it back now.",
    )
    @action(detail=True, methods=["post"])
    def snooze(self, request, pk=None):
        field = serializers.DateTimeField(allow_null=True)
        if "until" not in request.data:
            raise ValidationError({"until": ["is required (an ISO 8601 time, or null)"]})
        until = field.run_validation(request.data["until"])
        if until is not None and until <= timezone.now():
            raise ValidationError({"until": ["must be in the future"]})
        return self._done(
            services.notification_snooze(user=request.user, notification_id=self._id(), until=until)
        )

    @extend_schema(responses={200: WhySerializer, 404: NOT_FOUND})
    @action(detail=True, methods=["get"])
    def why(self, request, pk=None):
        explanation = services.notification_explain(
            user=request.user,
            notification_id=self._id(),
            visible_team_ids=teams_of(request.user).values_list("id", flat=True),
        )
        if explanation is None:
            raise NotFound()
        notification, trigger = explanation.notification, explanation.trigger
        data = {
            "trigger": (
                {
                    "id": trigger.pk,
                    "name": trigger.name,
                    "kind": trigger.kind,
                    "config": trigger.config,
                }
                if trigger
                else None
            ),
            "rule": explanation.rule,
            "event": {"id": notification.event_id, "name": notification.event_name},
            "reason": notification.reason,
        }
        return Response(WhySerializer(data).data)

    @extend_schema(
        request=None,
        responses={
            200: MutedSerializer,
            400: FIELD_ERRORS,
            404: NOT_FOUND,
        },
        description="Stop the trigger behind this notification from reaching the caller "
        "(unsubscribe them). 400 when there is no trigger, or the caller owns it and is its "
        "only recipient (disable or snooze the trigger instead).",
    )
    @action(detail=True, methods=["post"])
    def mute_trigger(self, request, pk=None):
        try:
            trigger = services.notification_mute_trigger(
                user=request.user, notification_id=self._id()
            )
        except services.NotificationActionRefused as exc:
            raise ValidationError({"trigger": [str(exc)]}) from None
        if trigger is None:
            raise NotFound()
        return Response({"trigger": trigger.pk, "muted": True})


class UnreadCountView(APIView):
    """``GET /api/notifications/unread_count/``: the badge's count, with an ETag; with
    ``wait`` and a current ETag, held open until the count or the newest row changes (or
    ``wait`` seconds pass), so a page hears of a notification as it is stored.

    Outside ATOMIC_REQUESTS (see ``urls``): a request that waits must not hold a
    transaction — on SQLite every transaction takes the write lock."""

    @extend_schema(
        operation_id="notifications_unread_count_retrieve",
        tags=["notifications"],
        parameters=[
            OpenApiParameter(
                "wait",
                int,
                description="With a current If-None-Match: wait up to this many seconds "
                f"(0 to {live.MAX_WAIT_SECONDS}) for a change before answering 304. "
                "0 (the default) answers at once.",
            ),
            OpenApiParameter(
                "If-None-Match",
                str,
                OpenApiParameter.HEADER,
                description="The ETag of the last answer; 304 while it still holds.",
            ),
            OpenApiParameter(
                "ETag",
                str,
                OpenApiParameter.HEADER,
                response=[200, 304],
                description="Changes when the count or the newest notification changes.",
            ),
        ],
        responses={
            200: UNREAD,
            304: OpenApiResponse(description="Unchanged since the ETag sent."),
            400: FIELD_ERRORS,
        },
    )
    def initial(self, request, *args, **kwargs):
        with transaction.atomic():  # authentication's queries, as ATOMIC_REQUESTS would run them
            super().initial(request, *args, **kwargs)

    def get(self, request):
        text = request.query_params.get("wait", "") or "0"
        if not (text.isascii() and text.isdigit() and int(text) <= live.MAX_WAIT_SECONDS):
            raise ValidationError(
                {"wait": [f"must be a whole number of seconds from 0 to {live.MAX_WAIT_SECONDS}"]}
            )
        wait = int(text)
        user = request.user
        sent = parse_etags(request.headers.get("If-None-Match", ""))

        def holds(state: services.UnreadState) -> bool:
            tag = unread_etag(state, user.pk)
            return tag in sent or "*" in sent or f"W/{tag}" in sent

        state = services.notification_unread_state(user=user)

        def changed() -> bool:
            nonlocal state
            state = services.notification_unread_state(user=user)
            return not holds(state)

        if wait and unread_etag(state, user.pk) in sent:  # a client that has this answer
            live.wait_for_change(user.pk, seconds=wait, changed=changed)
        headers = {"ETag": unread_etag(state, user.pk), "Cache-Control": "private, no-cache"}
        if holds(state):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response({"unread": state.unread}, headers=headers)
