"""The in-app notification list and its read state, for the caller only."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from notifications import services
from notifications.models import Notification


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
        ]
        read_only_fields = fields


class NewestFirst(CursorPagination):
    ordering = ("-last_seen_at", "-id")
    page_size = 50


class NotificationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = NotificationSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        inbox = services.notification_inbox(user=self.request.user).select_related("team")
        params = self.request.query_params
        if params.get("unread") == "true":
            inbox = inbox.filter(read_at__isnull=True)
        if params.get("team"):
            inbox = inbox.filter(team_id=params["team"])
        if params.get("category"):
            inbox = inbox.filter(category=params["category"])
        archived = params.get("archived") == "true"
        return inbox.filter(archived_at__isnull=not archived)

    @extend_schema(
        parameters=[
            OpenApiParameter("unread", bool),
            OpenApiParameter("team", int),
            OpenApiParameter("category", str),
            OpenApiParameter("archived", bool),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        responses=inline_serializer("UnreadCount", {"unread": serializers.IntegerField()})
    )
    @action(detail=False, methods=["get"])
    def unread_count(self, request):
        return Response({"unread": services.notification_unread_count(user=request.user)})

    @extend_schema(request=None, responses={204: None, 404: None})
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        if not services.notification_mark_read(user=request.user, notification_id=int(pk)):
            return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None, responses=inline_serializer("ReadAll", {"marked": serializers.IntegerField()})
    )
    @action(detail=False, methods=["post"])
    def read_all(self, request):
        return Response({"marked": services.notification_mark_all_read(user=request.user)})
