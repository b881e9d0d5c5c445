"""``GET /api/deliveries/``: "my deliveries" — every message sent (or not) to the caller,
plus every delivery of the triggers they own, newest first, with its status and, for
``failed`` and ``skipped``, the reason in ``last_error``. ``held`` (quiet hours or
do-not-disturb), ``released`` (went out in the summary ``released_in``) and critical pushes
say why in ``reason`` ("held: quiet hours until 07:00 Europe/Berlin"); the summary itself
says what it released.

A trigger owner sees where their trigger's messages went (Slack channel, webhook URL,
Telegram chat); an email sent to someone else shows that person's username instead of
their address.
"""

from __future__ import annotations

from collections.abc import Sequence

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import ValidationError

from api.errors import FIELD_ERRORS, FlatErrorsMixin
from api.pagination import KeysetPagination
from api.permissions import deliveries_of
from notifications.channels import email, registry
from notifications.models import Delivery, DeliveryStatus


class DeliverySerializer(serializers.ModelSerializer):
    title = serializers.SerializerMethodField()
    trigger_name = serializers.CharField(source="trigger.name", read_only=True, default=None)
    team_name = serializers.CharField(source="team.name", read_only=True)
    recipient_name = serializers.CharField(
        source="recipient.username", read_only=True, default=None
    )
    destination = serializers.SerializerMethodField()
    reason = serializers.SerializerMethodField()
    held_until = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = [
            "id",
            "channel",
            "destination",
            "status",
            "attempts",
            "next_retry_at",
            "last_error",
            "sent_at",
            "created_at",
            "title",
            "team",
            "team_name",
            "trigger",
            "trigger_name",
            "notification",
            "recipient",
            "recipient_name",
            "reason",
            "held_until",
            "released_in",
        ]
        read_only_fields = fields

    def get_title(self, delivery: Delivery) -> str:
        message = delivery.message if isinstance(delivery.message, dict) else {}
        return str(message.get("title", ""))

    def get_reason(self, delivery: Delivery) -> str:
        """Why it was held, released or passed. Another person's quiet hours are theirs: a
        trigger owner sees that the delivery was held, not until when or in which zone."""
        if delivery.reason and delivery.recipient_id and not self._mine(delivery):
            return "held for the recipient's quiet time" if delivery.held_until else ""
        return delivery.reason

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_held_until(self, delivery: Delivery) -> str | None:
        if delivery.held_until is None or not self._mine(delivery):
            return None
        return serializers.DateTimeField().to_representation(delivery.held_until)

    def _mine(self, delivery: Delivery) -> bool:
        request = self.context.get("request")
        return request is not None and delivery.recipient_id == request.user.pk

    def get_destination(self, delivery: Delivery) -> str:
        request = self.context.get("request")
        mine = request is not None and delivery.recipient_id == request.user.pk
        if delivery.channel == email.TYPE and delivery.recipient_id and not mine:
            return ""
        return delivery.destination


class NewestFirst(KeysetPagination):
    ordering = ("-created_at", "-id")
    page_size = 50


def _choice(params, name: str, choices: Sequence[str]) -> str | None:
    value = params.get(name, "")
    if not value:
        return None
    if value not in choices:
        raise ValidationError(
            {name: [f"unknown {name} '{value}'; use one of " + ", ".join(choices)]}
        )
    return value


class DeliveryViewSet(FlatErrorsMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The caller's deliveries and their triggers' deliveries; see the module docstring."""

    serializer_class = DeliverySerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Delivery.objects.none()
        deliveries = deliveries_of(self.request.user).select_related("team", "trigger", "recipient")
        params = self.request.query_params
        if status := _choice(params, "status", DeliveryStatus.values):
            deliveries = deliveries.filter(status=status)
        if channel := _choice(params, "channel", registry.TYPES):
            deliveries = deliveries.filter(channel=channel)
        return deliveries

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=DeliveryStatus.values),
            OpenApiParameter("channel", str, enum=list(registry.TYPES)),
        ],
        responses={200: DeliverySerializer(many=True), 400: FIELD_ERRORS},
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)
