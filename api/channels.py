"""``/api/channels/``: an organization's Slack workspace, webhook or Telegram bot.

Who may do what: members of the organization list and read its channels; only its admins
(admin/owner of any of its teams) create, change or delete them (403 for other members).
Another organization's channels do not exist for the caller (404), and ``organization``
only takes the caller's organizations (400).

The body::

    {"type": "slack", "name": "Acme Slack", "organization": 1,
     "config": {"default_target": "#alerts"}, "secret": "xoxb-…"}

``secret`` is write-only — the Slack or Telegram bot token, or the webhook signing secret
— stored encrypted and never returned; responses say ``"has_secret": true``. A secret
sent inside ``config`` under its own name (``bot_token``, ``secret``) is moved out of it,
so it is never stored in clear. Settings per type:

- ``slack``: ``default_target`` (a ``#channel`` or channel id) for triggers that name none;
  the bot token is required.
- ``telegram``: ``default_target`` (a chat id); the bot token is required.
- ``webhook``: ``url`` (http or https), stored as ``default_target`` like the others (the
  sender reads that name; responses show both). A host that resolves to a loopback or
  private address is refused (400 on ``config.url``) unless
  ``NOTIFLOW_WEBHOOK_ALLOW_PRIVATE`` is on. Without a secret one is generated and returned
  once, as ``secret_shown_once`` in the create response.

Leaving ``secret`` out of an update keeps the stored one. Errors use the flat shape of
:mod:`api.errors`.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from api.errors import FIELD_ERRORS, FlatErrorsMixin
from api.permissions import (
    CallerOrganizationField,
    IsOrgAdminOrReadOnly,
    OrgScopedViewSet,
    is_org_admin,
)
from notifications import services
from notifications.channels import registry
from notifications.models import ChannelConfig

_UNKNOWN_TYPE = "unknown channel type '{input}'; use one of " + ", ".join(registry.ORG_LEVEL)
FORBIDDEN = OpenApiResponse(description="The caller is not an admin of the organization.")


def _config_errors(kind: str, config: dict[str, Any]) -> dict[str, list[str]]:
    return {
        f"config.{key}": [problem]
        for key, problem in registry.config_problems(kind, config).items()
    }


class ChannelConfigSerializer(serializers.ModelSerializer):
    organization = CallerOrganizationField()
    config = serializers.JSONField(required=False, help_text="Settings that are not secret.")
    secret = serializers.CharField(
        write_only=True,
        required=False,
        max_length=500,
        help_text="Bot token or signing secret; write-only, never returned.",
    )
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = ChannelConfig
        fields = [
            "id",
            "type",
            "name",
            "organization",
            "config",
            "secret",
            "has_secret",
            "enabled",
            "disabled_reason",
            "consecutive_failures",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "disabled_reason",
            "consecutive_failures",
            "created_by",
            "created_at",
            "updated_at",
        ]
        validators: list = []  # the (organization, type, name) check below says which name
        extra_kwargs = {"type": {"error_messages": {"invalid_choice": _UNKNOWN_TYPE}}}

    def get_has_secret(self, channel_config: ChannelConfig) -> bool:
        return bool(channel_config.secret_encrypted)

    def to_representation(self, channel_config):
        data = super().to_representation(channel_config)
        data["config"] = registry.config_shown(channel_config.type, data.get("config") or {})
        return data

    def validate(self, attrs):
        current = self.instance
        errors: dict[str, list[str]] = {}
        for name in ("type", "organization"):
            if current is not None and name in attrs and attrs[name] != getattr(current, name):
                errors[name] = [f"cannot change; create a new channel instead ({name})"]
        if errors:
            raise ValidationError(errors)
        kind = attrs.get("type", current.type if current else None)
        organization = attrs.get("organization", current.organization if current else None)
        if kind is None or organization is None:
            return attrs  # "required" errors already name them
        if "config" in attrs and not isinstance(attrs["config"], dict):
            raise ValidationError({"config": ["must be an object"]})
        config_given = "config" in attrs or current is None
        config = dict(attrs.get("config", current.config if current else {}) or {})
        declaration = registry.find(kind)
        if declaration is None or declaration.secret is None:  # a row of a type now gone
            raise ValidationError({"type": [_UNKNOWN_TYPE.format(input=kind)]})
        declared = declaration.secret
        secret_key = declared.name
        if secret_key in config:
            in_config = config.pop(secret_key)
            if "secret" in attrs and attrs["secret"] != in_config:
                errors["config." + secret_key] = ["send the secret once, as secret"]
            attrs["secret"] = str(in_config)
        if config_given:
            errors.update(_config_errors(kind, config))
            attrs["config"] = registry.config_stored(kind, config)
        secret = attrs.get("secret")
        if secret is not None and (message := declared.check(secret)):
            errors["secret"] = [message]
        if current is None and declared.generate is None and not secret:
            errors["secret"] = [f"{kind} needs its {declared.label}"]
        name = attrs.get("name", current.name if current else "")
        taken = ChannelConfig.objects.filter(organization=organization, type=kind, name=name)
        if current is not None:
            taken = taken.exclude(pk=current.pk)
        if taken.exists():
            errors["name"] = [f"this organization already has a {kind} channel named '{name}'"]
        if errors:
            raise ValidationError(errors)
        return attrs


class ChannelConfigCreatedSerializer(ChannelConfigSerializer):
    secret_shown_once = serializers.CharField(
        read_only=True,
        required=False,
        help_text="Only for a webhook created without a secret: the generated signing "
        "secret. It is shown in this response and never again.",
    )

    class Meta(ChannelConfigSerializer.Meta):
        fields = [*ChannelConfigSerializer.Meta.fields, "secret_shown_once"]


@extend_schema_view(
    create=extend_schema(
        responses={201: ChannelConfigCreatedSerializer, 400: FIELD_ERRORS, 403: FORBIDDEN}
    ),
    update=extend_schema(
        responses={200: ChannelConfigSerializer, 400: FIELD_ERRORS, 403: FORBIDDEN}
    ),
    partial_update=extend_schema(
        responses={200: ChannelConfigSerializer, 400: FIELD_ERRORS, 403: FORBIDDEN}
    ),
    destroy=extend_schema(responses={204: None, 403: FORBIDDEN}),
)
class ChannelConfigViewSet(FlatErrorsMixin, OrgScopedViewSet):
    """Channel configuration of the caller's organizations; see the module docstring."""

    queryset = ChannelConfig.objects.select_related("organization").order_by(
        "organization_id", "type", "name", "id"
    )
    serializer_class = ChannelConfigSerializer
    permission_classes = [permissions.IsAuthenticated, IsOrgAdminOrReadOnly]

    def _save(self, serializer, channel_config=None):
        data = serializer.validated_data
        organization = data.get("organization")
        if channel_config is None and not is_org_admin(self.request.user, organization.pk):
            raise PermissionDenied(IsOrgAdminOrReadOnly.message)
        try:
            with transaction.atomic():
                return services.notification_channel_config_save(
                    user=self.request.user,
                    channel_config=channel_config,
                    organization_id=organization.pk if organization else None,
                    type=data.get("type"),
                    name=data.get("name"),
                    config=data.get("config"),
                    secret=data.get("secret"),
                    enabled=data.get("enabled"),
                )
        except IntegrityError:  # a concurrent create took the name
            raise ValidationError(
                {"name": ["this organization already has a channel of this type by that name"]}
            ) from None

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel_config, shown_once = self._save(serializer)
        data = ChannelConfigSerializer(channel_config, context=self.get_serializer_context()).data
        if shown_once:
            data["secret_shown_once"] = shown_once
        return Response(data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        channel_config = self.get_object()
        serializer = self.get_serializer(
            channel_config, data=request.data, partial=kwargs.get("partial", False)
        )
        serializer.is_valid(raise_exception=True)
        channel_config, _ = self._save(serializer, channel_config)
        return Response(self.get_serializer(channel_config).data)
